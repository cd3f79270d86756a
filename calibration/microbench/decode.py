"""Decode-shaped work of ``model.generate()``: GEMV-like matmuls (M = batch) and attention over a long KV cache.

A decode step multiplies a few rows (one token per sequence) by every weight matrix of the model and attends
one query per sequence over the whole cache: memory-bound work whose time is the weights' and the cache's
bytes over the memory bandwidth, not FLOPs over the peak. In a real step each weight (and each layer's cache)
is read once per token after the other layers' have gone through the caches, so these benchmarks rotate
through enough copies of their weight (or cache) that one call finds its operands out of the last private
cache level (:data:`ROTATE_BYTES` in all): timing one small matrix over and over would time a cache-resident
GEMV no decode step runs. Shapes follow the layouts the traced models run: ``x @ w.t()`` (``nn.Linear``
without bias: ``mm``), ``addmm(bias, x, w)`` (GPT-2's ``Conv1D``), SDPA with one query per sequence over
``kv_heads <= heads`` (grouped-query attention, ``enable_gqa``).
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from typing_extensions import override

from flopcast.calibration.microbench import register_family
from flopcast.calibration.microbench.base import Closure, Config, Family, itemsize, log_int, rand

ROTATE_BYTES = 256 * 2**20
"""Bytes of operand copies a decode benchmark cycles through (beyond a CPU core's L2 and a GPU's L2)."""
MAX_COPIES = 64
"""Most copies of an operand kept for rotation."""


def copies(operand_bytes: int) -> int:
    """How many copies of an operand of ``operand_bytes`` rotate so that one call misses the private caches."""
    return max(1, min(MAX_COPIES, math.ceil(ROTATE_BYTES / max(operand_bytes, 1))))


def _cycle(make: Any, n: int) -> Any:
    """An endless iterator over ``n`` freshly made operands (each ``make()``)."""
    return itertools.cycle([make() for _ in range(n)])


@register_family
class DecodeMatmul(Family):
    """``[M, K] x [K, N]`` with M from 1 to 64 (a decode batch) and K, N from 256 to 16384, weights rotated.

    Rows are named after the op the model runs (``aten.mm`` or ``aten.addmm``), as a matmul family's rows are.
    """

    name = "matmul_decode"
    main_ops = ("aten.mm", "aten.addmm")
    shrink_keys = ("k", "n")
    gpu_dtypes = ("fp32", "bf16", "fp16")

    @override
    def sample(self, rng: random.Random) -> Config:
        return {"variant": rng.choice(("linear", "addmm")), "m": log_int(rng, 1, 64),
                "k": log_int(rng, 256, 16384), "n": log_int(rng, 256, 16384)}

    def _weight_bytes(self, config: Config) -> int:
        return itemsize(config["dtype"]) * config["k"] * config["n"]

    @override
    def working_set_bytes(self, config: Config) -> int:
        return self._weight_bytes(config) + itemsize(config["dtype"]) * config["m"] * (config["k"] + 2 * config["n"])

    @override
    def build(self, config: Config, device: str) -> Closure:
        m, k, n, dtype = (config[d] for d in ("m", "k", "n", "dtype"))
        x = rand((m, k), dtype, device)
        n_copies = copies(self._weight_bytes(config))
        if config["variant"] == "linear":  # nn.Linear without bias: x @ w.t(), w stored [N, K]
            weights = _cycle(lambda: rand((n, k), dtype, device), n_copies)
            return lambda: F.linear(x, next(weights))
        bias = rand((n,), dtype, device)
        weights = _cycle(lambda: rand((k, n), dtype, device), n_copies)
        return lambda: torch.addmm(bias, x, next(weights))


@register_family
class DecodeAttention(Family):
    """SDPA of ``q_len`` (1 to 4) queries per sequence over a KV cache of 16 to 16384 tokens, caches rotated.

    Query heads 4 to 32, KV heads a divisor of them (1, 2, 4, 8 queries per KV head: grouped-query attention
    through ``enable_gqa``), head dims 64 and 128, batch 1 to 32.
    """

    name = "sdpa_decode"
    main_ops = ("aten._scaled_dot_product", "aten.scaled_dot_product")
    shrink_keys = ("s_kv", "b")
    group_sizes: ClassVar[tuple[int, ...]] = (1, 2, 4, 8)

    @override
    def sample(self, rng: random.Random) -> Config:
        group = rng.choice(self.group_sizes)
        kv_heads = rng.choice((1, 2, 4, 8))
        return {"b": log_int(rng, 1, 32), "heads": min(32, kv_heads * group), "kv_heads": kv_heads,
                "s_q": rng.choice((1, 1, 1, 4)), "s_kv": log_int(rng, 16, 16384), "head_dim": rng.choice((64, 128))}

    def _cache_bytes(self, config: Config) -> int:
        return 2 * itemsize(config["dtype"]) * config["b"] * config["kv_heads"] * config["s_kv"] * config["head_dim"]

    @override
    def working_set_bytes(self, config: Config) -> int:
        q = itemsize(config["dtype"]) * config["b"] * config["heads"] * config["s_q"] * config["head_dim"]
        return self._cache_bytes(config) + 2 * q

    @override
    def build(self, config: Config, device: str) -> Closure:
        b, h, kv, d, dtype = (config[k] for k in ("b", "heads", "kv_heads", "head_dim", "dtype"))
        q = rand((b, h, config["s_q"], d), dtype, device)
        caches = _cycle(lambda: tuple(rand((b, kv, config["s_kv"], d), dtype, device) for _ in range(2)),
                        copies(self._cache_bytes(config)))
        gqa = kv != h

        def step() -> Any:
            k, v = next(caches)
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)

        return step
