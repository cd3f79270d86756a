"""Schema and physics checks of measurement tables: each check returns readable problems, never raises.

A release must pass :func:`validate` with no problem; a campaign in progress may report a few (untrusted
rows are skipped by the physics checks, as the predictor skips them).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from flopcast.calibration.descriptor import peak_key
from flopcast.datasets.loader import TABLES, Dataset, trusted_rows
from flopcast.features.attention_mask import executed_flops

PEAK_TOLERANCE = 1.10
"""Measured throughput may exceed the spec peak by this factor (boost clocks, spec rounding)."""

TURBO_HEADROOM = 1.6
"""A CPU whose peak was estimated from a base or current clock (a VM sees no max frequency) may run up to
this much faster under all-core turbo; its rows get this extra tolerance in the peak check."""

WINOGRAD_GAIN = 4.0
"""Convolution rows may beat the spec peak by this much more: Winograd F(4x4, 3x3) multiplies 4x less than
a direct 3x3 convolution, whose FLOPs a row counts."""

MAX_CLOCK_SOURCES = ("psutil max",)
"""Clock sources that already are the CPU's maximum frequency."""

MIN_RANK_CORRELATION = 0.5
"""Within a family, time must rank with FLOPs (+ bytes) at least this well (Spearman)."""

OVERHEAD_BOUND = 20.0
"""Rows whose ideal (roofline) time is below this many launch overheads are dispatch-bound: their time is
launches and host work, not FLOPs and bytes, so the monotonicity check leaves them out."""

INDEX_BOUND_OPS = ("aten.embedding_dense_backward", "aten._embedding_bag_backward",
                   "aten._embedding_bag_dense_backward", "aten.index_put", "aten.index_put_", "aten.scatter_add",
                   "aten.scatter_add_", "aten.index_add", "aten.index_add_")
"""Accumulating scatter ops whose time follows the number of indices and collisions, not FLOPs or bytes."""

MAX_SHOWN = 5
"""Examples named per problem before ``(and N more)``."""

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
    problems += check_peak(mb, peak_tolerances(ds.descriptors))
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
    """Spec peak FLOP/s that bounds each row: its dtype's ``hw_peak_<key>`` (fp32 where missing).

    The key follows :func:`flopcast.calibration.descriptor.peak_key` at ``fp32-strict``: a microbenchmark
    closure runs TF32 exactly when its row's dtype is ``tf32``.
    """
    kinds = df["hw_kind"] if "hw_kind" in df else pd.Series("cpu", index=df.index)
    out = pd.Series(np.nan, index=df.index)
    for i, dtype, category, kind in zip(df.index, df["dtype"], df["category"], kinds, strict=True):
        col = f"hw_peak_{peak_key(str(dtype), str(category), 'fp32-strict', str(kind))}"
        if col in df:
            out[i] = df.at[i, col]
    return out.fillna(df.get("hw_peak_fp32", np.nan))


def peak_tolerances(descriptors: dict[str, dict]) -> dict[str, float]:
    """Allowed measured / spec throughput per hardware.

    :data:`PEAK_TOLERANCE`, times :data:`TURBO_HEADROOM` for CPUs whose spec peak comes from a clock that is
    not their maximum.
    """
    out = {}
    for name, d in descriptors.items():
        source = (d.get("extra") or {}).get("clock_source", "")
        estimated_low = d.get("kind") == "cpu" and source not in MAX_CLOCK_SOURCES
        out[name] = PEAK_TOLERANCE * (TURBO_HEADROOM if estimated_low else 1.0)
    return out


def allowed_flops_per_s(rows: pd.DataFrame, tolerances: dict[str, float] | None = None) -> np.ndarray:
    """The highest throughput a row may show, FLOP/s.

    Its spec peak x its hardware's tolerance (convolutions x :data:`WINOGRAD_GAIN` more).
    """
    tolerance = rows["hardware"].map(tolerances or {}).fillna(PEAK_TOLERANCE).to_numpy(dtype=float)
    tolerance = tolerance * np.where(rows["category"].to_numpy() == "conv", WINOGRAD_GAIN, 1.0)
    return tolerance * row_peak_flops_per_s(rows).to_numpy(dtype=float)


