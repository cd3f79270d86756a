"""Schema and physics checks of measurement tables: each check returns readable problems, never raises.

A release must pass :func:`validate` with no problem; a campaign in progress may report a few (untrusted
rows are skipped by the physics checks, as the predictor skips them).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from flopcast.datasets.loader import TABLES, Dataset, trusted_rows

PEAK_TOLERANCE = 1.10
"""Measured throughput may exceed the spec peak by this factor (boost clocks, spec rounding)."""

MIN_RANK_CORRELATION = 0.5
"""Within a family, time must rank with FLOPs (+ bytes) at least this well (Spearman)."""

OVERHEAD_BOUND = 20.0
"""Rows faster than this many launch overheads are dispatch-bound: left out of the monotonicity check."""

MAX_SHOWN = 5
"""Examples named per problem before ``(and N more)``."""

_PEAK_KEY = {"float32": "fp32", "float64": "fp64", "bfloat16": "bf16", "float16": "fp16", "tf32": "tf32"}
_MATMUL_CATEGORIES = ("matmul", "conv", "attention")


def validate(ds: Dataset) -> list[str]:
    """Every problem found in a dataset (empty list: valid).

    Checks: schema (columns present with their types), finite positive times of trusted rows, matmul-like
    throughput below the spec peak of the row's dtype, energy per op positive and below TDP x time, and
    time growing with work within each microbenchmark family.
    """
    problems: list[str] = []
    for table, columns in TABLES.items():
        problems += check_schema(getattr(ds, table), columns, table)
    if problems:
        return problems
    for table in TABLES:
        problems += check_times(getattr(ds, table), table)
    mb = trusted_rows(ds.microbench)
    problems += check_peak(mb)
    problems += check_energy(mb, "microbench")
    problems += check_energy(trusted_rows(ds.steps), "steps")
    problems += check_monotonic(mb)
    return problems


def check_schema(df: pd.DataFrame, columns: dict[str, str], table: str) -> list[str]:
    """Missing columns and columns whose values do not fit their schema type."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        return [f"{table}: missing column(s) {', '.join(missing)}"]
    bad = []
    for name, kind in columns.items():
        col = df[name].dropna()
        if kind in ("int64", "float64") and not pd.api.types.is_numeric_dtype(col):
            bad.append(f"{name} ({col.dtype}, want {kind})")
        elif kind == "bool" and not pd.api.types.is_bool_dtype(col):
            bad.append(f"{name} ({col.dtype}, want bool)")
    return [f"{table}: wrongly typed column(s) {', '.join(bad)}"] if bad else []


def check_times(df: pd.DataFrame, table: str) -> list[str]:
    """Trusted rows whose ``time_s`` is missing, infinite, zero or negative."""
    trusted = df[df["trusted"].fillna(False).astype(bool)]
    t = trusted["time_s"].astype(float)
    bad = trusted[~np.isfinite(t) | (t <= 0)]
    return [_problem(f"{table}: trusted rows with a non-finite or non-positive time_s", bad["key"])] if len(bad) else []


def row_peak_flops_per_s(df: pd.DataFrame) -> pd.Series:
    """Spec peak FLOP/s of each row's dtype from its ``hw_peak_<dtype>`` column (fp32 where missing)."""
    out = pd.Series(np.nan, index=df.index)
    for dtype, key in _PEAK_KEY.items():
        col = f"hw_peak_{key}"
        if col in df:
            rows = df["dtype"] == dtype
            out[rows] = df.loc[rows, col]
    return out.fillna(df.get("hw_peak_fp32", np.nan))


def check_peak(mb: pd.DataFrame) -> list[str]:
    """Matmul, conv and attention rows faster than the spec peak of their dtype allows."""
    rows = mb[mb["category"].isin(_MATMUL_CATEGORIES) & (mb["flops"].fillna(0) > 0)]
    if rows.empty:
        return []
    throughput = rows["flops"].astype(float) / rows["time_s"]
    bad = rows[throughput > PEAK_TOLERANCE * row_peak_flops_per_s(rows)]
    text = f"microbench: rows above {PEAK_TOLERANCE:g} x the spec peak FLOP/s"
    return [_problem(text, bad["key"])] if len(bad) else []


def check_energy(df: pd.DataFrame, table: str) -> list[str]:
    """Rows with energy whose energy per call is not positive or exceeds TDP x time (where TDP is known)."""
    e = df["energy_j"].astype(float)
    rows = df[e.notna()]
    if rows.empty:
        return []
    energy = rows["energy_j"].astype(float)
    problems = []
    nonpos = rows[energy <= 0]
    if len(nonpos):
        problems.append(_problem(f"{table}: rows with non-positive energy_j", nonpos["key"]))
    tdp = rows["hw_tdp_w"].astype(float)
    over = rows[(tdp > 0) & (energy > PEAK_TOLERANCE * tdp * rows["time_s"])]
    if len(over):
        problems.append(_problem(f"{table}: rows whose energy_j exceeds TDP x time_s", over["key"]))
    return problems


def check_monotonic(mb: pd.DataFrame, min_rows: int = 6) -> list[str]:
    """Families (per hardware and dtype) whose times do not rank with their work.

    Work is ``flops + bytes_read + bytes_written``. Rows within :data:`OVERHEAD_BOUND` x the measured launch
    overhead are left out (their time is dispatch, not work); groups with fewer than ``min_rows`` rows or
    less than a 10x spread of work are skipped (too little to judge).
    """
    problems = []
    work = mb["flops"].astype(float) + mb["bytes_read"].astype(float) + mb["bytes_written"].astype(float)
    sized = mb.assign(_work=work)
    sized = sized[~(sized["time_s"] < OVERHEAD_BOUND * sized["hw_launch_overhead_s"].fillna(0.0))]
    for (hw, family, dtype), g in sized.groupby(["hardware", "family", "dtype"], dropna=False):
        if len(g) < min_rows or g["_work"].max() < 10 * max(g["_work"].min(), 1.0):
            continue
        rho = spearman(g["_work"], g["time_s"])
        if not rho >= MIN_RANK_CORRELATION:
            problems.append(f"microbench: {hw} {family} {dtype}: time ranks poorly with work "
                            f"(Spearman {rho:.2f} < {MIN_RANK_CORRELATION} over {len(g)} rows)")
    return problems


def spearman(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> float:
    """Spearman rank correlation (ties averaged); NaN for fewer than 2 points or a constant input."""
    ra, rb = pd.Series(np.asarray(a, float)).rank(), pd.Series(np.asarray(b, float)).rank()
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def _problem(text: str, keys: pd.Series) -> str:
    keys = [str(k) for k in keys]
    more = f" (and {len(keys) - MAX_SHOWN} more)" if len(keys) > MAX_SHOWN else ""
    return f"{text}: {len(keys)} row(s), e.g. {', '.join(keys[:MAX_SHOWN])}{more}"
