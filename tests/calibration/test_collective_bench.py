"""The collective microbenchmark in two gloo processes on CPU: rows, nccl-tests' bandwidths, the interconnect file."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from flopcast.calibration.catalog import get_hardware
from flopcast.calibration.collective_bench import TABLE, BenchConfig, run_rank
from flopcast.calibration.collective_launch import write_interconnect
from flopcast.calibration.interconnect import COLLECTIVES, load_interconnect
from flopcast.calibration.store import Store
from flopcast.datasets.schema import COLLECTIVE_COLUMNS
from tests.datasets.synthetic import DEVICES

SIZES = (4096, 65536)
"""Bytes; both divide into whole fp32 elements per rank."""


def _rank(rank: int, folder: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": os.environ["TEST_PORT"]})
    run_rank(BenchConfig(out_dir=Path(folder), sizes=SIZES, repeats=2, windows=2, warmup=1,
                         hardware="test-cpu"), "gloo")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch built without gloo")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        os.environ["TEST_PORT"] = str(s.getsockname()[1])
    folder = tmp_path_factory.mktemp("collectives")
    mp.start_processes(_rank, args=(str(folder),), nprocs=2, start_method="spawn")
    return folder


def test_one_row_per_collective_and_size_with_nccl_tests_bandwidths(measured):
    rows = Store(measured, TABLE, COLLECTIVE_COLUMNS).rows()
    assert sorted((r["collective"], r["bytes"]) for r in rows) == sorted((c, s) for c in COLLECTIVES for s in SIZES)
    factor = {"all_reduce": 2 * (2 - 1) / 2, "all_gather": (2 - 1) / 2, "reduce_scatter": (2 - 1) / 2,
              "send_recv": 1.0}
    for r in rows:
        assert r["ranks"] == 2 and r["nodes"] == 1 and r["backend"] == "gloo" and r["hardware"] == "test-cpu"
        assert r["time_s_min"] <= r["time_s"] <= r["time_s_max"] and r["time_s"] > 0
        assert r["algbw_bytes_per_s"] == pytest.approx(r["bytes"] / r["time_s"])
        assert r["busbw_bytes_per_s"] == pytest.approx(r["algbw_bytes_per_s"] * factor[r["collective"]])
    assert (measured / f"{TABLE}.parquet").is_file()


def test_interconnect_file_overrides_the_spec_with_the_largest_size(measured, tmp_path):
    path = write_interconnect(measured)
    rows = {(r["collective"], r["bytes"]): r for r in Store(measured, TABLE, COLLECTIVE_COLUMNS).rows()}
    gpu = tmp_path / "gpu.json"
    gpu.write_text(json.dumps({**DEVICES["test-gpu"], "interconnect": "NVLink 4 900 GB/s"}))
    ic = load_interconnect(path, get_hardware(gpu))
    assert ic.intra.measured and ic.gpus_per_node == 2
    for op in COLLECTIVES:
        assert ic.intra.busbw(op) == pytest.approx(rows[(op, max(SIZES))]["busbw_bytes_per_s"])
    assert ic.intra.latency_s == pytest.approx(rows[("all_reduce", min(SIZES))]["time_s"])
