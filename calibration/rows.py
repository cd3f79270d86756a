"""Measured columns of a table row, from a :class:`Measurement` or from a failure's reason."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from flopcast.calibration.measurement import Measurement
from flopcast.datasets.schema import MEASURED_COLUMNS


def measured_columns(m: Measurement, problem: str = "") -> dict[str, Any]:
    """``MEASURED_COLUMNS`` of a measurement; a ``problem`` (e.g. a failed trace) makes it untrusted."""
    cols = {k: v for k, v in asdict(m).items() if k in MEASURED_COLUMNS}
    return with_problem(cols, problem) if problem else cols


def missing_columns(reason: str) -> dict[str, Any]:
    """``MEASURED_COLUMNS`` of a measurement that could not be taken (OOM, build error): NaN times, untrusted."""
    return {
        "time_s": math.nan, "time_s_min": math.nan, "time_s_max": math.nan, "n_repeats": 0, "n_windows": 0,
        "window_s": 0.0, "energy_j": None, "energy_source": "none", "energy_window_s": 0.0, "avg_power_w": None,
        "trusted": False, "reason": reason,
    }


def with_problem(cols: dict[str, Any], problem: str) -> dict[str, Any]:
    """Measured columns with ``problem`` added to the reasons and the row untrusted."""
    reason = "; ".join(r for r in (cols.get("reason", ""), problem) if r)
    return {**cols, "trusted": False, "reason": reason}


def failure_reason(error: BaseException) -> str:
    """One-line reason of a failed build or measurement (``out of memory: ...`` for OOMs)."""
    text = (str(error).strip().splitlines() or [""])[0][:300]
    oom = isinstance(error, MemoryError) or "out of memory" in text.lower() or "OutOfMemory" in type(error).__name__
    return f"{'out of memory' if oom else 'failed'}: {type(error).__name__}: {text}"
