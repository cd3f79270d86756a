"""Resolve a target string into something to analyse: a model builder plus its input specs.

Targets: ``path/file.py:name`` (a callable returning an ``nn.Module``, a module instance, or for other
front ends a Keras model / tf.function / NumPy function), ``path/model.onnx``, or ``hf:<model_type>``
(a Hugging Face architecture with its default config, ``--config config.json`` or ``--set k=v``).
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from flopcast.features.config import AnalyzeConfig
from flopcast.features.errors import ModelRaisedError, TargetError


@dataclass(frozen=True)
class LoadedTarget:
    """A resolved target.

    Attributes:
        kind: ``file``, ``hf`` or ``onnx``.
        obj: the attribute named in a ``file.py:name`` target (``None`` for hf and onnx).
        builder: for PyTorch targets, builds the ``nn.Module`` (call it under the meta device).
        default_inputs: input specs from the file's ``INPUTS`` or the hf defaults.
        path: the file, when there is one.
        n_layers: layers of the model's stack of identical layers, where the target says (``hf:``
            decoder and encoder-only models: ``num_hidden_layers``); 0 otherwise.
        with_layers: the builder of the same model with another number of stack layers (``None`` when
            ``n_layers`` is 0).
    """

    kind: str
    obj: Any
    builder: Callable[[], torch.nn.Module] | None
    default_inputs: tuple[str, ...]
    path: str = ""
    n_layers: int = 0
    with_layers: Callable[[int], Callable[[], torch.nn.Module]] | None = None


def _close(name: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(near)}?)" if near else ""


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Parse ``--set key=value`` pairs; values are JSON literals where they parse, else strings.

    Raises:
        TargetError: on a pair without ``=``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TargetError(f"bad --set {pair!r}: expected key=value such as n_layer=48")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _load_file(path_text: str) -> Any:
    path = Path(path_text)
    if not path.is_file():
        raise TargetError(f"no such file: {path_text}")
    spec = importlib.util.spec_from_file_location(f"flopcast_target_{abs(hash(path.resolve()))}", path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import {path_text}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file raised at import: one line, the CLI shows it
        raise TargetError(f"importing {path_text} raised {type(e).__name__}: {e}") from e
    finally:
        sys.path.pop(0)
    return module


def _module_builder(obj: Any, where: str) -> Callable[[], torch.nn.Module]:
    if isinstance(obj, torch.nn.Module):
        return lambda: obj

    def build() -> torch.nn.Module:
        try:
            model = obj()
        except Exception as e:
            raise ModelRaisedError(f"building the model with {where}() raised {type(e).__name__}: {e}") from e
        if not isinstance(model, torch.nn.Module):
            raise TargetError(f"{where}() returned {type(model).__name__}, not a torch.nn.Module")
        return model

    return build


def load_file_target(target: str) -> LoadedTarget:
    """Load ``path/file.py:name`` (the builder is set for PyTorch objects only).

    Raises:
        TargetError: missing file, missing name, import error.
    """
    path_text, sep, name = target.rpartition(":")
    if not sep or not path_text or not name:
        raise TargetError(f"bad target {target!r}: expected path/file.py:name, model.onnx or hf:<model_type>")
    module = _load_file(path_text)
    if not hasattr(module, name):
        public = [n for n in vars(module) if not n.startswith("_")]
        raise TargetError(f"{path_text} has no attribute {name!r}{_close(name, public)}")
    obj = getattr(module, name)
    inputs = tuple(getattr(module, "INPUTS", ()) or ())
    is_torch = isinstance(obj, torch.nn.Module) or (isinstance(obj, type) and issubclass(obj, torch.nn.Module))
    looks_torch = is_torch or _returns_module_by_annotation(obj)
    builder = _module_builder(obj, f"{path_text}:{name}") if looks_torch or callable(obj) else None
    if not callable(obj) and not isinstance(obj, torch.nn.Module):
        raise TargetError(f"{path_text}:{name} is a {type(obj).__name__}, not a callable or a model")
    return LoadedTarget("file", obj, builder, inputs, path_text)


def _returns_module_by_annotation(obj: Any) -> bool:
    ann = getattr(obj, "__annotations__", {}).get("return")
    return isinstance(ann, type) and issubclass(ann, torch.nn.Module)


def hf_model_types() -> list[str]:
    """Model types known to the installed ``transformers``."""
    from transformers import CONFIG_MAPPING

    return sorted(CONFIG_MAPPING.keys())


def load_hf_target(config: AnalyzeConfig) -> LoadedTarget:
    """Resolve ``hf:<model_type>`` into a builder of the architecture (no weights are downloaded).

    Raises:
        TargetError: unknown model type (with close matches), unreadable config file, bad override.
    """
    from transformers import AutoConfig

    model_type = config.target.removeprefix("hf:").strip()
    overrides = parse_overrides(config.hf_overrides)
    if config.hf_config:
        path = Path(config.hf_config)
        if not path.is_file():
            raise TargetError(f"no such config file: {config.hf_config}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise TargetError(f"{config.hf_config}: not valid JSON ({e.msg} at line {e.lineno})") from None
        model_type = model_type or data.get("model_type", "")
        data = {k: v for k, v in data.items() if k != "model_type"}
        overrides = {**data, **overrides}
    known = hf_model_types()
    if model_type not in known:
        raise TargetError(f"unknown hf model type {model_type!r}{_close(model_type, known)}")
    try:
        hf_config = AutoConfig.for_model(model_type, **overrides)
    except Exception as e:  # TypeError, ValueError, huggingface_hub's strict-dataclass validation errors
        reason = " ".join(str(e).split())  # their message spans lines: field, then the cause
        raise TargetError(f"hf:{model_type} config rejected the overrides: {reason}") from None
    model_cls = _hf_model_class(hf_config)
    vocab = int(getattr(hf_config, "vocab_size", 0) or 0) or 32000
    inputs = (f"int64[B,{config.seq_len}]<{vocab}",)
    if getattr(hf_config, "is_encoder_decoder", False):
        inputs = _encoder_decoder_inputs(model_cls, hf_config, inputs[0], config.seq_len)

    def builder(cfg: Any) -> Callable[[], torch.nn.Module]:
        def build() -> torch.nn.Module:
            try:
                return model_cls.from_config(cfg)
            except Exception as e:
                raise ModelRaisedError(f"building hf:{model_type} raised {type(e).__name__}: {e}") from e

        return build

    n_layers = _stack_depth(hf_config)
    with_layers = (lambda n: builder(_with_layers(hf_config, n))) if n_layers else None
    return LoadedTarget("hf", None, builder(hf_config), inputs, n_layers=n_layers, with_layers=with_layers)


def _encoder_decoder_inputs(model_cls: Any, hf_config: Any, ids: str, seq_len: int) -> tuple[str, ...]:
    """Default inputs of an encoder-decoder model, by position: ids, (an all-ones attention mask,) decoder ids.

    transformers' seq2seq forwards take ``attention_mask`` before ``decoder_input_ids``; a mask of ones is what
    an unpadded batch passes.
    """
    concrete = getattr(model_cls, "_model_mapping", {}).get(type(hf_config), None)
    names = list(inspect.signature(concrete.forward).parameters)[1:4] if concrete is not None else []
    if names == ["input_ids", "attention_mask", "decoder_input_ids"]:
        return ids, f"int64[B,{seq_len}]<2", ids
    return ids, ids


def _per_layer_lists(hf_config: Any, n_layers: int) -> dict[str, list]:
    return {k: v for k, v in hf_config.to_dict().items() if isinstance(v, list | tuple) and len(v) == n_layers}


def _stack_depth(hf_config: Any) -> int:
    """``num_hidden_layers`` of a config whose layers are all alike (0 where that is not known).

    Encoder-decoder models (two stacks) and configs with per-layer settings that differ between layers
    (``layer_types`` alternating sliding and full attention) are not composed from a few layers.
    """
    n = getattr(hf_config, "num_hidden_layers", None)
    if not isinstance(n, int) or n < 1 or getattr(hf_config, "is_encoder_decoder", False):
        return 0
    if any(len(set(map(repr, v))) > 1 for v in _per_layer_lists(hf_config, n).values()):
        return 0
    return n


def _with_layers(hf_config: Any, n_layers: int) -> Any:
    """A copy of ``hf_config`` with ``n_layers`` stack layers (uniform per-layer lists resized)."""
    cfg = copy.deepcopy(hf_config)
    for key, value in _per_layer_lists(hf_config, hf_config.num_hidden_layers).items():
        setattr(cfg, key, type(value)([value[0]] * n_layers))
    cfg.num_hidden_layers = n_layers
    return cfg


def _hf_model_class(hf_config: Any) -> Any:
    from transformers import (
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSeq2SeqLM,
    )

    for cls in (AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM):
        if type(hf_config) in cls._model_mapping:
            return cls
    return AutoModel


def load_target(config: AnalyzeConfig) -> LoadedTarget:
    """Resolve ``config.target`` (see module docstring).

    Raises:
        TargetError: when the target cannot be loaded.
    """
    t = config.target
    if t.startswith("hf:"):
        return load_hf_target(config)
    if t.endswith(".onnx"):
        if not Path(t).is_file():
            raise TargetError(f"no such file: {t}")
        return LoadedTarget("onnx", None, None, (), t)
    return load_file_target(t)
