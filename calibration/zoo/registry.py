"""The zoo registry: :class:`ZooModel` records, the :data:`ZOO` table and its look-up functions."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo and how to feed it.

    Attributes:
        name: unique id, e.g. ``resnet18``.
        family: architecture family used for leave-one-family-out evaluation, e.g. ``resnet``.
        build: returns a fresh model at calibration size (small enough for a CPU train step).
        inputs: one spec per forward argument, grammar ``DTYPE[DIM,...]`` with an optional ``<HIGH``
            (exclusive upper bound) for integer inputs; a dim is an int or the symbol ``B`` (batch),
            e.g. ``("float32[B,3,64,64]",)`` or ``("int64[B,128]<50257",)``.
        batch_sizes: suggested batch sizes for CPU measurement.
        gpu_batch_sizes: suggested batch sizes on a large GPU.
        description: one line on what the model is.
        modes: the step modes it is measured in (a decode step is an inference step only).
        precisions: the only precisions it is measured at (empty: any; a decode step's fp32 cache input: fp32).

    """

    name: str
    family: str
    build: Callable[[], torch.nn.Module]
    inputs: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    gpu_batch_sizes: tuple[int, ...]
    description: str
    modes: tuple[str, ...] = ("train", "infer")
    precisions: tuple[str, ...] = ()


ZOO: dict[str, ZooModel] = {}

Builder = Callable[..., torch.nn.Module]


def register(model: ZooModel) -> ZooModel:
    """Add ``model`` to :data:`ZOO`.

    Args:
        model: the record to add.

    Returns:
        The same record.

    Raises:
        ValueError: when another model of that name is already registered, or the record has no inputs. The
            same builder registered again (its file imported a second time under another module name, as
            ``flopcast analyze calibration/zoo/mlp.py:mlp_small`` does) keeps the first record.

    """
    if model.name in ZOO and _same_builder(ZOO[model.name].build, model.build):
        return ZOO[model.name]
    if model.name in ZOO:
        raise ValueError(f"zoo model {model.name!r} is already registered")
    if not model.inputs:
        raise ValueError(f"zoo model {model.name!r} declares no inputs")
    ZOO[model.name] = model
    return model


def _same_builder(a: Callable[..., object], b: Callable[..., object]) -> bool:
    """Whether two builders are one function of one source file (the file imported twice)."""
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    if code_a is None or code_b is None:
        return False
    return (a.__qualname__ == b.__qualname__ and code_a.co_firstlineno == code_b.co_firstlineno
            and os.path.realpath(code_a.co_filename) == os.path.realpath(code_b.co_filename))


def register_zoo_model(
    *,
    name: str,
    family: str,
    inputs: tuple[str, ...],
    batch_sizes: tuple[int, ...] = (1, 4, 8),
    gpu_batch_sizes: tuple[int, ...] = (8, 64, 256),
    description: str | None = None,
    modes: tuple[str, ...] = ("train", "infer"),
    precisions: tuple[str, ...] = (),
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder whose all-default call gives the calibration-size model.

    Args:
        name: unique model id.
        family: architecture family.
        inputs: input specs, one per forward argument (see :class:`ZooModel`).
        batch_sizes: suggested CPU batch sizes.
        gpu_batch_sizes: suggested GPU batch sizes.
        description: one line; defaults to the first line of the builder's docstring.
        modes: the step modes it is measured in.
        precisions: the only precisions it is measured at (empty: any).

    Returns:
        A decorator that registers the builder and returns it unchanged.

    """

    def decorate(builder: Builder) -> Builder:
        doc = description or (builder.__doc__ or name).strip().splitlines()[0]
        register(
            ZooModel(
                name=name,
                family=family,
                build=builder,
                inputs=tuple(inputs),
                batch_sizes=tuple(batch_sizes),
                gpu_batch_sizes=tuple(gpu_batch_sizes),
                description=doc,
                modes=tuple(modes),
                precisions=tuple(precisions),
            )
        )
        return builder

    return decorate


def get(name: str) -> ZooModel:
    """Look a model up by name.

    Args:
        name: the model id.

    Returns:
        The registered record.

    Raises:
        KeyError: when no model has that name; the message lists close matches.

    """
    try:
        return ZOO[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(ZOO), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"no zoo model named {name!r}{hint}") from None


def names(family: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally of one family only.

    Args:
        family: keep only models of this family; ``None`` keeps all.

    Returns:
        Model names in alphabetical order.

    """
    return sorted(n for n, m in ZOO.items() if family is None or m.family == family)
