"""Offsets of a GPU the op model has no rows of, predicted from its spec sheet.

The op model gives each GPU of its training data two offsets of the log time ratio, one for compute-bound
and one for memory-bound ops (:func:`flopcast.predictor.op_model.device_offsets`): how far below its
datasheet peak and bandwidth the GPU runs once shapes are accounted for. A power-limited card (a 70 W T4)
drops far below its boost clock under a long kernel, an SM that must issue an FP32 instruction every cycle
to fill 128 lanes leaves no slot for a GEMM's loads, while a 250 W V100 sustains 90 % of its peak.

A GPU without rows gets, in order: the offsets of a trained GPU of the same silicon at the same clocks and
power per SM (an H100 SXM from an H200: one GH100 die, the same clocks and 700 W; only memory differs, so
only the memory offset is not taken); else a compute offset from a log-linear fit over the trained GPUs on
the base / boost clock ratio (how far the card may throttle at its power limit) and whether its SMs have 128
dedicated FP32 lanes; the memory offset is the trained GPUs' median.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.device_traits import device_extra, fp32_issue_share, traits

RIDGE = 0.1
MIN_GPUS = 3
"""Fewest trained GPUs of known design for the compute fit (fewer: the median)."""


def silicon_key(d: HardwareDescriptor) -> str:
    """What makes two GPUs run a kernel alike: architecture, SMs, base and boost clock, power per SM ("" if unknown)."""
    extra = device_extra(d)
    cc, base = extra.get("compute_capability"), extra.get("base_clock_hz")
    if d.kind != "gpu" or not cc or not base or not d.compute_units or not d.clock_hz or not d.tdp_w:
        return ""
    return f"{cc}|{d.compute_units}|{float(base):.0f}|{float(d.clock_hz):.0f}|{d.tdp_w / d.compute_units:.2f}"


def _design(d: HardwareDescriptor) -> np.ndarray | None:
    t = traits(d)
    ratio, lanes = t["hw_base_ratio"], t["hw_lanes"]
    if not (ratio > 0) or not (lanes > 0):
        return None
    return np.array([1.0, math.log(ratio), float(lanes * fp32_issue_share(d) >= 128)])


def fit_offset_model(trained: Sequence[tuple[HardwareDescriptor, Sequence[float]]]) -> dict[str, Any]:
    """What :func:`predicted_offsets` needs, from the trained GPUs' descriptors and offsets.

    Returns:
        ``compute`` and ``memory`` (medians, ln units), ``compute_coef_<i>`` (the log-linear fit, with at least
        :data:`MIN_GPUS` GPUs of known design) and ``silicon`` (offsets by :func:`silicon_key`).
    """
    if not trained:
        return {}
    offsets = np.array([o for _, o in trained], float)
    out: dict[str, Any] = {"compute": float(np.median(offsets[:, 0])), "memory": float(np.median(offsets[:, 1])),
                           "silicon": {k: list(map(float, o)) for d, o in trained if (k := silicon_key(d))}}
    rows = [(z, o[0]) for d, o in trained if (z := _design(d)) is not None]
    if len(rows) >= MIN_GPUS:
        z, y = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        penalty = RIDGE * np.eye(z.shape[1])
        penalty[0, 0] = 0.0
        out.update({f"compute_coef_{i}": float(c) for i, c in
                    enumerate(np.linalg.solve(z.T @ z + penalty, z.T @ y))})
    return out


def predicted_offsets(d: HardwareDescriptor, model: Mapping[str, Any]) -> list[float] | None:
    """A GPU's (compute, memory) offsets from its spec sheet (``None`` without a fitted model or for a CPU)."""
    if d.kind != "gpu" or "compute" not in model:
        return None
    compute, memory = float(model["compute"]), float(model["memory"])
    same = model.get("silicon", {}).get(silicon_key(d)) if silicon_key(d) else None
    coef = [model.get(f"compute_coef_{i}") for i in range(3)]
    if same is not None:
        compute = float(same[0])
    elif (z := _design(d)) is not None and all(c is not None for c in coef):
        compute = float(z @ np.array(coef, float))
    return [compute, memory]
