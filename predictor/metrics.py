"""Accuracy metrics of predictions against measurements (the evaluation's table columns)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from flopcast.datasets.validate import spearman


def ape_pct(predicted: ArrayLike, measured: ArrayLike) -> np.ndarray:
    """Absolute % error of each prediction against its measurement (same units; NaN where either is missing)."""
    return np.abs(np.asarray(predicted, float) / np.asarray(measured, float) - 1.0) * 100


def error_metrics(predicted: np.ndarray, measured: np.ndarray, lower: np.ndarray | None = None,
                  upper: np.ndarray | None = None) -> dict[str, float]:
    """Median and mean absolute % error, share within ±10 % and ±25 %, Spearman, interval coverage.

    Rows where either value is missing or the measurement is not positive are left out.

    Args:
        predicted: predictions (any unit).
        measured: measurements (same unit).
        lower: lower interval bounds (10 % quantiles), optional.
        upper: upper interval bounds (90 % quantiles), optional.

    Returns:
        ``n``, ``median_ape_pct``, ``mean_ape_pct``, ``within_10_pct``, ``within_25_pct`` (shares in %),
        ``spearman`` and ``coverage_pct`` (share of measurements inside [lower, upper], NaN without bounds);
        NaN metrics for no rows.
    """
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    ok = np.isfinite(p) & np.isfinite(m) & (m > 0)
    p, m = p[ok], m[ok]
    if len(m) == 0:
        return {"n": 0, **dict.fromkeys(("median_ape_pct", "mean_ape_pct", "within_10_pct", "within_25_pct",
                                         "spearman", "coverage_pct"), math.nan)}
    ape = ape_pct(p, m)
    coverage = math.nan
    if lower is not None and upper is not None:
        lo, hi = np.asarray(lower, float)[ok], np.asarray(upper, float)[ok]
        coverage = float(np.mean((m >= lo) & (m <= hi)) * 100)
    return {"n": len(m), "median_ape_pct": float(np.median(ape)), "mean_ape_pct": float(np.mean(ape)),
            "within_10_pct": float(np.mean(ape <= 10) * 100), "within_25_pct": float(np.mean(ape <= 25) * 100),
            "spearman": spearman(p, m), "coverage_pct": coverage}
