"""Indexed reads and writes: ``gather``, ``scatter_add`` and ``index_select``."""

from __future__ import annotations

import random

import torch
from typing_extensions import override

from flopcast.calibration.microbench import register_family
from flopcast.calibration.microbench.base import Closure, Config, Family, itemsize, log_int, rand, sample_matrix


@register_family
class Indexing(Family):
    """A ``rows x cols`` source read or written at ``n_index`` random positions per row (or rows)."""

    name = "indexing"
    main_ops = ("aten.gather", "aten.scatter_add", "aten.index_select")
    shrink_keys = ("rows", "cols", "n_index")

    @override
    def sample(self, rng: random.Random) -> Config:
        return {"op": rng.choice(("gather", "scatter_add", "index_select")), **sample_matrix(rng, 32768),
                "n_index": log_int(rng, 1, 32768)}

    @override
    def working_set_bytes(self, config: Config) -> int:
        r, c, k = config["rows"], config["cols"], config["n_index"]
        out = k * c if config["op"] == "index_select" else r * k
        return itemsize(config["dtype"]) * (2 * r * c + 2 * out) + 8 * out

    @override
    def build(self, config: Config, device: str) -> Closure:
        r, c, k, dtype = config["rows"], config["cols"], config["n_index"], config["dtype"]
        x = rand((r, c), dtype, device)
        if config["op"] == "index_select":
            rows = torch.randint(0, r, (k,), device=device)
            return lambda: torch.index_select(x, 0, rows)
        idx = torch.randint(0, c, (r, k), device=device)
        if config["op"] == "gather":
            return lambda: torch.gather(x, 1, idx)
        src = rand((r, k), dtype, device)
        return lambda: torch.scatter_add(x, 1, idx, src)
