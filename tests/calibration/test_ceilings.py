from __future__ import annotations

import time

import pytest
import torch

from flopcast.calibration.catalog import match_vendor_name
from flopcast.calibration.ceilings import launch_overhead_s, matmul_flops_per_s, measure_ceilings
from flopcast.calibration.energy import NullMeter
from flopcast.calibration.probe import probe_cpu, probe_device


def test_quick_cpu_ceilings():
    t0 = time.perf_counter()
    ceilings = measure_ceilings("cpu", quick=True, meter=NullMeter(""))
    assert time.perf_counter() - t0 < 20
    assert set(ceilings["measured_peak_flops_per_s"]) == {"fp32", "bf16", "fp16"}
    assert all(v > 0 for v in ceilings["measured_peak_flops_per_s"].values())
    assert ceilings["measured_bandwidth_bytes_per_s"] > 1e8
    assert 0 < ceilings["launch_overhead_s"] < 1e-3
    assert ceilings["idle_power_w"] is None  # no measuring meter
    first_touch = ceilings["measured_first_touch_bytes_per_s"]  # a real measurement: a rate, or no cost at all
    assert first_touch is None or 1e8 < first_touch < 1e12
    calibrated = probe_cpu().with_measurements(**ceilings)
    assert calibrated.calibrated and calibrated.launch_overhead_s == ceilings["launch_overhead_s"]


@pytest.mark.parametrize(("dtype", "match"), [("tf32", "CUDA tensor-core"), ("fp8", "no matmul ceiling")])
def test_unsupported_dtypes_are_refused(dtype, match):
    with pytest.raises(ValueError, match=match):
        matmul_flops_per_s("cpu", dtype, 64)


def test_launch_overhead_is_small_on_cpu():
    assert 0 < launch_overhead_s("cpu", min_window_s=0.01) < 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_quick_gpu_ceilings_against_the_catalog():
    ceilings = measure_ceilings("cuda", dtypes=("fp32", "tf32", "bf16"), quick=True)
    spec = probe_device("cuda:0")
    flops = ceilings["measured_peak_flops_per_s"]
    assert flops["tf32"] > flops["fp32"] and flops["bf16"] > flops["tf32"]
    assert 0 < ceilings["launch_overhead_s"] < 1e-3
    assert ceilings["idle_power_w"] is not None and 10 < ceilings["idle_power_w"] < spec.tdp_w
    if match_vendor_name(spec.vendor_name):
        assert 0.3 < flops["bf16"] / spec.peak_flops_per_s["bf16"] < 1.05
        assert 0.3 < ceilings["measured_bandwidth_bytes_per_s"] / spec.memory_bandwidth_bytes_per_s < 1.05


def test_first_touch_is_the_difference_between_a_fresh_and_a_reused_output(monkeypatch):
    from types import SimpleNamespace

    from flopcast.calibration import ceilings

    times = iter([0.020, 0.004, 0.010, 0.0099])  # fresh, reused; then a machine where both cost the same
    monkeypatch.setattr(ceilings, "measure", lambda fn, **kw: SimpleNamespace(time_s=next(times)))
    assert ceilings.first_touch_bytes_per_s(64 * 2**20) == pytest.approx(64 * 2**20 / 0.016)
    assert ceilings.first_touch_bytes_per_s(64 * 2**20) is None


def test_a_busy_cpu_is_named_before_its_ceilings_are_trusted(monkeypatch, caplog):
    from flopcast.calibration import ceilings

    assert ceilings.busy_cpu_note(0.9, 2) is None  # this process alone
    note = ceilings.busy_cpu_note(3.6, 2)
    assert note is not None and "load 3.6 on 2 cores" in note and "rerun on an idle machine" in note
    monkeypatch.setattr(ceilings.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    monkeypatch.setattr(ceilings, "first_touch_bytes_per_s", lambda **kw: None)
    with caplog.at_level("WARNING", logger=ceilings.__name__):
        ceilings.measure_ceilings("cpu", dtypes=("fp32",), quick=True, meter=NullMeter(""))
    assert any("this CPU is busy (load 64.0" in r.getMessage() for r in caplog.records)
