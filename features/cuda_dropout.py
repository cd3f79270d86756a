"""Dropout as CUDA runs it, for tracing a CUDA target on CPU fake tensors.

ATen's ``dropout`` (``aten/src/ATen/native/Dropout.cpp``) runs the fused ``native_dropout`` kernel (one pass:
draw, compare, scale; it keeps a boolean mask for the backward, ``native_dropout_backward``) when the input
is on CUDA, training is on, ``0 < p < 1`` and the input is not empty. On CPU tensors the same call runs the
unfused path (``bernoulli_`` into a noise tensor, ``div_``, ``mul``; the backward a ``mul``), so a CUDA step
traced on CPU would record three kernels where the GPU launches one. The in-place ``dropout_`` and the
feature / alpha variants take the unfused path on CUDA too and are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

DROPOUT_FUNCS: dict[Callable[..., Any], tuple[str, str, str | None]] = {
    torch.dropout: ("p", "train", None),
    torch.nn.functional.dropout: ("p", "training", "inplace"),
}
"""The out-of-place dropout entry points and the names of their ``p``, training and in-place arguments."""
_DEFAULTS = {"p": 0.5, "train": True, "training": True, "inplace": False}


def _argument(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    """The value of argument ``name`` (positional after the input, in ``names``' order, or by keyword)."""
    i = names.index(name) + 1
    return args[i] if len(args) > i else kwargs.get(name, _DEFAULTS[name])


def fused_on_cuda(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether CUDA would run this dropout call as the fused ``native_dropout`` kernel."""
    p_name, train_name, inplace_name = DROPOUT_FUNCS[func]
    names = tuple(n for n in (p_name, train_name, inplace_name) if n is not None)
    x = args[0] if args else kwargs.get("input")
    p = float(_argument(names, args, kwargs, p_name))
    inplace = inplace_name is not None and bool(_argument(names, args, kwargs, inplace_name))
    train = bool(_argument(names, args, kwargs, train_name))
    return isinstance(x, torch.Tensor) and train and not inplace and 0.0 < p < 1.0 and x.numel() > 0


def cuda_dropout(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The dropout CUDA runs: ``native_dropout``'s output where the kernel is fused, else ``NotImplemented``."""
    if not fused_on_cuda(func, args, kwargs):
        return NotImplemented
    p_name = DROPOUT_FUNCS[func][0]
    x = args[0] if args else kwargs["input"]
    p = float(args[1]) if len(args) > 1 else float(kwargs.get(p_name, _DEFAULTS[p_name]))
    return torch.native_dropout(x, p, True)[0]
