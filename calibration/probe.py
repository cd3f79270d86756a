"""Probe the local machine: GPUs through NVML (+ catalog spec values), the CPU from /proc/cpuinfo and psutil.

CPU peak FLOP/s are estimates, ``cores x clock x FLOP/cycle/core`` from the ISA flags (see
:func:`cpu_flops_per_cycle`); the DRAM bandwidth is a conservative guess until a campaign measures it.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

import psutil
import torch

from flopcast.calibration.catalog import get_hardware, match_vendor_name
from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.nvml_device import NvmlDeviceError, nvml_handle, visible_gpu_count

ISA_FLAGS = (
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
    "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "neon", "asimd", "sve",
)  # fmt: skip
"""CPU feature flags recorded in ``extra['isa_flags']`` (Linux /proc/cpuinfo spelling)."""

FMA_UNITS_PER_CORE = 2
"""Vector FMA pipes per core assumed by the estimate (Intel server cores since Haswell, AMD Zen)."""

DRAM_GUESS_BYTES_PER_S_PER_CORE = 5e9
"""Conservative a-priori DRAM bandwidth per used core, bytes/s, until ceilings are measured."""

DRAM_GUESS_MIN_BYTES_PER_S = 10e9
"""Floor of the a-priori DRAM bandwidth guess, bytes/s (one DDR4 channel is ~25 GB/s)."""


class ProbeError(ValueError):
    """A requested device is not present on this machine."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


# --------------------------------------------------------------------------------------------- CPU


def cpu_vector_bits(flags: set[str], vendor: str = "", family: int | None = None) -> int:
    """Width of the FMA datapath, bits.

    AMD Zen 4 (family 0x19 = 25) accepts AVX-512 but executes it on 256-bit pipes, so it counts as 256.
    """
    if "avx512f" in flags and not ("amd" in vendor.lower() and family == 25):
        return 512
    if "avx" in flags or "avx2" in flags:
        return 256
    return 128  # SSE or NEON/ASIMD


def cpu_flops_per_cycle(flags: set[str], vector_bits: int) -> dict[str, float]:
    """Dense peak FLOP (int8: ops) per cycle per core for each dtype.

    The formula (FLOPs = 2 x MACs):

    - fp32 = FMA units (2) x lanes (``vector_bits / 32``) x 2, e.g. AVX2+FMA 2 x 8 x 2 = 32, AVX-512 = 64;
      without FMA a separate multiply and add per cycle give half of that.
    - fp64 = fp32 / 2.
    - bf16 = 1024 with AMX-BF16 (one TMUL tile op), 2 x fp32 with AVX512_BF16 (VDPBF16PS), else fp32
      (converted and computed in fp32).
    - fp16 = 1024 with AMX-FP16, 2 x fp32 with AVX512-FP16, else fp32.
    - int8 = 2048 with AMX-INT8, 4 x fp32 with VNNI (VPDPBUSD: 4 MACs per 32-bit lane), else 2 x fp32.

    Args:
        flags: ISA flags in /proc/cpuinfo spelling.
        vector_bits: FMA datapath width from :func:`cpu_vector_bits`.

    Returns:
        FLOP per cycle per core by dtype key (no ``tf32``: CPUs have none).

    """
    fp32 = FMA_UNITS_PER_CORE * (vector_bits / 32) * (2 if "fma" in flags else 1)
    bf16 = 1024.0 if "amx_bf16" in flags else 2 * fp32 if "avx512_bf16" in flags else fp32
    fp16 = 1024.0 if "amx_fp16" in flags else 2 * fp32 if "avx512_fp16" in flags else fp32
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    int8 = 2048.0 if "amx_int8" in flags else 4 * fp32 if vnni else 2 * fp32
    return {"fp64": fp32 / 2, "fp32": fp32, "bf16": bf16, "fp16": fp16, "int8": int8}


def cpu_peak_flops_per_s(cores: int, clock_hz: float, per_cycle: dict[str, float]) -> dict[str, float]:
    """Peak FLOP/s per dtype = cores x clock (Hz) x FLOP/cycle/core."""
    return {dtype: cores * clock_hz * flops for dtype, flops in per_cycle.items()}


