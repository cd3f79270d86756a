"""Activation checkpointing of a model's layer stack, traced as it runs: the recomputed forward inside the backward.

``--activation-checkpointing full`` wraps every layer of the stack, ``every-K`` the layers ``0, K, 2K, ...``
(torchtitan's selective layer checkpointing, ``ac_freq``), with ``torch.utils.checkpoint.checkpoint``
(non-reentrant, as ``gradient_checkpointing_enable`` uses it): their forward keeps only the layer inputs,
and the backward runs the forward again to rebuild the saved tensors (it stops once the last one it needs is
rebuilt: ``torch.utils.checkpoint``'s early stop). The tracer records that recomputation as backward ops
flagged ``recomputed``, and the memory tracker sees the activations freed after the forward: both the extra
work and the memory saved come from the trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import torch

from flopcast.features.errors import OptionError
from flopcast.features.records import OpRecord, Phase
from flopcast.features.trace_torch import OpRecorder


def layer_stack(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's stack of layers: its longest ``nn.ModuleList`` whose members share one class (empty if none)."""
    best: list[torch.nn.Module] = []
    for m in model.modules():
        if isinstance(m, torch.nn.ModuleList) and len(m) > len(best) and len({type(x) for x in m}) == 1:
            best = list(m)
    return best


class Recomputation:
    """Checkpoints layers of a model under a recorder and remembers which recorded ops re-ran a forward.

    Args:
        recorder: the trace's op recorder (its ``phase`` tells a layer's first forward from its recomputation).
    """

    def __init__(self, recorder: OpRecorder) -> None:
        self.recorder = recorder
        self.spans: list[tuple[int, int]] = []

    def apply(self, model: torch.nn.Module, every: int, where: str) -> int:
        """Checkpoint the layers ``0, every, 2 every, ...`` of ``model``'s stack (:func:`layer_stack`).

        Args:
            model: the model (its layers' ``forward`` are replaced on the instances).
            every: 1 for every layer, K for every K-th.
            where: the target, for the error message.

        Returns:
            How many layers are checkpointed.

        Raises:
            OptionError: when the model has no layer stack to checkpoint.
        """
        layers = layer_stack(model)
        if not layers:
            raise OptionError(f"--activation-checkpointing: {where} has no stack of identical layers (an "
                              "nn.ModuleList of one class) to checkpoint")
        chosen = layers[::every]
        for layer in chosen:
            layer.forward = partial(_checkpointed, self._marked(layer.forward))
        return len(chosen)

    def _marked(self, forward: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = len(self.recorder.records)
            try:
                return forward(*args, **kwargs)
            finally:  # also when the recomputation stops early (torch raises inside to stop it)
                if self.recorder.phase is Phase.BACKWARD:
                    self.spans.append((start, len(self.recorder.records)))

        return run

    def flagged(self, records: list[OpRecord]) -> list[OpRecord]:
        """``records`` with the ops of every recomputation flagged ``recomputed``."""
        inside = {i for a, b in self.spans for i in range(a, b)}
        return [replace(o, recomputed=True) if o.index in inside else o for o in records]


def _checkpointed(forward: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from torch.utils.checkpoint import checkpoint

    return checkpoint(forward, *args, use_reentrant=False, **kwargs)
