"""A gradient scaler's overflow check on shape-only tensors: a steady-state step finds no inf/NaN.

``GradScaler.step`` unscales the gradients (``_amp_foreach_non_finite_check_and_unscale_`` writes a
found-inf flag per device) and then reads the flags with ``.item()`` to decide whether to run the
optimizer. Fake tensors hold no values, so while :class:`AssumeFiniteGradients` is active those flags
read 0: the optimizer runs, as in every step that does not overflow. Any other ``.item()`` goes on as
usual (the tracer decides what it reads).
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

_CHECK = torch._amp_foreach_non_finite_check_and_unscale_
_ITEM = torch.Tensor.item


class AssumeFiniteGradients(TorchFunctionMode):
    """Found-inf flags written by the scaler's unscale read 0 (finite gradients) while active."""

    def __init__(self) -> None:
        super().__init__()
        self._flags: dict[int, torch.Tensor] = {}  # id -> tensor, kept alive so the id stays unique

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _CHECK:
            flag = args[1] if len(args) > 1 else kwargs["found_inf"]
            self._flags[id(flag)] = flag
        elif func is _ITEM and args and self._flags.get(id(args[0])) is args[0]:
            return 0.0
        return func(*args, **kwargs)
