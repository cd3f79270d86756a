"""Shared helpers of the cost formulas: flattening tensor metadata, op lookup, per-element formulas."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from flopcast.features.records import Category, OpCost, TensorMeta
from flopcast.features.registry import Call, Formula, register_op_cost

aten = torch.ops.aten


def metas(x: Any) -> list[TensorMeta]:
    """Tensor metadata found in ``x``: a :class:`TensorMeta`, a list of them, or anything else (none)."""
    if isinstance(x, TensorMeta):
        return [x]
    if isinstance(x, (list, tuple)):
        return [m for m in x if isinstance(m, TensorMeta)]
    return []


def numel(x: Any) -> int:
    """Total elements of the tensor(s) in ``x``."""
    return sum(m.numel for m in metas(x))


def nbytes(x: Any) -> int:
    """Total contiguous size in bytes of the tensor(s) in ``x``."""
    return sum(m.nbytes for m in metas(x))


def out_numel(call: Call) -> int:
    """Elements of the first output (0 for an op without tensor results)."""
    return call.outputs[0].numel if call.outputs else 0


def self_numel(call: Call) -> int:
    """Elements of the first argument (a tensor or a list of tensors)."""
    return numel(call.arg(0, "self"))


def optional_op(name: str) -> Any | None:
    """``torch.ops.aten.<name>`` if this torch build has it, else ``None`` (for optional variants)."""
    try:
        return getattr(aten, name)
    except (AttributeError, RuntimeError):
        return None


def inplace_bytes(call: Call, *, reads_self: bool = True) -> tuple[int, int]:
    """Bytes (read, written) of an in-place op: its inputs once, the mutated first argument once.

    Args:
        call: the op call.
        reads_self: ``False`` for ops that overwrite ``self`` without reading it (fill, random, copy).
    """
    self_arg = call.arg(0, "self")
    read = sum(m.nbytes for m in call.tensor_args()) - (0 if reads_self else nbytes(self_arg))
    return read, nbytes(self_arg)


Counter = Callable[[Call], int]


def per_element(flops_per_element: int, count: Counter = out_numel, *, inplace: bool = False) -> Formula:
    """Formula charging ``flops_per_element`` FLOPs for each element that ``count`` finds.

    Args:
        flops_per_element: FLOPs per counted element.
        count: elements the op works on (default: the first output's).
        inplace: the op mutates its first argument (list): count and bytes then follow ``self``.
    """

    def formula(call: Call) -> OpCost:
        if inplace:
            read, written = inplace_bytes(call)
            return OpCost(flops=flops_per_element * self_numel(call), bytes_read=read, bytes_written=written)
        return OpCost(flops=flops_per_element * count(call))

    return formula


def register_table(
    table: dict[str, int], category: Category, count: Counter = out_numel, *, variants: Iterable[str] = ("_",)
) -> list[str]:
    """Register a per-element formula for each ``aten.<name>`` of ``table`` (and its in-place form).

    Args:
        table: FLOPs per element by base op name; the base op must exist (a typo fails at import).
        category: category of all these ops.
        count: elements counted for the out-of-place form.
        variants: suffixes of the optional in-place forms to register too (``"_"``: ``aten.add_``).

    Returns:
        The registered op names.
    """
    done = []
    for name, k in table.items():
        register_op_cost(getattr(aten, name), category=category)(per_element(k, count))
        done.append(name)
        for suffix in variants:
            op = optional_op(name + suffix)
            if op is not None:
                register_op_cost(op, category=category)(per_element(k, inplace=True))
                done.append(name + suffix)
    return done


def prod(xs: Iterable[int]) -> int:
    """Product of integers (1 for none)."""
    p = 1
    for x in xs:
        p *= int(x)
    return p
