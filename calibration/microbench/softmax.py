"""Softmax and log-softmax over the last dim, forward or backward."""

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
    grad_closure,
    packet,
    rand,
    row_dtype,
    row_shapes,
    sample_matrix,
)

FUNCTIONS = {"softmax": torch.softmax, "log_softmax": torch.log_softmax}


@register_family
class Softmax(MatrixFamily):
    """``softmax(x, -1)`` over ``rows x cols``; ``bwd`` times only the gradient of a kept forward."""

    name = "softmax"
    ops = ("aten._softmax", "aten._log_softmax", "aten._softmax_backward_data", "aten._log_softmax_backward_data")
    main_ops = ops
    tensors = 3.0

    @override
    def sample(self, rng: random.Random) -> Config:
        return {"op": rng.choice(sorted(FUNCTIONS)), "pass": rng.choice(("fwd", "bwd")), **sample_matrix(rng)}

    @override
    def build(self, config: Config, device: str) -> Closure:
        f = FUNCTIONS[config["op"]]
        x = rand((config["rows"], config["cols"]), config["dtype"], device, requires_grad=config["pass"] == "bwd")
        if config["pass"] == "fwd":
            return lambda: f(x, -1)
        return grad_closure(f(x, -1), [x])

    @override
    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        dtype, name = row_dtype(row), packet(str(row["op"]))
        if dtype is None:
            return None
        op = "log_softmax" if "log_softmax" in name else "softmax"
        return {"op": op, "pass": "bwd" if name.endswith("backward_data") else "fwd",
                **as_matrix(row_shapes(row)[0]), "dtype": dtype}