def _read_proc_cpuinfo() -> dict[str, str]:
    """First processor block of /proc/cpuinfo as key -> value ({} off Linux)."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return {}
    info: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_identity() -> tuple[str, str, int | None, set[str], float]:
    """(model name, vendor, family, flags, advertised clock Hz or 0) from /proc/cpuinfo or py-cpuinfo.

    /proc/cpuinfo is read first because py-cpuinfo takes about a second (it spawns subprocesses).
    """
    info = _read_proc_cpuinfo()
    if info:
        model = info.get("model name") or info.get("Model") or platform.processor()
        vendor = info.get("vendor_id", "")
        family = int(info["cpu family"]) if info.get("cpu family", "").isdigit() else None
        flags = set((info.get("flags") or info.get("Features") or "").split())
        return model, vendor, family, flags, 0.0
    import cpuinfo  # py-cpuinfo: the portable path (macOS, Windows)

    data = cpuinfo.get_cpu_info()
    hz = data.get("hz_advertised") or [0, 0]
    return (
        data.get("brand_raw") or platform.processor() or "unknown",
        data.get("vendor_id_raw", ""),
        data.get("family"),
        set(data.get("flags", [])),
        float(hz[0]),
    )


def _cpu_clock_hz(model: str, advertised_hz: float) -> tuple[float, str]:
    """Best available max clock, Hz, and where it came from."""
    freq = psutil.cpu_freq()
    if freq is not None and freq.max > 0:
        return freq.max * 1e6, "psutil max"
    at = re.search(r"@\s*([\d.]+)\s*GHz", model)
    if at:
        return float(at.group(1)) * 1e9, "model name"
    if advertised_hz > 0:
        return advertised_hz, "py-cpuinfo advertised"
    if freq is not None and freq.current > 0:
        return freq.current * 1e6, "psutil current"
    mhz = _read_proc_cpuinfo().get("cpu MHz", "")
    if mhz:
        return float(mhz) * 1e6, "/proc/cpuinfo current"
    raise ProbeError("cannot determine the CPU clock (no psutil frequency, no /proc/cpuinfo)")


def probe_cpu() -> HardwareDescriptor:
    """Describe the local CPU as the process sees it.

    Peak FLOP/s use ``min(torch.get_num_threads(), physical cores)`` cores (SMT siblings share FMA units).

    Returns:
        A ``cpu`` descriptor named ``local-cpu-<slug of model>``, with estimated peaks and an a-priori DRAM
        bandwidth guess flagged in ``extra['memory_bandwidth_estimated']``.

    """
    model, vendor, family, all_flags, advertised_hz = cpu_identity()
    flags = all_flags & set(ISA_FLAGS)
    physical = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    logical = psutil.cpu_count() or physical
    threads = torch.get_num_threads()
    cores = max(1, min(threads, physical))
    clock_hz, clock_source = _cpu_clock_hz(model, advertised_hz)
    bits = cpu_vector_bits(flags, vendor, family)
    per_cycle = cpu_flops_per_cycle(flags, bits)
    bandwidth = max(DRAM_GUESS_MIN_BYTES_PER_S, cores * DRAM_GUESS_BYTES_PER_S_PER_CORE)
    extra: dict[str, Any] = {
        "isa_flags": sorted(flags),
        "cpu_vendor": vendor,
        "cpu_family": family,
        "physical_cores": physical,
        "logical_cores": logical,
        "torch_threads": threads,
        "vector_datapath_bits": bits,
        "flops_per_cycle_per_core": per_cycle,
        "clock_source": clock_source,
        "peak_formula": "min(torch threads, physical cores) x clock_hz x flops_per_cycle_per_core",
        "memory_bandwidth_estimated": True,
        "memory_bandwidth_note": (
            f"a-priori guess max({DRAM_GUESS_MIN_BYTES_PER_S:.0e}, cores x "
            f"{DRAM_GUESS_BYTES_PER_S_PER_CORE:.0e}) B/s until measured"
        ),
        "torch_version": torch.__version__,
    }
    return HardwareDescriptor(
        name=f"local-cpu-{_slug(model)}",
        kind="cpu",
        peak_flops_per_s=cpu_peak_flops_per_s(cores, clock_hz, per_cycle),
        memory_bandwidth_bytes_per_s=bandwidth,
        memory_bytes=float(psutil.virtual_memory().total),
        compute_units=cores,
        clock_hz=clock_hz,
        tdp_w=0.0,
        interconnect="host DRAM",
        source="probe (estimated from ISA flags, see extra.peak_formula)",
        vendor_name=model,
        extra=extra,
    )


# --------------------------------------------------------------------------------------------- GPU


def _nvml() -> Any:
    """The initialised pynvml module.

    Raises:
        ProbeError: if pynvml is missing or NVML cannot be initialised (no driver).

    """
    try:
        import pynvml
    except ImportError as e:
        raise ProbeError(f"pynvml is not installed ({e})") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        raise ProbeError(f"NVML unavailable: {e}") from None
    return pynvml


def _decode(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def gpu_count() -> int:
    """Number of NVIDIA GPUs this process may use (0 without a driver or pynvml; see ``visible_gpu_count``)."""
    try:
        return visible_gpu_count(_nvml())
    except ProbeError:
        return 0


def probe_gpu(index: int = 0) -> HardwareDescriptor:
    """Describe NVIDIA GPU ``index`` through NVML, spec peaks filled from the catalog when the GPU is known.

    Args:
        index: CUDA device index (``cuda:N``); its NVML device is found by PCI bus id, so under
            ``CUDA_VISIBLE_DEVICES`` the descriptor is the GPU the job runs on.

    Returns:
        The catalog id as name when known (``source`` keeps the catalog URL), else ``local-gpu-<slug>`` with
        empty peaks and bandwidth 0 flagged in ``extra['spec_unknown']``.

    Raises:
        ProbeError: if NVML is unavailable or the index is out of range.

    """
    nvml = _nvml()
    try:
        handle, nvml_index = nvml_handle(nvml, index)
    except (NvmlDeviceError, nvml.NVMLError) as e:
        raise ProbeError(f"cuda:{index}: {e}") from None
    vendor_name = _decode(nvml.nvmlDeviceGetName(handle))
    extra: dict[str, Any] = {
        "cuda_index": index,
        "nvml_index": nvml_index,
        "driver_version": _decode(nvml.nvmlSystemGetDriverVersion()),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
    }
    memory_bytes = float(nvml.nvmlDeviceGetMemoryInfo(handle).total)
    tdp_w = nvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000.0  # mW -> W
    clock_hz = nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM) * 1e6  # MHz -> Hz
    compute_units = 0
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        props = torch.cuda.get_device_properties(index)
        compute_units = props.multi_processor_count
        extra["compute_capability"] = f"{props.major}.{props.minor}"
    catalog_id = match_vendor_name(vendor_name)
    if catalog_id is None:
        extra["spec_unknown"] = True
        return HardwareDescriptor(
            name=f"local-gpu-{_slug(vendor_name)}",
            kind="gpu",
            peak_flops_per_s={},
            memory_bandwidth_bytes_per_s=0.0,
            memory_bytes=memory_bytes,
            compute_units=compute_units,
            clock_hz=clock_hz,
            tdp_w=tdp_w,
            source="probe (not in the catalog: no spec peaks)",
            vendor_name=vendor_name,
            extra=extra,
        )
    spec = get_hardware(catalog_id)
    return HardwareDescriptor(
        name=spec.name,
        kind="gpu",
        peak_flops_per_s=dict(spec.peak_flops_per_s),
        memory_bandwidth_bytes_per_s=spec.memory_bandwidth_bytes_per_s,
        memory_bytes=memory_bytes,
        compute_units=compute_units or spec.compute_units,
        clock_hz=clock_hz,
        tdp_w=tdp_w,
        interconnect=spec.interconnect,
        source=f"probe (NVML) + catalog {spec.source}",
        vendor_name=vendor_name,
        extra={**spec.extra, **extra},
    )


# ------------------------------------------------------------------------------------------ public


def probe_device(device: str) -> HardwareDescriptor:
    """Describe one requested device.

    Args:
        device: ``cpu``, ``cuda`` (GPU 0) or ``cuda:N``.

    Raises:
        ProbeError: if the device is not present (asked for explicitly, so this is loud).

    """
    if device == "cpu":
        return probe_cpu()
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if m is None:
        raise ProbeError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    return probe_gpu(int(m.group(1) or 0))


def probe_local(device: str = "auto") -> list[HardwareDescriptor]:
    """Describe the local devices.

    Args:
        device: ``auto`` (every NVIDIA GPU NVML sees, then the CPU), or one device as in :func:`probe_device`.

    Returns:
        Descriptors, GPUs first; ``auto`` always includes the CPU.

    """
    if device != "auto":
        return [probe_device(device)]
    return [probe_gpu(i) for i in range(gpu_count())] + [probe_cpu()]
