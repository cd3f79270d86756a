"""Energy meters against replayed NVML counter traces (a fake pynvml), a fake RAPL sysfs tree and CodeCarbon."""

from __future__ import annotations

import json
import sys
import types
from importlib import resources
from itertools import pairwise
from pathlib import Path

import pytest

from flopcast.calibration.energy import (
    CodecarbonTdpMeter,
    NullMeter,
    NvmlEnergyMeter,
    RaplEnergyMeter,
    WrappingCounter,
    select_meter,
)
from flopcast.calibration.windows import Monitor, UntrustedMeasurementWarning, measure

TRACES = resources.files("flopcast.calibration").joinpath("traces")


class FakeClock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def load_trace(name: str) -> dict:
    return json.loads(TRACES.joinpath(name).read_text())


BUS_IDS = ("00000000:18:00.0", "00000000:2A:00.0", "00000000:3A:00.0", "00000000:5D:00.0")
"""PCI bus ids of the fake machine's GPUs, in NVML order."""


def fake_pynvml(trace: dict, clock: FakeClock, others: dict | None = None) -> types.ModuleType:
    """A pynvml stand-in whose energy counter replays ``trace`` at the fake clock's time.

    ``others``: NVML index -> trace of the machine's other GPUs (four in all, bus ids :data:`BUS_IDS`);
    without it the machine has one GPU.
    """
    nvml = types.ModuleType("pynvml")
    traces = {0: trace, **(others or {})}

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    nvml.NVMLError, nvml.NVMLError_NotSupported = NVMLError, NVMLError_NotSupported
    nvml.fail_from_s = float("inf") if not trace.get("raises") else -1.0
    nvml.throttle_mask = 0
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetCount = lambda: 4 if others else 1
    nvml.nvmlDeviceGetHandleByIndex = lambda index: ("gpu", index)
    nvml.nvmlDeviceGetHandleByPciBusId = lambda bus: ("gpu", BUS_IDS.index(bus))
    nvml.nvmlDeviceGetHandleByUUID = lambda uuid: ("gpu", int(uuid.rsplit("-", 1)[1]))
    nvml.nvmlDeviceGetIndex = lambda handle: handle[1]

    def energy_mj(handle):
        if clock.t >= nvml.fail_from_s:
            raise NVMLError_NotSupported("Not Supported")
        samples = traces[handle[1]]["samples"]
        seen = [s for s in samples if s[0] <= clock.t] or samples[:1]
        return seen[-1][1]

    nvml.nvmlDeviceGetTotalEnergyConsumption = energy_mj
    nvml.nvmlDeviceGetCurrentClocksThrottleReasons = lambda handle: nvml.throttle_mask
    return nvml


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def nvml_with(monkeypatch, clock):
    def install(trace_name: str) -> types.ModuleType:
        module = fake_pynvml(load_trace(trace_name), clock)
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return module

    return install


def replay(meter, clock: FakeClock, until_s: float, step_s: float = 0.01) -> list[float]:
    readings = []
    while clock.t < until_s:
        readings.append(meter.read_j())
        clock.advance(step_s)
    return readings


def fake_cuda(monkeypatch, visible: list[int]) -> None:
    """torch.cuda as a job given the NVML GPUs ``visible`` sees it (CUDA_VISIBLE_DEVICES renumbers them)."""
    import torch

    def props(i):
        domain, bus, device = BUS_IDS[visible[i]].replace(".0", "").split(":")
        return types.SimpleNamespace(pci_domain_id=int(domain, 16), pci_bus_id=int(bus, 16),
                                     pci_device_id=int(device, 16))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(visible))
    monkeypatch.setattr(torch.cuda, "get_device_properties", props)


@pytest.mark.parametrize(("visible", "cuda_index", "nvml_index"),
                         [([2, 3], 0, 2), ([2, 3], 1, 3), ([0, 1, 2, 3], 1, 1)])
def test_nvml_meter_reads_the_gpu_the_job_runs_on(monkeypatch, clock, visible, cuda_index, nvml_index):
    trace = load_trace("nvml_h200_recorded.json")
    idle = {"samples": [[t, 1000 * i] for i, t in enumerate(range(0, 10))]}  # 1 W: another job's idle GPU
    others = {i: trace if i == nvml_index else idle for i in range(1, 4)}
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(trace if nvml_index == 0 else idle, clock, others))
    fake_cuda(monkeypatch, visible)
    meter = NvmlEnergyMeter(cuda_index)
    assert meter.available and meter.nvml_index == nvml_index
    clock.advance(2.0)
    assert meter.read_j() > 100  # the H200 under load, not the 1 W idle board


@pytest.mark.parametrize(("visible", "nvml_index"), [("3,1", 1), ("GPU-uuid-2", 2)])
def test_nvml_meter_without_cuda_reads_cuda_visible_devices(monkeypatch, clock, visible, nvml_index):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(load_trace("nvml_h200_recorded.json"), clock,
                                                           {1: {"samples": [[0, 0]]}, 2: {"samples": [[0, 0]]},
                                                            3: {"samples": [[0, 0]]}}))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    cuda_index = 1 if "," in visible else 0
    assert NvmlEnergyMeter(cuda_index).nvml_index == nvml_index
    assert not NvmlEnergyMeter(5).available and "not visible" in NvmlEnergyMeter(5).reason


