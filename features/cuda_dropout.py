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


def _parsed(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, float, bool, bool]:
    """``(input, p, train, inplace)`` of a dropout call.

    Arguments are positional after the input, in the function's order, or by keyword; the defaults where absent.
    """
    names = tuple(n for n in DROPOUT_FUNCS[func] if n is not None)

    def value(name: str) -> Any:
        i = names.index(name) + 1
        return args[i] if len(args) > i else kwargs.get(name, _DEFAULTS[name])

    p_name, train_name, inplace_name = DROPOUT_FUNCS[func]
    x = args[0] if args else kwargs.get("input")
    inplace = inplace_name is not None and bool(value(inplace_name))
    return x, float(value(p_name)), bool(value(train_name)), inplace


def fused_on_cuda(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether CUDA would run this dropout call as the fused ``native_dropout`` kernel."""
    x, p, train, inplace = _parsed(func, args, kwargs)
    return isinstance(x, torch.Tensor) and train and not inplace and 0.0 < p < 1.0 and x.numel() > 0


def cuda_dropout(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The dropout CUDA runs: ``native_dropout``'s output where the kernel is fused, else ``NotImplemented``."""
    if not fused_on_cuda(func, args, kwargs):
        return NotImplemented
    x, p, _, _ = _parsed(func, args, kwargs)
    return torch.native_dropout(x, p, True)[0]
