"""What ``--mode generate`` runs: a prompt of P tokens, N new tokens, the KV cache kind (no torch import).

``model.generate()`` with greedy decoding and a fixed number of new tokens runs N forwards: the prefill
over the P prompt tokens (which gives the first new token) and N - 1 decode steps of one token each, decode
step ``j`` (1-based) attending over a KV cache of ``P + j - 1`` tokens plus its own. The cache at the end
holds ``P + N - 1`` tokens (the last token is never fed back). :mod:`flopcast.features.generate` traces the
prefill and a few decode steps and interpolates the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from flopcast.features.errors import OptionError

CACHES = ("dynamic", "static")
"""KV caches: ``dynamic`` (transformers' ``DynamicCache``, the default: concatenated one token at a time) or
``static`` (``StaticCache``: allocated for ``P + N`` tokens up front, written in place, attended in full)."""
MIN_TRACED = 2
"""Fewest decode steps traced (the first and the last); more where the cost curve bends."""


class GenerateError(OptionError):
    """``--mode generate`` cannot run as asked: a model without a KV-cache forward, N = 0, a prompt too long."""


@dataclass(frozen=True)
class GenerateOptions:
    """One generation request: ``batch`` prompts of ``prompt_len`` tokens, ``new_tokens`` generated each.

    Attributes:
        prompt_len: prompt tokens P per sequence.
        new_tokens: generated tokens N per sequence (``min_new_tokens = max_new_tokens = N``).
        cache: ``dynamic`` or ``static`` (:data:`CACHES`).
        max_traced: most decode steps traced; the rest are interpolated.
        tolerance: a segment between two traced steps is split (one more trace at its middle) while the
            middle step's FLOPs, bytes or predicted time differ from the straight line by more than this share.
    """

    prompt_len: int
    new_tokens: int
    cache: str = "dynamic"
    max_traced: int = 9
    tolerance: float = 0.002

    def __post_init__(self) -> None:
        if self.new_tokens < 1:
            raise GenerateError(f"--new-tokens must be >= 1 generated token, not {self.new_tokens}")
        if self.prompt_len < 1:
            raise GenerateError(f"--prompt-len must be >= 1 token, not {self.prompt_len}")
        if self.cache not in CACHES:
            raise GenerateError(f"--cache must be {' or '.join(CACHES)}, not {self.cache!r}")
        if self.max_traced < MIN_TRACED:
            raise GenerateError(f"at least {MIN_TRACED} decode steps must be traced, not {self.max_traced}")

    @property
    def decode_steps(self) -> int:
        """Decode forwards after the prefill: N - 1."""
        return self.new_tokens - 1

    @property
    def first_cache_len(self) -> int:
        """Tokens in the KV cache when the first decode step starts: P."""
        return self.prompt_len

    @property
    def last_cache_len(self) -> int:
        """Tokens in the KV cache when the last decode step starts: P + N - 2."""
        return self.prompt_len + self.new_tokens - 2

    @property
    def final_cache_len(self) -> int:
        """Tokens in the KV cache at the end of the request: P + N - 1."""
        return self.prompt_len + self.new_tokens - 1

    @property
    def total_len(self) -> int:
        """Positions the request spans, prompt and generated tokens: P + N."""
        return self.prompt_len + self.new_tokens