def test_wrapping_counter():
    counter = WrappingCounter(1000)
    assert [counter.update(v) for v in (990, 995, 5, 20)] == [0, 5, 15, 30]
    assert counter.wraps == 1


@pytest.mark.parametrize("trace", ["nvml_h100_load.json", "nvml_h200_recorded.json"])
def test_nvml_replay_is_monotonic_and_integrates(nvml_with, clock, trace):
    nvml_with(trace)
    samples = load_trace(trace)["samples"]
    meter = NvmlEnergyMeter(0)
    assert meter.available and meter.source == "nvml" and meter.reason == ""
    readings = replay(meter, clock, samples[-1][0] + 0.2)
    assert readings[0] == 0.0
    assert all(b >= a for a, b in pairwise(readings))
    assert readings[-1] == pytest.approx((samples[-1][1] - samples[0][1]) / 1000)


def test_nvml_counter_wrap(nvml_with, clock):
    nvml_with("nvml_wrap.json")
    trace = load_trace("nvml_wrap.json")
    samples = trace["samples"]
    assert any(b[1] < a[1] for a, b in pairwise(samples)), "trace must contain a wrap"
    meter = NvmlEnergyMeter(0)
    readings = replay(meter, clock, samples[-1][0] + 0.1)
    assert all(b >= a for a, b in pairwise(readings))
    expected_mj = (samples[-1][1] - samples[0][1]) % trace["counter_range_mj"]
    assert readings[-1] == pytest.approx(expected_mj / 1000)
    assert 250 < readings[-1] < 350  # ~100 W for ~3 s
    assert meter._counter.wraps == 1


def test_nvml_counter_not_supported(nvml_with, clock):
    nvml_with("nvml_not_supported.json")
    meter = NvmlEnergyMeter(0)
    assert not meter.available
    assert meter.read_j() is None
    assert "Not Supported" in meter.reason
    chosen = select_meter("cuda:0")
    assert isinstance(chosen, NullMeter) and "nvml" in chosen.reason
    monitor = Monitor("cpu", meter, clock)
    monitor.begin_window("step")
    clock.advance(2.0)
    m = monitor.end_window("step")
    assert m.energy_j is None and m.energy_source == "none"
    assert "energy missing" in m.reason and "Not Supported" in m.reason
    assert m.trusted  # the time is fine; the energy is recorded as missing


def test_nvml_error_mid_run_becomes_missing(nvml_with, clock):
    nvml = nvml_with("nvml_h100_load.json")
    meter = NvmlEnergyMeter(0)
    monitor = Monitor("cpu", meter, clock)
    monitor.begin_window("step")
    nvml.fail_from_s = 0.5
    clock.advance(1.0)
    m = monitor.end_window("step")
    assert m.energy_j is None and "Not Supported" in m.reason


def test_nvml_missing_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    meter = NvmlEnergyMeter(0)
    assert not meter.available and "pynvml not installed" in meter.reason


def test_short_nvml_window_is_untrusted(nvml_with, clock):
    nvml_with("nvml_h100_load.json")
    monitor = Monitor("cpu", NvmlEnergyMeter(0), clock)
    clock.advance(1.5)
    monitor.begin_window("short")
    clock.advance(0.03)
    m = monitor.end_window("short")
    assert not m.trusted
    assert "update period" in m.reason


def test_long_nvml_window_gives_realistic_power(nvml_with, clock):
    nvml_with("nvml_h100_load.json")
    monitor = Monitor("cpu", NvmlEnergyMeter(0), clock)
    clock.advance(1.2)
    monitor.begin_window("load")
    clock.advance(1.5)
    m = monitor.end_window("load", n_repeats=10)
    assert m.trusted, m.reason
    assert 250 < m.avg_power_w < 330  # the trace's ~300 W phase
    assert m.energy_j == pytest.approx(m.avg_power_w * m.window_s / 10)
    assert m.energy_source == "nvml" and m.energy_window_s == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("start_s", "length_s", "low_w", "high_w"),
    [(0.1, 0.8, 75, 85), (1.9, 1.5, 550, 850), (3.7, 0.8, 115, 135)],  # idle, bf16 matmuls, warm idle
)
def test_recorded_h200_trace_phases(nvml_with, clock, start_s, length_s, low_w, high_w):
    nvml_with("nvml_h200_recorded.json")
    monitor = Monitor("cpu", NvmlEnergyMeter(0), clock)
    clock.advance(start_s)
    monitor.begin_window("phase")
    clock.advance(length_s)
    m = monitor.end_window("phase")
    assert m.trusted, m.reason
    assert low_w < m.avg_power_w < high_w


