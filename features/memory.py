"""Peak memory of a traced step from tensor-storage lifetimes, as the CUDA caching allocator counts it.

Every storage alive during the trace is counted once, rounded up to the allocator's 512-byte blocks,
from the op that creates it until its last tensor dies (a weakref finaliser on the storage). Saved
activations stay alive because autograd holds them, exactly as in a real step. Each storage carries a
kind (parameters, buffers, optimizer_state, inputs, activations, gradients, temporaries) so the peak
comes with its breakdown.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch

from flopcast.features.analysis import MemoryEstimate

ALLOCATOR_BLOCK_BYTES = 512
KINDS = ("parameters", "buffers", "optimizer_state", "inputs", "activations", "gradients", "temporaries")


def allocator_bytes(nbytes: int) -> int:
    """Bytes the CUDA caching allocator accounts for a request of ``nbytes`` (512-byte rounding)."""
    if nbytes <= 0:
        return 0
    return -(-nbytes // ALLOCATOR_BLOCK_BYTES) * ALLOCATOR_BLOCK_BYTES


class MemoryTracker:
    """Live bytes per kind over a trace, and their peak."""

    def __init__(self) -> None:
        self._live: dict[int, tuple[int, str]] = {}  # id(storage) -> (bytes, kind)
        self._refs: dict[int, weakref.finalize] = {}
        self.live_by_kind = dict.fromkeys(KINDS, 0)
        self.live_bytes = 0
        self.peak_bytes = 0
        self.peak_breakdown = dict(self.live_by_kind)
        self.peak_op_index = -1
        self.op_index = -1
        self.start_bytes: tuple[int, ...] = ()
        self.live_by_op: list[tuple[int, ...]] = []

    def _free(self, key: int) -> None:
        size, kind = self._live.pop(key, (0, "temporaries"))
        self._refs.pop(key, None)
        self.live_bytes -= size
        self.live_by_kind[kind] -= size

    def track(self, t: torch.Tensor, kind: str) -> None:
        """Count ``t``'s storage as live (once), tagged ``kind``, until its last tensor dies."""
        st = t.untyped_storage()
        key = id(st)
        if key in self._live:
            return
        size = allocator_bytes(st.nbytes())
        self._live[key] = (size, kind)
        self._refs[key] = weakref.finalize(st, self._free, key)
        self.live_bytes += size
        self.live_by_kind[kind] += size
        if self.live_bytes > self.peak_bytes:
            self.peak_bytes = self.live_bytes
            self.peak_breakdown = dict(self.live_by_kind)
            self.peak_op_index = self.op_index

    def track_all(self, tensors: Iterable[torch.Tensor], kind: str) -> None:
        """Track each tensor of ``tensors`` as ``kind``."""
        for t in tensors:
            self.track(t, kind)

    def retag(self, t: torch.Tensor | None, kind: str) -> None:
        """Move ``t``'s storage to another kind (a backward output that became a ``.grad``); ``None`` is ignored."""
        if t is None:
            return
        key = id(t.untyped_storage())
        if key in self._live:
            size, old = self._live[key]
            self._live[key] = (size, kind)
            self.live_by_kind[old] -= size
            self.live_by_kind[kind] += size

    def start(self) -> None:
        """Mark the start of the recorded step: what is live now (weights, state, inputs) starts the timeline."""
        self.start_bytes = tuple(self.live_by_kind.values())
        self.live_by_op = []

    def end_op(self) -> None:
        """Close the current op of the timeline: live bytes by kind once its outputs are counted."""
        self.live_by_op.append(tuple(self.live_by_kind.values()))

    def estimate(self) -> MemoryEstimate:
        """The peak and what was live at it, with the timeline since :meth:`start`."""
        return MemoryEstimate(self.peak_bytes, dict(self.peak_breakdown), self.peak_op_index,
                              start_bytes=self.start_bytes, live_by_op_bytes=tuple(self.live_by_op))

    def close(self) -> None:
        """Detach the finalisers so freeing the traced tensors later does not touch this tracker."""
        for ref in self._refs.values():
            ref.detach()
        self._refs.clear()
