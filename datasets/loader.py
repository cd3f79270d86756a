"""Load released or freshly measured data: one table per kind over every hardware, descriptor columns joined.

A hardware folder holds ``descriptor.json`` plus ``microbench.parquet`` and ``steps.parquet`` (a release,
see README.md) or the ``*.jsonl`` files a running campaign appends to. :func:`load_datasets` takes hardware
folders or folders of them, checksums every file it reads, and names the result by those checksums.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from flopcast.datasets.schema import (
    MICROBENCH_COLUMNS,
    MICROBENCH_DEFAULTS,
    SCHEMA_VERSION,
    STEP_COLUMNS,
    STEP_OPTION_DEFAULTS,
)

DATASETS_DIR = Path(__file__).resolve().parent
"""Where released hardware folders live (shipped as package data)."""

TABLES: dict[str, dict[str, str]] = {"microbench": MICROBENCH_COLUMNS, "steps": STEP_COLUMNS}

DESCRIPTOR_SCALARS = (
    "kind", "memory_bandwidth_bytes_per_s", "memory_bytes", "compute_units", "clock_hz", "tdp_w",
    "idle_power_w", "launch_overhead_s", "measured_bandwidth_bytes_per_s",
)  # fmt: skip
"""Descriptor fields joined to every row as ``hw_<field>``; per-dtype peaks become ``hw_peak_<dtype>``."""

PEAK_DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8")


class DatasetError(ValueError):
    """A dataset folder is missing, empty or unreadable."""


@dataclass(frozen=True)
class Dataset:
    """Measurement tables of one or more hardware folders.

    Attributes:
        microbench: one row per op measurement (``MICROBENCH_COLUMNS`` + ``hw_*`` descriptor columns).
        steps: one row per model-step measurement (``STEP_COLUMNS`` + ``hw_*``).
        descriptors: descriptor dict of each hardware, by descriptor name.
        checksums: SHA-256 of every file read, by ``<folder>/<file>``.
        meta: ``meta.json`` of each folder that has one, by descriptor name.
        version: ``<schema>-<12 hex>``: schema version and a digest of all checksums.
    """

    microbench: pd.DataFrame
    steps: pd.DataFrame
    descriptors: dict[str, dict[str, Any]]
    checksums: dict[str, str] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: str = ""

    @property
    def hardware(self) -> list[str]:
        """Names of the hardware in the dataset, sorted."""
        return sorted(self.descriptors)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hardware_folders(paths: Iterable[str | Path] | None = None) -> list[Path]:
    """Hardware folders (those holding ``descriptor.json``) among ``paths`` and their direct children.

    Args:
        paths: hardware folders or folders of them; ``None``: the released :data:`DATASETS_DIR`.

    Raises:
        DatasetError: if a given path does not exist or holds no hardware folder.
    """
    explicit = paths is not None
    found: list[Path] = []
    for p in [Path(x) for x in (paths if explicit else [DATASETS_DIR])]:
        if not p.is_dir():
            raise DatasetError(f"dataset folder not found: {p}")
        sub = [p] if (p / "descriptor.json").is_file() else sorted(
            c for c in p.iterdir() if c.is_dir() and (c / "descriptor.json").is_file()
        )
        if not sub and explicit:
            raise DatasetError(f"{p}: no descriptor.json here or in its subfolders (not a calibration folder)")
        found.extend(sub)
    return found


def read_table(folder: Path, table: str, checksums: dict[str, str]) -> pd.DataFrame:
    """One table of one folder: the parquet export, else the campaign's JSONL files (shards merged)."""
    columns = TABLES[table]
    parquet = folder / f"{table}.parquet"
    jsonl = sorted(folder.glob(f"{table}.jsonl")) + sorted(folder.glob(f"{table}.shard-*.jsonl"))
    newest_jsonl = max((p.stat().st_mtime for p in jsonl), default=-math.inf)
    if parquet.is_file() and parquet.stat().st_mtime >= newest_jsonl:
        checksums[f"{folder.name}/{parquet.name}"] = sha256_file(parquet)
        df = pd.read_parquet(parquet)
    elif jsonl:
        rows: list[dict[str, Any]] = []
        for p in jsonl:
            checksums[f"{folder.name}/{p.name}"] = sha256_file(p)
            text = p.read_text()
            complete = text[: text.rfind("\n") + 1]  # a torn last line of a killed campaign is skipped
            rows.extend(json.loads(line) for line in complete.splitlines() if line.strip())
        df = pd.DataFrame(rows)
        if "key" in df:
            df = df.drop_duplicates("key", keep="first")
    else:
        return _empty(columns)
    for name in set(columns) - set(df.columns):
        df[name] = None
    defaults = STEP_OPTION_DEFAULTS if table == "steps" else MICROBENCH_DEFAULTS  # rows older than those columns
    df = df.fillna({k: v for k, v in defaults.items() if v is not None})
    return _typed(df[list(columns)], columns)


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return _typed(pd.DataFrame({c: [] for c in columns}), columns)


