from __future__ import annotations

import pytest

from flopcast.calibration.catalog import get_hardware
from flopcast.calibration.interconnect import resolve_interconnect
from flopcast.predictor.parallel.collectives import (
    BASE_LATENCY_S,
    HOP_LATENCY_S,
    Collective,
    algorithm_times_s,
    busbw_bytes_per_s,
    collective_time_s,
)

DGX_H100 = resolve_interconnect(get_hardware("h100-sxm"))


@pytest.mark.parametrize(("op", "n", "factor"), [
    ("all_reduce", 4, 2 * 3 / 4), ("all_reduce", 8, 2 * 7 / 8), ("all_gather", 4, 3 / 4),
    ("reduce_scatter", 8, 7 / 8), ("send_recv", 2, 1.0),
])
def test_bytes_each_gpu_sends_are_nccl_tests_bus_factors(op, n, factor):
    c = Collective(op, 1_000_000, group=n, count=1, phase="backward", what="x")
    assert c.bytes_per_gpu == pytest.approx(1_000_000 * factor)


def test_a_group_of_one_sends_nothing():
    c = Collective("all_reduce", 10**6, group=1, count=1, phase="backward", what="x")
    assert c.bytes_per_gpu == 0 and collective_time_s(c, DGX_H100, 8) == (0.0, "ring")


def test_ring_all_reduce_in_a_node_is_latency_plus_bus_bytes_over_busbw():
    s, n = 256 * 2**20, 8
    c = Collective("all_reduce", s, group=n, count=1, phase="backward", what="x")
    busbw = 18 * 20.6e9  # NCCL's SM90 NVLink figure x 18 links
    latency = BASE_LATENCY_S["ring"] + 2 * (n - 1) * HOP_LATENCY_S["nvlink"]["ring"]
    t, algo = collective_time_s(c, DGX_H100, 8)
    assert algo == "ring"
    assert t == pytest.approx(latency + s * 2 * (n - 1) / n / busbw)


def test_across_nodes_the_network_share_per_gpu_bounds_the_bus():
    c = Collective("all_reduce", 2**28, group=16, count=1, phase="backward", what="x", nodes=2, per_node=8)
    # 8 NICs of 400 Gb/s for 8 GPUs: 50 GB/s each, below NVLink's 371 GB/s
    assert busbw_bytes_per_s(c, DGX_H100, 8) == pytest.approx(50e9)
    one_nic = type(DGX_H100)(**{**DGX_H100.__dict__, "nics_per_node": 1})
    assert busbw_bytes_per_s(c, one_nic, 8) == pytest.approx(50e9 / 8)


def test_nccl_picks_the_tree_for_small_all_reduces_over_many_nodes_and_the_ring_for_large_ones_in_a_node():
    small = Collective("all_reduce", 64 * 1024, group=256, count=1, phase="backward", what="x", nodes=32, per_node=8)
    assert collective_time_s(small, DGX_H100, 8)[1] == "tree"
    times = algorithm_times_s(small, DGX_H100, 8)
    assert times["tree"] < times["ring"]
    big = Collective("all_reduce", 2**30, group=8, count=1, phase="backward", what="x")
    assert collective_time_s(big, DGX_H100, 8)[1] == "ring"


def test_measured_busbw_replaces_the_spec(tmp_path):
    f = tmp_path / "ic.json"
    f.write_text('{"busbw_bytes_per_s": {"all_reduce": 1.0e11}, "latency_s": 2e-5, "measured_by": "nccl-tests"}')
    ic = resolve_interconnect(get_hardware("h100-sxm"), str(f))
    c = Collective("all_reduce", 10**9, group=4, count=1, phase="backward", what="x")
    t, _ = collective_time_s(c, ic, 4)
    assert t == pytest.approx(2e-5 + 10**9 * 1.5 / 1e11)
