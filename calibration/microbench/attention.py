"""Scaled-dot-product attention, forward alone and forward + backward."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from typing_extensions import override

from flopcast.calibration.microbench import register_family
from flopcast.calibration.microbench.base import Closure, Config, Family, itemsize, log_int, rand, row_dtype, row_shapes


class Attention(Family):
    """``F.scaled_dot_product_attention`` over ``[b, heads, s, head_dim]``; sequences 1 to 8192.

    Attributes:
        backward: whether the closure also runs the backward pass.
    """

    backward: ClassVar[bool] = False
    ops: ClassVar[tuple[str, ...]] = (
        "aten._scaled_dot_product_flash_attention",
        "aten._scaled_dot_product_efficient_attention",
        "aten._scaled_dot_product_cudnn_attention",
        "aten._scaled_dot_product_flash_attention_for_cpu",
    )
    main_ops = ("aten._scaled_dot_product", "aten.scaled_dot_product")
    shrink_keys = ("b", "heads", "s_q", "s_kv")

    @override
    def sample(self, rng: random.Random) -> Config:
        s_q = log_int(rng, 1, 8192)
        self_attention = rng.random() < 0.7
        return {
            "b": log_int(rng, 1, 64),
            "heads": log_int(rng, 1, 32),
            "s_q": s_q,
            "s_kv": s_q if self_attention else log_int(rng, 1, 8192),
            "head_dim": rng.choice((32, 64, 64, 128)),
            "causal": self_attention and rng.random() < 0.5,
        }

    @override
    def working_set_bytes(self, config: Config) -> int:
        b, h, q, kv, d = (config[k] for k in ("b", "heads", "s_q", "s_kv", "head_dim"))
        tensors = 2 * b * h * q * d + 2 * b * h * kv * d  # q, out, k, v
        scores = b * h * q * kv  # the unfused (math) path materialises the score matrix
        return itemsize(config["dtype"]) * (tensors * (2 if self.backward else 1) + 2 * scores)

    @override
    def build(self, config: Config, device: str) -> Closure:
        b, h, d, dtype = config["b"], config["heads"], config["head_dim"], config["dtype"]
        grad = self.backward
        q = rand((b, h, config["s_q"], d), dtype, device, requires_grad=grad)
        k, v = (rand((b, h, config["s_kv"], d), dtype, device, requires_grad=grad) for _ in range(2))
        causal = config["causal"]
        if not grad:
            return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        g = rand((b, h, config["s_q"], d), dtype, device)

        def step() -> Any:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            return torch.autograd.grad(out, (q, k, v), g)

        return step

    @override
    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        dtype, shapes = row_dtype(row), row_shapes(row)
        if self.backward:
            shapes = shapes[1:]  # a backward op takes the output gradient first, then q, k, v
        if dtype is None or len(shapes) < 3 or len(shapes[0]) != 4:
            return None
        (b, h, s_q, d), (_, _, s_kv, _) = shapes[0], shapes[1]
        causal = bool(json.loads(row.get("attrs") or "{}").get("is_causal", False))
        return {"b": b, "heads": h, "s_q": s_q, "s_kv": s_kv, "head_dim": d, "causal": causal, "dtype": dtype}


@register_family
class AttentionForward(Attention):
    """Attention forward."""

    name = "sdpa_fwd"


@register_family
class AttentionForwardBackward(Attention):
    """Attention forward then backward (gradients of q, k and v)."""

    name = "sdpa_fwd_bwd"
    backward = True
    ops = tuple(f"{op}_backward" for op in Attention.ops)