def test_measure_with_replayed_nvml(nvml_with, clock):
    nvml_with("nvml_h100_load.json")
    meter = NvmlEnergyMeter(0)
    clock.advance(1.0)  # into the load phase
    m = measure(lambda: clock.advance(0.002), device="cpu", meter=meter, clock=clock, energy_window_s=1.0)
    assert m.trusted, m.reason
    assert m.time_s == pytest.approx(0.002)
    assert m.energy_window_s >= 1.0
    assert 250 < m.avg_power_w < 330
    assert m.energy_j == pytest.approx(m.avg_power_w * 0.002, rel=0.05)


def test_measure_short_energy_window_warns(nvml_with, clock):
    nvml_with("nvml_h100_load.json")
    meter = NvmlEnergyMeter(0)
    clock.advance(1.0)
    with pytest.warns(UntrustedMeasurementWarning, match="update period"):
        m = measure(lambda: clock.advance(0.002), device="cpu", meter=meter, clock=clock, energy_window_s=0.02)
    assert not m.trusted and m.energy_window_s < 0.1


@pytest.mark.parametrize(
    ("mask", "trusted", "text"),
    [(0x4, True, "note: clocks sw_power_cap"), (0x40, False, "throttled: hw_thermal_slowdown"), (0x1, True, "")],
)
def test_throttle_reasons(nvml_with, clock, mask, trusted, text):
    nvml = nvml_with("nvml_h100_load.json")
    nvml.throttle_mask = mask
    monitor = Monitor("cpu", NvmlEnergyMeter(0), clock)
    monitor.begin_window("w")
    clock.advance(1.5)
    m = monitor.end_window("w")
    assert m.trusted is trusted
    assert text in m.reason


# --------------------------------------------------------------------------------------------- RAPL


def make_rapl(root: Path, packages: dict[str, tuple[int, int]]) -> Path:
    """A fake powercap tree: ``intel-rapl:N`` packages (energy, max range, µJ) plus a core sub-domain."""
    for domain, (energy_uj, range_uj) in packages.items():
        d = root / domain
        d.mkdir(parents=True)
        (d / "name").write_text(f"package-{domain[-1]}\n")
        (d / "energy_uj").write_text(f"{energy_uj}\n")
        (d / "max_energy_range_uj").write_text(f"{range_uj}\n")
        core = root / f"{domain}:0"
        core.mkdir()
        (core / "name").write_text("core\n")
        (core / "energy_uj").write_text("123\n")
        (core / "max_energy_range_uj").write_text(f"{range_uj}\n")
    return root


def set_energy(root: Path, domain: str, energy_uj: int) -> None:
    (root / domain / "energy_uj").write_text(f"{energy_uj}\n")


def test_rapl_sums_packages_and_handles_wrap(tmp_path):
    rng = 262_143_328_850  # a real max_energy_range_uj
    root = make_rapl(tmp_path, {"intel-rapl:0": (rng - 1_000_000, rng), "intel-rapl:1": (5_000_000, rng)})
    meter = RaplEnergyMeter(root)
    assert meter.available and meter.read_j() == 0.0
    set_energy(root, "intel-rapl:0", 2_000_000)  # wrapped: 1 J to the top + 2 J after
    set_energy(root, "intel-rapl:1", 9_000_000)  # +4 J
    assert meter.read_j() == pytest.approx(7.0)
    set_energy(root, "intel-rapl:0", 3_000_000)
    assert meter.read_j() == pytest.approx(8.0)


def test_rapl_unreadable_and_absent(tmp_path):
    root = make_rapl(tmp_path / "tree", {"intel-rapl:0": (10, 1000)})
    (root / "intel-rapl:0" / "energy_uj").unlink()
    (root / "intel-rapl:0" / "energy_uj").mkdir()  # reading it fails like a root-only file
    meter = RaplEnergyMeter(root)
    assert not meter.available and meter.read_j() is None and "rapl: cannot read" in meter.reason
    absent = RaplEnergyMeter(tmp_path / "nothing")
    assert not absent.available and "no intel-rapl package domain" in absent.reason


def test_select_meter_for_cpu(tmp_path):
    root = make_rapl(tmp_path / "tree", {"intel-rapl:0": (10, 1000)})
    assert select_meter("cpu", powercap_root=root).source == "rapl"
    none = select_meter("cpu", estimates=False, powercap_root=tmp_path / "nothing")
    assert isinstance(none, NullMeter) and none.read_j() is None and "rapl" in none.reason
    assert select_meter("tpu").source == "none"


# ---------------------------------------------------------------------------------------- CodeCarbon


def test_codecarbon_constant_mode_integrates_half_tdp(clock):
    meter = CodecarbonTdpMeter(mode="constant", tdp_w=100.0, model="test cpu", clock=clock)
    assert meter.available and meter.source == "codecarbon-tdp" and "estimated" in meter.reason
    assert meter.read_j() == 0.0
    clock.advance(2.0)
    assert meter.read_j() == pytest.approx(100.0)  # CodeCarbon constant mode: 50 % of TDP = 50 W x 2 s


def test_codecarbon_tdp_lookup_on_this_machine():
    meter = CodecarbonTdpMeter()  # CodeCarbon's own CPU table lookup (or its per-thread fallback)
    assert meter.available and meter.tdp_w > 0
    first = meter.read_j()
    assert first is not None and meter.read_j() >= first
