"""Reductions over one dim of a matrix: sum, mean, amax."""

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
    rand,
    row_dtype,
    row_shapes,
    sample_matrix,
    short_name,
)

REDUCTIONS = {"sum": torch.sum, "mean": torch.mean, "amax": torch.amax}


@register_family
class Reduction(MatrixFamily):
    """Reduce ``rows x cols`` over dim 0 (columns) or dim 1 (rows, the contiguous one)."""

    name = "reduction"
    ops = main_ops = tuple(f"aten.{op}" for op in REDUCTIONS)
    tensors = 1.0

    @override
    def sample(self, rng: random.Random) -> Config:
        return {"op": rng.choice(sorted(REDUCTIONS)), "dim": rng.choice((0, 1, 1)), **sample_matrix(rng)}

    @override
    def build(self, config: Config, device: str) -> Closure:
        x = rand((config["rows"], config["cols"]), config["dtype"], device)
        f, dim = REDUCTIONS[config["op"]], config["dim"]
        return lambda: f(x, dim)

    @override
    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        dtype, shapes = row_dtype(row), row_shapes(row)
        if dtype is None or not shapes or not shapes[0]:
            return None
        return {"op": short_name(row), "dim": 1, **as_matrix(shapes[0]), "dtype": dtype}
