"""Counting rules: the conventions a FLOP count depends on, as options with documented defaults (no torch import).

Every analysis states the rules it was counted under (``rules`` in ``analyze --json`` and ``predict --json``):

- ``causal_attention``: ``full`` (default: the whole ``Lq x Lkv`` score matrix, torch's ``FlopCounterMode``
  and the ``6 N D`` convention) or ``halved`` (what a causal kernel executes: the unmasked share of the score
  matrix, ``(L + 1) / 2L`` for a square one, :mod:`flopcast.features.attention_mask`). The cost models always
  price the executed work; the rule changes only the reported counts.
- ``count``: ``flops`` (default: FLOPs = 2 x MACs plus element-wise work) or ``macs`` (multiply-accumulates
  only, fvcore's convention): which of the two is the headline ``work`` figure.
- ``activation_checkpointing``: ``none`` (default), ``full`` (every layer of the model's stack recomputes its
  forward in the backward) or ``every-K`` (every K-th layer, torchtitan's selective layer checkpointing); the
  trace runs it, so the recomputed forward, its time and the memory saved are measured, not assumed.
- ``grad_accumulation``: micro-batches per optimizer step (``--grad-accumulation K``, a train-step option).
- ``moe_routing``: ``uniform`` (default: each token's top-k experts drawn uniformly, so every expert gets
  ``tokens x k / E`` of them) or ``measured`` (the per-expert token shares of ``--expert-load FILE``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flopcast.features.errors import OptionError

CAUSAL_RULES = ("full", "halved")
COUNT_UNITS = ("flops", "macs")
CHECKPOINTING_HELP = "none|full|every-K"
_EVERY = re.compile(r"every-([0-9]+)$")


@dataclass(frozen=True)
class CountingRules:
    """The counting conventions of one analysis (see the module docstring for each rule's meaning).

    Attributes:
        causal_attention: ``full`` or ``halved``.
        count: ``flops`` or ``macs``: the unit of the headline ``work`` figure.
        activation_checkpointing: ``none``, ``full`` or ``every-K`` (K >= 1; ``every-1`` is ``full``).
        expert_load: a JSON file of measured per-expert token shares (``None``: uniform routing).
    """

    causal_attention: str = "full"
    count: str = "flops"
    activation_checkpointing: str = "none"
    expert_load: str | None = None

    def __post_init__(self) -> None:
        if self.causal_attention not in CAUSAL_RULES:
            raise OptionError(f"--causal-attention must be {' or '.join(CAUSAL_RULES)}, not {self.causal_attention!r}")
        if self.count not in COUNT_UNITS:
            raise OptionError(f"--count must be {' or '.join(COUNT_UNITS)}, not {self.count!r}")
        if self.checkpoint_every is None:
            raise OptionError(f"--activation-checkpointing must be {CHECKPOINTING_HELP} (K >= 1), "
                              f"not {self.activation_checkpointing!r}")

    @property
    def checkpoint_every(self) -> int | None:
        """Every how many stack layers one is checkpointed: 0 for none, 1 for full, K; ``None`` if unparsable."""
        text = self.activation_checkpointing
        if text == "none":
            return 0
        if text == "full":
            return 1
        m = _EVERY.match(text)
        return int(m.group(1)) if m and int(m.group(1)) >= 1 else None

    @property
    def moe_routing(self) -> str:
        """``uniform`` or ``measured`` (with ``--expert-load``)."""
        return "uniform" if self.expert_load is None else "measured"

    def as_dict(self, grad_accumulation: int = 1) -> dict[str, Any]:
        """The ``rules`` object of the JSON forms."""
        return {"causal_attention": self.causal_attention, "count": self.count,
                "activation_checkpointing": self.activation_checkpointing, "grad_accumulation": grad_accumulation,
                "moe_routing": self.moe_routing, "expert_load": self.expert_load}


DEFAULT_RULES = CountingRules()
