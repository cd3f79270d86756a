"""Make Hugging Face models take, on fake tensors, the code path they take in a real run.

transformers reads tensor values to choose the attention-mask path (packed-sequence detection); on
fake tensors it cannot, so it falls back to materialising a 4-D mask that a real run of unpadded,
unpacked batches never builds (it calls SDPA with ``is_causal`` instead). While tracing we answer that
probe as a real unpacked batch would. Nothing changes when transformers is not imported.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def real_run_behaviour() -> Iterator[None]:
    """Within the block, ``find_packed_sequence_indices`` reports no packing (as for unpacked batches)."""
    masking = sys.modules.get("transformers.masking_utils")
    original = getattr(masking, "find_packed_sequence_indices", None) if masking else None
    if original is None:
        yield
        return
    masking.find_packed_sequence_indices = lambda position_ids: None
    try:
        yield
    finally:
        masking.find_packed_sequence_indices = original
