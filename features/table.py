"""Op records to and from the op table (columns of ``flopcast.datasets.schema.OP_COLUMNS``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from flopcast.datasets.schema import OP_COLUMNS
from flopcast.features.errors import OutputError
from flopcast.features.records import OpRecord


def _row(o: OpRecord) -> dict[str, object]:
    return {
        "op": o.op,
        "category": o.category.value,
        "phase": o.phase.value,
        "module": o.module,
        "dtype": o.dtype,
        "input_shapes": json.dumps([list(m.shape) for m in o.inputs]),
        "input_dtypes": json.dumps([m.dtype for m in o.inputs]),
        "output_shapes": json.dumps([list(m.shape) for m in o.outputs]),
        "flops": o.flops,
        "macs": o.macs,
        "bytes_read": o.bytes_read,
        "bytes_written": o.bytes_written,
        "outcome": o.outcome.value,
        "framework": o.framework,
        "attrs": json.dumps(o.attrs, default=str, sort_keys=True),
    }


def ops_table(records: Iterable[OpRecord]) -> pd.DataFrame:
    """One row per op record, with exactly the columns and dtypes of ``OP_COLUMNS``."""
    df = pd.DataFrame([_row(o) for o in records], columns=list(OP_COLUMNS))
    return df.astype(OP_COLUMNS)


SOURCE_KEY = b"flopcast.source"
"""Parquet metadata key of what an op table was analysed from (``analyze``'s target, or a zoo model's name)."""


def write_ops_table(records: Iterable[OpRecord], path: str | Path, source: str = "") -> Path:
    """Write the op table as ``.parquet`` (zstd) or ``.csv``, chosen by the file suffix.

    Args:
        records: the analysis' op records.
        path: file to write.
        source: what was analysed (``hf:gpt2``, ``model.py:build``), kept in a parquet file's metadata so that
            microbenchmarks of its shapes (``calibrate --ops-from``) record where they came from; a CSV has none.

    Raises:
        ValueError: if the suffix is neither ``.parquet`` nor ``.csv``.
    """
    return write_ops_frame(ops_table(records), path, source)


def write_ops_frame(df: pd.DataFrame, path: str | Path, source: str = "") -> Path:
    """Write an op table already in ``OP_COLUMNS`` form (see :func:`write_ops_table`)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(df, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), SOURCE_KEY: source.encode()})
        pq.write_table(table, path, compression="zstd")
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        raise OutputError(f"op table file must end in .parquet or .csv, not {path.name!r}")
    return path


def ops_table_source(path: str | Path) -> str:
    """What an op table file was analysed from (:func:`write_ops_table`'s ``source``; ``""`` when it does not say)."""
    path = Path(path)
    if path.suffix != ".parquet":
        return ""
    import pyarrow.parquet as pq

    return (pq.read_schema(path).metadata or {}).get(SOURCE_KEY, b"").decode()
