"""Pure data movement: ``cat``, ``copy_`` and transpose made contiguous."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch
from typing_extensions import override

from flopcast.calibration.microbench import register_family
from flopcast.calibration.microbench.base import (
    Closure,
    Config,
    MatrixFamily,
    as_matrix,
    log_int,
    packet,
    rand,
    row_dtype,
    row_shapes,
    sample_matrix,
)


@register_family
class DataMovement(MatrixFamily):
    """Move a ``rows x cols`` tensor: concatenate ``parts`` of it, copy it, or transpose and compact it."""

    name = "data_movement"
    ops = ("aten.cat", "aten.copy_", "aten.clone")
    main_ops = ops
    tensors = 2.0

    @override
    def sample(self, rng: random.Random) -> Config:
        op = rng.choice(("cat", "copy", "transpose_contiguous"))
        return {"op": op, "parts": log_int(rng, 2, 16) if op == "cat" else 1, **sample_matrix(rng)}

    @override
    def build(self, config: Config, device: str) -> Closure:
        r, c, dtype = config["rows"], config["cols"], config["dtype"]
        if config["op"] == "cat":
            parts = [rand((max(1, r // config["parts"]), c), dtype, device) for _ in range(config["parts"])]
            return lambda: torch.cat(parts, 0)
        x = rand((r, c), dtype, device)
        if config["op"] == "copy":
            out = torch.empty_like(x)
            return lambda: out.copy_(x)
        return lambda: x.t().contiguous()

    @override
    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        dtype, name, shapes = row_dtype(row), packet(str(row["op"])), row_shapes(row)
        if dtype is None or not shapes:
            return None
        if name == "aten.cat":
            dims = as_matrix(shapes[0])
            return {"op": "cat", "parts": len(shapes), **{**dims, "rows": dims["rows"] * len(shapes)}, "dtype": dtype}
        return {"op": "copy", "parts": 1, **as_matrix(shapes[-1]), "dtype": dtype}