def check_peak(mb: pd.DataFrame, tolerances: dict[str, float] | None = None) -> list[str]:
    """Matmul, conv and attention rows faster than the spec peak of their dtype allows.

    A convolution may beat its direct FLOP count by up to :data:`WINOGRAD_GAIN` (cuDNN's Winograd and FFT
    algorithms multiply less than a direct convolution).

    Causal attention rows count the FLOPs their kernel executes (the unmasked share of the score matrix).
    """
    rows = mb[mb["category"].isin(_MATMUL_CATEGORIES) & (mb["flops"].fillna(0) > 0)]
    if rows.empty:
        return []
    throughput = executed_flops(rows) / rows["time_s"].astype(float).to_numpy()
    bad = rows[throughput > allowed_flops_per_s(rows, tolerances)]
    text = ("microbench: rows above the spec peak FLOP/s (x 1.1, x 1.76 for CPUs with an estimated clock, "
            f"x {WINOGRAD_GAIN:g} more for convolutions)")
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
    """Families (per hardware, main op and dtype: one kernel each) whose times do not rank with their work.

    Work is the roofline time, ``max(FLOPs / spec peak, bytes / bandwidth)`` (s). Rows whose roofline time
    is below :data:`OVERHEAD_BOUND` x the measured launch overhead are left out: their time is dispatch (one
    launch or hundreds, as in a many-tensor optimizer step), not work.
    Skinny matmuls (m, n or k below :data:`SKINNY_DIM`: GEMV, outer products and products a few elements
    thin, which BLAS runs on other, often much slower kernels) and index-bound accumulations
    (:data:`INDEX_BOUND_OPS`: their time follows the index count and its collisions, e.g. a sort, not FLOPs
    or bytes) are left out too: real costs for the predictor, not a broken timer. Groups with fewer than
    ``min_rows`` rows or less than a 10x spread of work are skipped (too little to judge).
    """
    problems = []
    moved = mb["bytes_read"].astype(float) + mb["bytes_written"].astype(float)
    bandwidth = mb["hw_measured_bandwidth_bytes_per_s"].fillna(mb["hw_memory_bandwidth_bytes_per_s"])
    roofline_s = np.maximum(mb["flops"].astype(float) / row_peak_flops_per_s(mb), moved / bandwidth)
    sized = mb.assign(_work=roofline_s)
    sized = sized[~(roofline_s < OVERHEAD_BOUND * sized["hw_launch_overhead_s"].fillna(0.0))]
    sized = sized[~sized["config"].map(degenerate_matmul).astype(bool) & ~sized["op"].isin(INDEX_BOUND_OPS)]
    for (hw, family, op, dtype), g in sized.groupby(["hardware", "family", "op", "dtype"], dropna=False):
        if len(g) < min_rows or g["_work"].max() < 10 * g["_work"].min():
            continue
        rho = spearman(g["_work"], g["time_s"])
        if not rho >= MIN_RANK_CORRELATION:
            problems.append(f"microbench: {hw} {family} {op} {dtype}: time ranks poorly with work "
                            f"(Spearman {rho:.2f} < {MIN_RANK_CORRELATION} over {len(g)} rows)")
    return problems


SKINNY_DIM = 8
"""A matmul with m, n or k below this many elements is skinny: a GEMV, an outer product, or a product a few
elements thin (a 47 x 152 x 5 x 1485 bmm writing 42 MB of output for 106 MFLOP), which BLAS runs on other,
often much slower paths, and whose time follows its output size (first touch of fresh pages), not FLOPs."""


def degenerate_matmul(config: object) -> bool:
    """Whether a microbenchmark config is a skinny matmul (m, n or k below :data:`SKINNY_DIM`)."""
    try:
        c = json.loads(config) if isinstance(config, str) else dict(config or {})
    except (TypeError, ValueError):
        return False
    dims = [c.get(k) for k in ("m", "n", "k")]
    return all(isinstance(d, int) for d in dims) and min(dims) < SKINNY_DIM


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
