"""Matrix products: ``mm``, ``addmm`` (bias + product, as in ``nn.Linear``) and batched ``bmm``."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch
from typing_extensions import override

from flopcast.calibration.microbench import register_family
from flopcast.calibration.microbench.base import Closure, Config, Family, itemsize, log_int, rand, row_dtype, row_shapes

VARIANTS = ("mm", "addmm", "bmm")


@register_family
class Matmul(Family):
    """``[b,] m x k`` times ``k x n``, dims from 1 to 16384 (batch up to 512 for bmm)."""

    name = "matmul"
    ops = ("aten.mm", "aten.addmm", "aten.bmm")
    main_ops = ops
    shrink_keys = ("b", "m", "k", "n")
    gpu_dtypes = ("fp32", "tf32", "bf16", "fp16")

    @override
    def sample(self, rng: random.Random) -> Config:
        variant = rng.choice(VARIANTS)
        b = log_int(rng, 1, 512) if variant == "bmm" else 1
        return {"variant": variant, "b": b, **{d: log_int(rng, 1, 16384) for d in ("m", "k", "n")}}

    @override
    def working_set_bytes(self, config: Config) -> int:
        b, m, k, n = (config[d] for d in ("b", "m", "k", "n"))
        return itemsize(config["dtype"]) * (b * (m * k + m * n) + (b if config["variant"] == "bmm" else 1) * k * n + n)

    @override
    def build(self, config: Config, device: str) -> Closure:
        b, m, k, n, dtype = (config[d] for d in ("b", "m", "k", "n", "dtype"))
        if config["variant"] == "bmm":
            x, w = rand((b, m, k), dtype, device), rand((b, k, n), dtype, device)
            return lambda: torch.bmm(x, w)
        x, w = rand((m, k), dtype, device), rand((k, n), dtype, device)
        if config["variant"] == "addmm":
            bias = rand((n,), dtype, device)
            return lambda: torch.addmm(bias, x, w)
        return lambda: torch.mm(x, w)

    @override
    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        dtype, shapes, variant = row_dtype(row), row_shapes(row), str(row["op"]).split(".")[1]
        if dtype is None:
            return None
        if variant == "addmm":
            shapes = shapes[1:]
        (*batch, m, k), (*_, n) = shapes[0], shapes[1]
        return {"variant": variant, "b": batch[0] if batch else 1, "m": m, "k": k, "n": n, "dtype": dtype}
