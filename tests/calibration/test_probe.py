from __future__ import annotations

import sys
import types

import pytest
import torch

from flopcast.calibration.catalog import get_hardware, load_catalog
from flopcast.calibration.probe import (
    ProbeError,
    cpu_flops_per_cycle,
    cpu_peak_flops_per_s,
    cpu_vector_bits,
    probe_cpu,
    probe_device,
    probe_local,
)


def test_probe_cpu_on_this_machine():
    d = probe_cpu()
    assert d.kind == "cpu" and d.name.startswith("local-cpu-")
    assert d.peak_flops_per_s and all(v > 0 for v in d.peak_flops_per_s.values())
    assert d.peak_flops_per_s["fp64"] == pytest.approx(d.peak_flops_per_s["fp32"] / 2)
    assert d.memory_bytes > 0 and d.clock_hz > 0 and d.compute_units >= 1
    assert d.compute_units <= d.extra["torch_threads"]
    assert d.extra["memory_bandwidth_estimated"] is True and d.memory_bandwidth_bytes_per_s > 0
    assert d.vendor_name


def test_probe_local_cpu_and_auto():
    (cpu,) = probe_local("cpu")
    assert cpu.kind == "cpu"
    everything = probe_local()
    assert everything[-1].kind == "cpu"
    assert all(d.kind == "gpu" for d in everything[:-1])


@pytest.mark.parametrize(
    ("flags", "vendor", "family", "bits", "fp32", "bf16", "int8"),
    [({"avx", "avx2", "fma"}, "GenuineIntel", 6, 256, 32, 32, 64),  # 2 FMA x 8 lanes x 2
     ({"avx", "avx2", "fma", "avx512f", "avx512_vnni"}, "GenuineIntel", 6, 512, 64, 64, 256),
     ({"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"}, "GenuineIntel", 6, 512, 64, 1024, 2048),
     ({"avx2", "fma", "avx512f", "avx512_bf16"}, "AuthenticAMD", 25, 256, 32, 64, 64),  # Zen 4: 256-bit pipes
     ({"sse2"}, "", None, 128, 8, 8, 16)],
)  # fmt: skip
def test_cpu_flops_per_cycle(flags, vendor, family, bits, fp32, bf16, int8):
    assert cpu_vector_bits(flags, vendor, family) == bits
    per_cycle = cpu_flops_per_cycle(flags, bits)
    assert (per_cycle["fp32"], per_cycle["bf16"], per_cycle["int8"]) == (fp32, bf16, int8)
    assert per_cycle["fp64"] == fp32 / 2 and "tf32" not in per_cycle


@pytest.mark.parametrize("name", [n for n, d in load_catalog().items() if d.kind == "cpu"])
def test_catalog_cpu_entries_follow_the_probe_formula(name):
    d = get_hardware(name)
    flags = set(d.extra["isa_flags"])
    bits = d.extra.get("vector_datapath_bits") or cpu_vector_bits(flags)
    expected = cpu_peak_flops_per_s(d.compute_units, d.clock_hz, cpu_flops_per_cycle(flags, bits))
    assert d.peak_flops_per_s == pytest.approx(expected)


def fake_nvml(names: list[str]) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = type("NVMLError", (Exception,), {})
    nvml.NVML_CLOCK_SM = 1
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetCount = lambda: len(names)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetHandleByUUID = lambda uuid: int(uuid.rsplit("-", 1)[1])
    nvml.nvmlDeviceGetIndex = lambda h: h
    nvml.nvmlDeviceGetName = lambda h: names[h]
    nvml.nvmlSystemGetDriverVersion = lambda: "580.95.05"
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=85_520_809_984)
    nvml.nvmlDeviceGetPowerManagementLimit = lambda h: 700_000  # mW
    nvml.nvmlDeviceGetMaxClockInfo = lambda h, clock: 1980  # MHz
    return nvml


def test_probe_known_gpu_uses_catalog_peaks(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(["NVIDIA H100 80GB HBM3", "NVIDIA Mystery 9"]))
    gpus = probe_local()
    assert [d.kind for d in gpus] == ["gpu", "gpu", "cpu"]
    h100, mystery = gpus[0], gpus[1]
    spec = get_hardware("h100-sxm")
    assert h100.name == "h100-sxm" and h100.peak_flops_per_s == spec.peak_flops_per_s
    assert (h100.tdp_w, h100.clock_hz, h100.memory_bytes) == (700.0, 1.98e9, 85_520_809_984.0)
    assert h100.extra["driver_version"] == "580.95.05" and spec.source in h100.source
    assert mystery.name == "local-gpu-nvidia-mystery-9" and mystery.extra["spec_unknown"]
    assert mystery.peak_flops_per_s == {}
    with pytest.raises(ProbeError, match="out of range"):
        probe_device("cuda:2")


def test_probe_describes_the_gpu_the_job_was_given(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(["NVIDIA H100 80GB HBM3", "NVIDIA Mystery 9"]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-uuid-1")  # a SLURM job given the second board
    gpus = probe_local()
    assert [d.kind for d in gpus] == ["gpu", "cpu"]
    assert gpus[0].name == "local-gpu-nvidia-mystery-9"
    assert (gpus[0].extra["cuda_index"], gpus[0].extra["nvml_index"]) == (0, 1)
    with pytest.raises(ProbeError, match="not visible"):
        probe_device("cuda:1")


def test_probe_requested_missing_device_is_loud(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(ProbeError, match="pynvml"):
        probe_device("cuda")
    assert [d.kind for d in probe_local()] == ["cpu"]  # auto: missing GPUs are simply absent
    with pytest.raises(ProbeError, match="unknown device"):
        probe_device("tpu:0")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_probe_real_gpu():
    d = probe_device("cuda:0")
    assert d.kind == "gpu" and d.compute_units > 0 and d.memory_bytes > 0 and d.tdp_w > 0
    assert d.extra["compute_capability"]
    if "H100" in d.vendor_name:
        assert d.name.startswith("h100") and d.peak_flops_per_s["bf16"] > 5e14
