from __future__ import annotations

import errno
import json
import os

import pyarrow.parquet as pq
import pytest

from flopcast.calibration.store import Store, StoreError, StoreFullError, row_key

COLUMNS = {"key": "string", "time_s": "float64", "n_repeats": "int64", "trusted": "bool", "reason": "string"}


def row(i: int, **kw) -> dict:
    return {"key": f"k{i}", "time_s": 0.001 * (i + 1), "n_repeats": i, "trusted": True, "reason": "", **kw}


def test_append_is_durable_and_reopen_knows_done_keys(tmp_path):
    with Store(tmp_path, "microbench", COLUMNS) as s:
        for i in range(3):
            s.append(row(i))
        assert s.done_keys() == {"k0", "k1", "k2"}
    assert Store(tmp_path, "microbench", COLUMNS).done_keys() == {"k0", "k1", "k2"}
    lines = (tmp_path / "microbench.jsonl").read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["k0", "k1", "k2"]


def test_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path):
    with Store(tmp_path, "t", COLUMNS) as s:
        s.append(row(0))
    path = tmp_path / "t.jsonl"
    with open(path, "ab") as f:
        f.write(b'{"key": "k1", "time_s": 0.0')  # killed mid-write: no newline
    s = Store(tmp_path, "t", COLUMNS)
    assert s.done_keys() == {"k0"}
    s.append(row(2))
    s.close()
    assert [json.loads(x)["key"] for x in path.read_text().splitlines()] == ["k0", "k2"]


def test_a_corrupt_complete_line_is_loud(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"key": "k0"}\nnot json\n')
    with pytest.raises(StoreError, match=r"t.jsonl:2"):
        Store(tmp_path, "t", COLUMNS)


def test_disk_full_keeps_written_rows_and_says_so(tmp_path, monkeypatch):
    s = Store(tmp_path, "t", COLUMNS)
    s.append(row(0))
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreFullError, match=r"disk full .* 1 finished rows are kept"):
        s.append(row(1))
    monkeypatch.setattr(os, "fsync", real_fsync)
    s.close()
    assert Store(tmp_path, "t", COLUMNS).done_keys() == {"k0"}
    assert (tmp_path / "t.jsonl").read_text().count("\n") == 1


def test_other_os_errors_propagate(tmp_path, monkeypatch):
    s = Store(tmp_path, "t", COLUMNS)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        s.append(row(0))


def test_rows_must_match_the_schema(tmp_path):
    s = Store(tmp_path, "t", COLUMNS)
    with pytest.raises(ValueError, match=r"missing \['trusted'\].*extra \['bogus'\]"):
        s.append({**{k: v for k, v in row(0).items() if k != "trusted"}, "bogus": 1})


def test_shards_merge_by_key_without_duplicates(tmp_path):
    a, b = Store(tmp_path, "t", COLUMNS, shard=0), Store(tmp_path, "t", COLUMNS, shard=1)
    a.append(row(0))
    a.append(row(1))
    b.append(row(1))  # the same measurement twice (e.g. a rerun of the other shard)
    b.append(row(2))
    a.close()
    b.close()
    merged = Store(tmp_path, "t", COLUMNS)
    assert [r["key"] for r in merged.rows()] == ["k0", "k1", "k2"]
    assert merged.done_keys() == {"k0", "k1", "k2"}


def test_parquet_export_has_schema_columns_and_zstd(tmp_path):
    with Store(tmp_path, "t", COLUMNS) as s:
        s.append(row(0))
        s.append(row(1, trusted=False, reason="energy window 0.2 s < 1 s"))
        path = s.to_parquet()
    table = pq.read_table(path)
    assert table.column_names == list(COLUMNS)
    assert str(table.schema.field("n_repeats").type) == "int64"
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert table.column("trusted").to_pylist() == [True, False]


def test_a_second_writer_of_the_same_file_is_refused(tmp_path):
    first = Store(tmp_path, "t", COLUMNS)
    first.append(row(0))
    with pytest.raises(StoreError, match="another campaign"):
        Store(tmp_path, "t", COLUMNS).append(row(1))
    first.close()


def test_row_key_is_stable_and_sensitive():
    parts = {"kind": "op", "family": "matmul", "config": {"m": 2, "n": 3}, "dtype": "fp32", "hardware": "h"}
    assert row_key(**parts) == row_key(**dict(reversed(parts.items())))
    assert row_key(**parts) != row_key(**{**parts, "hardware": "other"})
    assert len(row_key(**parts)) == 24
