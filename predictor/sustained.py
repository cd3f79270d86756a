"""What share of its spec-sheet FP32 peak and memory bandwidth a GPU sustains on large kernels.

A datasheet peak is lanes x boost clock. Under a long dense kernel a power-limited card (a 70 W T4) drops far
below its boost clock, an SM that must issue an FP32 instruction every cycle to fill 128 lanes (Pascal GP104,
Hopper) leaves no slot for the loads a GEMM needs, while a 250 W V100 sustains 90 % of its peak. A GPU's
fp32 roofline is scaled by this share, measured where the GPU has data and predicted from its spec sheet
otherwise, so the op model only learns how shapes fall short of a sustained ceiling, which transfers.

Measured: the 90th percentile of the achieved rate of the device's large strict-fp32 GEMM rows (at least
:data:`MIN_ROWS` of :data:`BIG_GEMM_FLOPS` or more) over its issue-limited peak, or its measured matmul
ceiling (``hardware probe --measure``, a calibration campaign); bandwidth likewise from large element-wise
rows or the measured copy bandwidth. Predicted: a log-linear fit over the measured GPUs of the compute share
on the base / boost clock ratio (how far the card may throttle at its power limit) and whether its SMs have
128 FP32 lanes to issue to; the bandwidth share is the measured GPUs' median.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.device_traits import fp32_issue_share, traits

BIG_GEMM_FLOPS = 1e10
"""Smallest GEMM (FLOPs) whose rate shows the sustained ceiling rather than its launch and tail."""
BIG_STREAM_BYTES = 1e8
"""Smallest element-wise op (bytes moved) whose rate shows the sustained bandwidth."""
MIN_ROWS = 5
QUANTILE = 0.9
RIDGE = 0.1
SHARE_RANGE = (0.2, 1.0)
"""Bounds of a predicted share."""


def issue_peak_flops_per_s(d: HardwareDescriptor) -> float:
    """The fp32 peak a GPU's dedicated FP32 lanes give, FLOP/s (datasheet peak x :func:`fp32_issue_share`)."""
    return float(d.peak_flops_per_s.get("fp32") or 0.0) * fp32_issue_share(d)


def measured_shares(rows: pd.DataFrame, d: HardwareDescriptor) -> dict[str, float]:
    """The ``compute`` and ``bandwidth`` shares a GPU's own op rows (or measured ceilings) show; NaN where neither.

    Args:
        rows: the device's trusted microbenchmark rows (``MICROBENCH_COLUMNS``).
        d: its descriptor.
    """
    out = {"compute": math.nan, "bandwidth": math.nan}
    peak, bw = issue_peak_flops_per_s(d), float(d.memory_bandwidth_bytes_per_s or 0.0)
    if len(rows) and peak > 0:
        gemm = rows[(rows["category"] == "matmul") & (rows["dtype"] == "float32")
                    & (rows["flops"].astype(float) >= BIG_GEMM_FLOPS)]
        if len(gemm) >= MIN_ROWS:
            out["compute"] = float(np.quantile(gemm["flops"].astype(float) / gemm["time_s"].astype(float), QUANTILE)
                                   / peak)
    if math.isnan(out["compute"]) and d.measured_peak_flops_per_s.get("fp32") and peak > 0:
        out["compute"] = float(d.measured_peak_flops_per_s["fp32"]) / peak
    if len(rows) and bw > 0:
        moved = rows["bytes_read"].astype(float) + rows["bytes_written"].astype(float)
        stream = rows[(rows["category"] == "elementwise") & (moved >= BIG_STREAM_BYTES)]
        if len(stream) >= MIN_ROWS:
            rate = (stream["bytes_read"].astype(float) + stream["bytes_written"].astype(float)) / stream["time_s"]
            out["bandwidth"] = float(np.quantile(rate.astype(float), QUANTILE) / bw)
    if math.isnan(out["bandwidth"]) and d.measured_bandwidth_bytes_per_s and bw > 0:
        out["bandwidth"] = float(d.measured_bandwidth_bytes_per_s) / bw
    return out


def _design(d: HardwareDescriptor) -> np.ndarray | None:
    t = traits(d)
    ratio, lanes = t["hw_base_ratio"], t["hw_lanes"]
    if not (ratio > 0) or not (lanes > 0):
        return None
    dedicated = lanes * fp32_issue_share(d)
    return np.array([1.0, math.log(ratio), float(dedicated >= 128)])


def fit_share_model(measured: Sequence[tuple[HardwareDescriptor, Mapping[str, float]]]) -> dict[str, float]:
    """Coefficients predicting a GPU's shares from its spec sheet, fitted on GPUs with measured shares.

    Args:
        measured: (descriptor, :func:`measured_shares`) of each GPU with data.

    Returns:
        ``compute_coef_<i>`` (intercept, log base/boost ratio, 128 dedicated lanes; ln share) with three or
        more GPUs of known design, and the median ``compute`` and ``bandwidth`` shares (used where the design is
        unknown); empty without measured GPUs.
    """
    rows = [(_design(d), s["compute"]) for d, s in measured if math.isfinite(s.get("compute", math.nan))]
    rows = [(z, s) for z, s in rows if z is not None]
    out: dict[str, float] = {}
    computes = [s["compute"] for _, s in measured if math.isfinite(s.get("compute", math.nan))]
    bws = [s["bandwidth"] for _, s in measured if math.isfinite(s.get("bandwidth", math.nan))]
    if computes:
        out["compute"] = float(np.median(computes))
    if bws:
        out["bandwidth"] = float(np.median(bws))
    if len(rows) >= 3:
        z = np.array([r[0] for r in rows])
        y = np.log([r[1] for r in rows])
        penalty = RIDGE * np.eye(z.shape[1])
        penalty[0, 0] = 0.0
        coef = np.linalg.solve(z.T @ z + penalty, z.T @ y)
        out.update({f"compute_coef_{i}": float(c) for i, c in enumerate(coef)})
    return out


def predicted_shares(d: HardwareDescriptor, model: Mapping[str, float]) -> dict[str, float]:
    """A GPU's shares from its spec sheet by :func:`fit_share_model`'s coefficients (medians where unknown)."""
    z = _design(d)
    coef = [model.get(f"compute_coef_{i}") for i in range(3)]
    compute = model.get("compute", math.nan)
    if z is not None and all(c is not None for c in coef):
        compute = float(np.exp(z @ np.array(coef, float)))
    return {"compute": float(np.clip(compute, *SHARE_RANGE)) if math.isfinite(compute) else math.nan,
            "bandwidth": float(np.clip(model.get("bandwidth", math.nan), *SHARE_RANGE))
            if math.isfinite(model.get("bandwidth", math.nan)) else math.nan}
