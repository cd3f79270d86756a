"""Append-only, crash-safe measurement rows: one JSON line per finished measurement, fsynced.

A table lives in ``<out>/<table>.jsonl`` (``<table>.shard-<i>.jsonl`` for a SLURM shard). Reading
takes every file of the table and keeps the first row of each key, so shards merge without
duplicates. A line torn by a kill mid-write has no newline: it is ignored, and cut off before the
next append.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class StoreError(ValueError):
    """A measurement table cannot be read or written."""


class StoreFullError(StoreError):
    """The disk filled up; the rows already written are kept."""


def row_key(**parts: Any) -> str:
    """Stable key of a measurement: a hash of its identifying parts.

    Args:
        **parts: kind, family or model, config, dtype, hardware, versions; any JSON-able values.

    Returns:
        24 hex digits of the SHA-256 of the canonical JSON of ``parts``.
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _read_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of one JSONL file and the byte length of its complete part (before a torn tail).

    Raises:
        StoreError: if a complete line (one ending in a newline) is not valid JSON.
    """
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log.warning("%s: ignoring a torn last line of %d bytes (killed mid-write)", path, len(data) - end)
    rows = []
    for number, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise StoreError(f"{path}:{number}: not a JSON row ({e.msg}); move the file away to restart") from None
    return rows, end


class Store:
    """One measurement table of a campaign directory.

    Args:
        out_dir: campaign directory.
        table: table name (``microbench`` or ``steps``).
        columns: the schema the rows must have exactly (a ``datasets.schema`` mapping).
        shard: shard index when several processes write the same directory, else ``None``.
    """

    def __init__(self, out_dir: str | Path, table: str, columns: Mapping[str, str], *, shard: int | None = None):
        self.out_dir = Path(out_dir)
        self.table = table
        self.columns = dict(columns)
        suffix = f".shard-{shard}" if shard is not None else ""
        self.path = self.out_dir / f"{table}{suffix}.jsonl"
        self._file: Any = None
        self._done: set[str] = {r["key"] for r in self._iter_rows()}

    def files(self) -> list[Path]:
        """Every JSONL file of this table in the directory (all shards)."""
        return sorted(self.out_dir.glob(f"{self.table}.jsonl")) + sorted(
            self.out_dir.glob(f"{self.table}.shard-*.jsonl")
        )

    def _iter_rows(self) -> Iterator[dict[str, Any]]:
        for path in self.files():
            yield from _read_lines(path)[0]

    def done_keys(self) -> set[str]:
        """Keys of every finished row (all shards), as read on open plus those appended since."""
        return set(self._done)

    def rows(self) -> list[dict[str, Any]]:
        """All finished rows of the table, the first of each key (shards merged, no duplicates)."""
        seen: set[str] = set()
        out = []
        for row in self._iter_rows():
            if row["key"] not in seen:
                seen.add(row["key"])
                out.append(row)
        return out

    def _open(self) -> Any:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "ab+")  # noqa: SIM115 - kept open for the campaign's appends
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise StoreError(f"{self.path} is being written by another campaign; wait for it or use --out") from None
        if self.path.stat().st_size:
            end = _read_lines(self.path)[1]
            f.truncate(end)  # cut a torn tail so the next row starts on its own line
        return f

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one finished row durably (write, flush, fsync) before returning.

        Raises:
            ValueError: if the row's columns differ from the schema (a bug in the caller).
            StoreFullError: if the disk is full; the file keeps every row written before.
        """
        missing, extra = set(self.columns) - set(row), set(row) - set(self.columns)
        if missing or extra:
            raise ValueError(f"{self.table} row has missing {sorted(missing)} / extra {sorted(extra)} columns")
        if self._file is None:
            self._file = self._open()
        line = (json.dumps(dict(row), sort_keys=True, default=_json_default, allow_nan=True) + "\n").encode()
        start = self._file.tell()
        try:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            if e.errno not in _FULL_ERRNOS:
                raise
            self._rollback(start)
            raise StoreFullError(
                f"disk full while writing {self.path}: the {len(self._done)} finished rows are kept; "
                "free some space and rerun the same command to resume"
            ) from None
        self._done.add(row["key"])

    def _rollback(self, size: int) -> None:
        """Cut a partly written row after a failed write (best effort: a later open cuts it too)."""
        try:
            self._file.truncate(size)
        except OSError as e:
            log.warning("could not cut the partial row of %s (%s); it will be ignored on reopen", self.path, e)

    def close(self) -> None:
        """Release the file (and its lock)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to_arrow(self) -> pa.Table:
        """The merged rows as an Arrow table with exactly the schema's columns and types."""
        schema = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in self.columns.items()])
        return pa.Table.from_pylist(self.rows(), schema=schema)

    def to_parquet(self, path: str | Path | None = None) -> Path:
        """Write the merged rows as zstd-compressed parquet (atomically, under a directory lock).

        Args:
            path: destination, default ``<out>/<table>.parquet``.

        Returns:
            The written path.
        """
        path = Path(path) if path is not None else self.out_dir / f"{self.table}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / ".export.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the last exporter reads every shard's finished rows
            tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
            pq.write_table(self.to_arrow(), tmp, compression="zstd")
            os.replace(tmp, path)
        return path


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars and paths that slip into rows."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
