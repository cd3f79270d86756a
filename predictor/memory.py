"""Peak memory: the analysis estimate corrected by a fitted allocator overhead, and whether a step fits.

Measured peaks (``max_memory_allocated`` on GPUs, profiler peaks on CPUs) are fitted as
``measured = scale x estimate + offset`` per hardware (pooled per device kind, identity for the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flopcast.predictor.op_model import check_fitted
from flopcast.predictor.step_model import MIN_STEPS, MIN_STEPS_FULL

CONTEXT_BYTES = {"gpu": 512 * 2**20, "cpu": 0, "other": 0}
"""Device memory taken outside the allocator's peak (CUDA context, cuBLAS workspace), bytes."""

SCALE_GRID = tuple(np.round(np.linspace(0.8, 1.5, 29), 4).tolist())
"""Scales tried by the fit (the identity is always a candidate)."""


class MemoryModel:
    """Peak memory from the static estimate: ``scale x estimate + offset`` per hardware or device kind.

    Args:
        min_steps: fewest measured steps for a fit of its own.
    """

    stages_: dict[str, dict[str, float]] | None = None

    def __init__(self, min_steps: int = MIN_STEPS):
        self.min_steps = min_steps

    def fit(self, frame: pd.DataFrame, measured_bytes: np.ndarray) -> MemoryModel:
        """Fit on steps with a measured peak.

        Args:
            frame: ``hardware``, ``kind`` and ``est_peak_memory_bytes`` per step.
            measured_bytes: measured peaks, bytes (rows <= 0 or NaN are skipped).

        Returns:
            ``self``.
        """
        measured = np.asarray(measured_bytes, float)
        est = frame["est_peak_memory_bytes"].to_numpy(float)
        ok = np.isfinite(measured) & (measured > 0) & np.isfinite(est) & (est > 0)
        self.stages_ = {}
        keys = [(f"kind:{k}", frame["kind"].to_numpy() == k) for k in frame["kind"].unique()]
        keys += [(str(h), frame["hardware"].to_numpy() == h) for h in frame["hardware"].unique()]
        for key, rows in keys:
            rows = rows & ok
            if rows.sum() >= self.min_steps:
                self.stages_[key] = _fit_affine(est[rows], measured[rows])
        return self

    def predict(self, hardware: str, kind: str, est_bytes: float) -> float:
        """Predicted peak of one step, bytes.

        Raises:
            NotFittedError: before ``fit``.
        """
        check_fitted(self, "stages_")
        s = self.stages_.get(hardware) or self.stages_.get(f"kind:{kind}") or {"scale": 1.0, "offset_bytes": 0.0}
        return float(max(s["scale"] * est_bytes + s["offset_bytes"], 0.5 * est_bytes))

    def is_calibrated(self, hardware: str) -> bool:
        """Whether ``hardware`` has a fit of its own."""
        check_fitted(self, "stages_")
        return hardware in self.stages_

    def state(self) -> dict[str, Any]:
        """JSON-able learned state."""
        check_fitted(self, "stages_")
        return {"stages": self.stages_}

    def set_state(self, state: Mapping[str, Any]) -> MemoryModel:
        """Restore from :meth:`state`."""
        self.stages_ = {k: {n: float(v) for n, v in s.items()} for k, s in state["stages"].items()}
        return self


def _fit_affine(est: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """``measured ~ scale x est + offset`` minimising the median absolute relative error.

    Robust on purpose: a few steps far above the estimate (e.g. cuDNN convolution workspaces of fp32
    convs) must not pull every other prediction up. Candidates are the identity and each scale of
    :data:`SCALE_GRID` with the median residual as offset; with fewer than ``MIN_STEPS_FULL`` rows the scale
    stays 1 and only the offset (allocator/context bytes) is tried. The identity wins ties.
    """
    scales = SCALE_GRID if len(est) >= MIN_STEPS_FULL else (1.0,)
    best = (_median_rel_error(est, measured, 1.0, 0.0), 1.0, 0.0)
    for scale in scales:
        offset = float(np.median(measured - scale * est))
        err = _median_rel_error(est, measured, scale, offset)
        if err < best[0] - 1e-12:
            best = (err, float(scale), offset)
    err, scale, offset = best
    return {"scale": scale, "offset_bytes": offset, "rows": float(len(est)), "median_abs_pct_error": err * 100}


def _median_rel_error(est: np.ndarray, measured: np.ndarray, scale: float, offset: float) -> float:
    return float(np.median(np.abs((scale * est + offset) / measured - 1.0)))


def fits_in_memory(peak_bytes: float, memory_bytes: float, kind: str) -> bool:
    """Whether a step's peak plus the device's context overhead fits in its memory."""
    return peak_bytes + CONTEXT_BYTES.get(kind, 0) <= memory_bytes
