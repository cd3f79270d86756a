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


def write_ops_table(records: Iterable[OpRecord], path: str | Path) -> Path:
    """Write the op table as ``.parquet`` (zstd) or ``.csv``, chosen by the file suffix.

    Raises:
        ValueError: if the suffix is neither ``.parquet`` nor ``.csv``.
    """
    path = Path(path)
    df = ops_table(records)
    if path.suffix == ".parquet":
        df.to_parquet(path, compression="zstd", index=False)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        raise OutputError(f"op table file must end in .parquet or .csv, not {path.name!r}")
    return path
