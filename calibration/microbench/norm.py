"""Normalisations: layer, batch, group and RMS norm, forward or backward."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
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


def _groups(channels: int) -> int:
    return math.gcd(channels, 32)


# kind -> (normalise x of shape [n, c, spatial] with affine weight w and bias b, keeps spatial dim)
NORMS: dict[str, tuple[Callable[..., torch.Tensor], bool]] = {
    "layer": (lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b), False),
    "rms": (lambda x, w, b: F.rms_norm(x, (x.shape[-1],), w), False),
    "batch": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), True),
    "group": (lambda x, w, b: F.group_norm(x, _groups(x.shape[1]), w, b), True),
}
_KIND_OF_OP = {"aten.native_layer_norm": "layer", "aten.native_batch_norm": "batch",
               "aten._native_batch_norm_legit": "batch", "aten.native_group_norm": "group",
               "aten._fused_rms_norm": "rms"}


@register_family
class Norm(Family):
    """``[n, c]`` (layer, RMS: normalised over ``c``) or ``[n, c, spatial]`` (batch, group) inputs."""

    name = "norm"
    ops = (*_KIND_OF_OP, *(f"{op}_backward" for op in _KIND_OF_OP))
    main_ops = ("aten.native_", "aten._native_batch_norm", "aten._fused_rms_norm")
    shrink_keys = ("n", "c", "spatial")

    @override
    def sample(self, rng: random.Random) -> Config:
        kind = rng.choice(sorted(NORMS))
        spatial = log_int(rng, 1, 4096) if NORMS[kind][1] else 1
        return {"kind": kind, "pass": rng.choice(("fwd", "bwd")), "n": log_int(rng, 1, 16384),
                "c": log_int(rng, 1, 8192), "spatial": spatial}

    @override
    def working_set_bytes(self, config: Config) -> int:
        copies = 4 if config["pass"] == "bwd" else 2  # x, y (+ dy, dx)
        return copies * itemsize(config["dtype"]) * config["n"] * config["c"] * config["spatial"]

    @override
    def build(self, config: Config, device: str) -> Closure:
        f, spatial = NORMS[config["kind"]]
        shape = (config["n"], config["c"], config["spatial"]) if spatial else (config["n"], config["c"])
        grad = config["pass"] == "bwd"
        x = rand(shape, config["dtype"], device, requires_grad=grad)
        w = rand((config["c"],), config["dtype"], device, requires_grad=grad)
        b = rand((config["c"],), config["dtype"], device, requires_grad=grad)
        if not grad:
            return lambda: f(x, w, b)
        return grad_closure(f(x, w, b), [x, w, b] if config["kind"] != "rms" else [x, w])

    @override
    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        dtype, name = row_dtype(row), packet(str(row["op"]))
        backward = name.endswith("_backward")
        kind = _KIND_OF_OP.get(name.removesuffix("_backward"))
        shapes = row_shapes(row)
        x = shapes[1] if backward and len(shapes) > 1 else shapes[0]  # backward ops take dy first
        if dtype is None or kind is None or not x:
            return None
        if NORMS[kind][1]:
            dims = {"n": x[0], "c": x[1] if len(x) > 1 else 1, "spatial": max(1, math.prod(x[2:]))}
        else:
            dims = {"n": max(1, math.prod(x[:-1])), "c": x[-1], "spatial": 1}
        return {"kind": kind, "pass": "bwd" if backward else "fwd", **dims, "dtype": dtype}