def _typed(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Columns in their schema types (integers nullable, so missing measurements stay missing)."""
    kinds = {"string": "string", "int64": "Int64", "float64": "float64", "bool": "boolean"}
    out = df.copy()
    for name, kind in columns.items():
        if kind == "float64":
            out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
        elif kind == "int64":
            out[name] = pd.to_numeric(out[name], errors="coerce").round().astype("Int64")
        else:
            out[name] = out[name].astype(kinds[kind])
    return out.reset_index(drop=True)


def descriptor_columns(descriptor: dict[str, Any]) -> dict[str, Any]:
    """The ``hw_*`` columns joined to a row of this descriptor's hardware (missing values as NaN)."""
    cols: dict[str, Any] = {}
    for name in DESCRIPTOR_SCALARS:
        value = descriptor.get(name)
        cols[f"hw_{name}"] = value if name == "kind" else (math.nan if value is None else float(value))
    peaks, measured = descriptor.get("peak_flops_per_s") or {}, descriptor.get("measured_peak_flops_per_s") or {}
    for dtype in PEAK_DTYPES:
        cols[f"hw_peak_{dtype}"] = float(peaks.get(dtype) or math.nan)
        cols[f"hw_measured_peak_{dtype}"] = float(measured.get(dtype) or math.nan)
    return cols


def _join(df: pd.DataFrame, descriptor: dict[str, Any]) -> pd.DataFrame:
    out = df.copy()
    for name, value in descriptor_columns(descriptor).items():
        out[name] = value
    return out


def load_folder(folder: str | Path, checksums: dict[str, str] | None = None) -> Dataset:
    """Load one hardware folder.

    Raises:
        DatasetError: if ``descriptor.json`` is missing or not valid JSON.
    """
    folder = Path(folder)
    sums: dict[str, str] = {} if checksums is None else checksums
    path = folder / "descriptor.json"
    try:
        descriptor = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{folder}: no descriptor.json") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    sums[f"{folder.name}/descriptor.json"] = sha256_file(path)
    name = str(descriptor.get("name") or folder.name)
    meta_path = folder / "meta.json"
    meta = {}
    if meta_path.is_file():
        sums[f"{folder.name}/meta.json"] = sha256_file(meta_path)
        meta = {name: json.loads(meta_path.read_text())}
    tables = {t: _join(read_table(folder, t, sums), descriptor) for t in TABLES}
    for df in tables.values():  # rows name their hardware; a campaign's rows all carry the folder's descriptor
        df["hardware"] = df["hardware"].fillna(name)
    return Dataset(tables["microbench"], tables["steps"], {name: descriptor}, sums, meta, _version(sums))


def load_datasets(paths: Sequence[str | Path] | None = None, *, trusted_only: bool = False) -> Dataset:
    """Load every hardware folder under ``paths`` into one microbench and one steps table.

    Args:
        paths: hardware folders or folders of them; ``None``: the released data in :data:`DATASETS_DIR`.
        trusted_only: keep only rows with ``trusted`` true and a finite positive ``time_s``.

    Returns:
        The merged dataset (empty tables when ``paths`` is ``None`` and nothing is released yet).

    Raises:
        DatasetError: for a missing folder, one without a descriptor, or two folders naming one device.
    """
    folders = hardware_folders(paths)
    parts = [load_folder(f) for f in folders]
    seen: dict[str, Path] = {}
    for folder, part in zip(folders, parts, strict=True):
        for name in part.descriptors:
            if name in seen:
                raise DatasetError(f"{folder} and {seen[name]} both describe a device named {name!r}: rename one "
                                   "(python -m flopcast.datasets.release ... --name NEW)")
            seen[name] = folder
    sums = {k: v for p in parts for k, v in p.checksums.items()}
    tables = {}
    for t in TABLES:
        frames = [getattr(p, t) for p in parts if len(getattr(p, t))]
        tables[t] = pd.concat(frames, ignore_index=True) if frames else _join(_empty(TABLES[t]), {})
        if trusted_only:
            tables[t] = trusted_rows(tables[t])
    descriptors = {k: v for p in parts for k, v in p.descriptors.items()}
    meta = {k: v for p in parts for k, v in p.meta.items()}
    return Dataset(tables["microbench"], tables["steps"], descriptors, sums, meta, _version(sums))


def trusted_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows fit for training: ``trusted`` and a finite, positive ``time_s``."""
    ok = df["trusted"].fillna(False).astype(bool) & (df["time_s"] > 0) & df["time_s"].notna()
    ok &= df["time_s"].apply(math.isfinite)
    return df[ok].reset_index(drop=True)


def _version(checksums: dict[str, str]) -> str:
    digest = hashlib.sha256(json.dumps(checksums, sort_keys=True).encode()).hexdigest()[:12]
    return f"{SCHEMA_VERSION}-{digest}"
