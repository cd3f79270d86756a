"""Make models (Hugging Face's first) take, on fake tensors, the code path they take in a real run.

transformers reads tensor values to choose the attention-mask path (packed-sequence detection); on
fake tensors it cannot, so it falls back to materialising a 4-D mask that a real run of unpadded,
unpacked batches never builds (it calls SDPA with ``is_causal`` instead). While tracing we answer that
probe as a real unpacked batch would. Nothing changes when transformers is not imported.

A module converted in its own forward (Switch Transformers' router calls ``self.classifier.to(dtype)``
every step) is left as it is when it already has that dtype and device, as the real conversion leaves it;
torch's conversion of fake parameters would try to swap them and fail.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import torch


def _same_place(module: torch.nn.Module, device: Any, dtype: Any) -> bool:
    """Whether every parameter and buffer of ``module`` already is on ``device`` with ``dtype`` (``None``: any)."""
    for t in (*module.parameters(), *module.buffers()):
        if dtype is not None and t.is_floating_point() and t.dtype != dtype:
            return False
        if device is not None and t.device != torch.device(device):
            return False
    return True


@contextlib.contextmanager
def real_run_behaviour() -> Iterator[None]:
    """Within the block, transformers' probes and module conversions behave as in a real run.

    ``find_packed_sequence_indices`` reports no packing (as for unpacked batches), and a ``Module.to`` that
    changes nothing returns the module untouched.
    """
    original_to = torch.nn.Module.to

    def to(self: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        return self if _same_place(self, device, dtype) else original_to(self, *args, **kwargs)

    masking = sys.modules.get("transformers.masking_utils")
    original = getattr(masking, "find_packed_sequence_indices", None) if masking else None
    torch.nn.Module.to = to
    if original is not None:
        masking.find_packed_sequence_indices = lambda position_ids: None
    try:
        yield
    finally:
        torch.nn.Module.to = original_to
        if original is not None:
            masking.find_packed_sequence_indices = original
