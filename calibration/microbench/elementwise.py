"""Pointwise ops: unary activations and binary arithmetic with broadcasting."""

from __future__ import annotations

import math
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
    MatrixFamily,
    as_matrix,
    rand,
    row_dtype,
    row_shapes,
    sample_matrix,
    short_name,
)

UNARY = {"relu": torch.relu, "gelu": F.gelu, "silu": F.silu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
         "exp": torch.exp}
BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow}
# Shape of the second operand of a binary op, per broadcast pattern.
BROADCASTS = {"none": lambda r, c: (r, c), "row": lambda r, c: (1, c), "col": lambda r, c: (r, 1),
              "scalar": lambda r, c: ()}


@register_family
class Unary(MatrixFamily):
    """``y = f(x)`` for common activations."""

    name = "elementwise_unary"
    ops = main_ops = tuple(f"aten.{op}" for op in UNARY)

    @override
    def sample(self, rng: random.Random) -> Config:
        return {"op": rng.choice(sorted(UNARY)), **sample_matrix(rng)}

    @override
    def build(self, config: Config, device: str) -> Closure:
        x, f = rand((config["rows"], config["cols"]), config["dtype"], device), UNARY[config["op"]]
        return lambda: f(x)

    @override
    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        dtype = row_dtype(row)
        if dtype is None:
            return None
        return {"op": short_name(row), **as_matrix(row_shapes(row)[0]), "dtype": dtype}


@register_family
class Binary(MatrixFamily):
    """``z = x (op) y`` with ``y`` full, a row, a column or a 0-d tensor."""

    name = "elementwise_binary"
    ops = main_ops = tuple(f"aten.{op}" for op in BINARY)
    tensors = 3.0

    @override
    def sample(self, rng: random.Random) -> Config:
        return {"op": rng.choice(sorted(BINARY)), "broadcast": rng.choice(sorted(BROADCASTS)), **sample_matrix(rng)}

    @override
    def build(self, config: Config, device: str) -> Closure:
        r, c, dtype = config["rows"], config["cols"], config["dtype"]
        x, y = rand((r, c), dtype, device), rand(BROADCASTS[config["broadcast"]](r, c), dtype, device)
        f = BINARY[config["op"]]
        return lambda: f(x, y)

    @override
    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        dtype, shapes = row_dtype(row), row_shapes(row)
        if dtype is None or not shapes:
            return None
        dims = as_matrix(shapes[0])
        other = shapes[1] if len(shapes) > 1 else []
        size = math.prod(other)
        if size == dims["rows"] * dims["cols"]:
            broadcast = "none"
        elif size <= 1:
            broadcast = "scalar"
        else:
            broadcast = "row" if other[-1] == dims["cols"] else "col"
        return {"op": short_name(row), "broadcast": broadcast, **dims, "dtype": dtype}
