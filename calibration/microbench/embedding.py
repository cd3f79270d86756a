"""Embedding lookups (``embedding``, ``embedding_bag`` with sum pooling), forward or backward."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from typing_extensions import override

from flopcast.calibration.microbench import register_family
from flopcast.calibration.microbench.base import (
    Closure,
    Config,
    Family,
    grad_closure,
    itemsize,
    log_int,
    packet,
    rand,
    row_dtype,
    row_shapes,
)


@register_family
class Embedding(Family):
    """A ``[num_embeddings, dim]`` table read at ``n_indices`` random rows (in bags of ``bag_size``)."""

    name = "embedding"
    ops = ("aten.embedding", "aten._embedding_bag", "aten.embedding_dense_backward", "aten._embedding_bag_backward",
           "aten._embedding_bag_dense_backward")
    main_ops = ops
    shrink_keys = ("num_embeddings", "dim", "n_indices")

    @override
    def sample(self, rng: random.Random) -> Config:
        op = rng.choice(("embedding", "embedding_bag"))
        return {"op": op, "pass": rng.choice(("fwd", "bwd")), "num_embeddings": log_int(rng, 16, 1 << 21),
                "dim": log_int(rng, 4, 2048), "n_indices": log_int(rng, 1, 1 << 18),
                "bag_size": log_int(rng, 1, 64) if op == "embedding_bag" else 1}

    @override
    def working_set_bytes(self, config: Config) -> int:
        table = config["num_embeddings"] * config["dim"] * (2 if config["pass"] == "bwd" else 1)
        out = config["n_indices"] // max(1, config["bag_size"]) * config["dim"]
        return itemsize(config["dtype"]) * (table + 2 * out) + 8 * config["n_indices"]

    @override
    def build(self, config: Config, device: str) -> Closure:
        grad = config["pass"] == "bwd"
        weight = rand((config["num_embeddings"], config["dim"]), config["dtype"], device, requires_grad=grad)
        idx = torch.randint(0, config["num_embeddings"], (config["n_indices"],), device=device)
        if config["op"] == "embedding":
            forward = lambda: F.embedding(idx, weight)  # noqa: E731
        else:
            bag = max(1, min(config["bag_size"], config["n_indices"]))
            offsets = torch.arange(0, config["n_indices"], bag, device=device)
            forward = lambda: F.embedding_bag(idx, weight, offsets, mode="sum")  # noqa: E731
        return grad_closure(forward(), [weight]) if grad else forward

    @override
    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        dtype, name, shapes = row_dtype(row), packet(str(row["op"])), row_shapes(row)
        if dtype is None or name != "aten.embedding" or len(shapes) < 2:
            return None  # only the plain forward keeps the table shape in its inputs
        (num, dim), idx = shapes[0], shapes[1]
        n = 1
        for d in idx:
            n *= d
        return {"op": "embedding", "pass": "fwd", "num_embeddings": num, "dim": dim, "n_indices": max(1, n),
                "bag_size": 1, "dtype": dtype}
