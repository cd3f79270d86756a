"""Measured ceilings of a device: dense matmul FLOP/s per dtype, copy bandwidth, launch overhead, idle power.

The result's keys are :class:`~flopcast.calibration.descriptor.HardwareDescriptor` fields, so
``descriptor.with_measurements(**measure_ceilings(device))`` calibrates a descriptor.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from flopcast.calibration.energy import EnergyMeter, select_meter
from flopcast.calibration.windows import Monitor, UntrustedMeasurementWarning, measure

log = logging.getLogger(__name__)

TORCH_DTYPES = {
    "fp64": torch.float64,
    "fp32": torch.float32,
    "tf32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
"""Dtype keys with a matmul ceiling benchmark (``tf32`` is fp32 storage with TF32 tensor cores, GPU only)."""

MEASURED_ENERGY_SOURCES = ("nvml", "rapl")
"""Meters that measure (rather than estimate) power, so an idle power can be read from them."""


@dataclass(frozen=True)
class CeilingSizes:
    """Problem sizes of one ceilings run.

    Attributes:
        matmul_n: side of the square matmuls.
        copy_bytes: size of the copied buffer, bytes (well above the last-level cache).
        idle_s: sleep over which idle power is averaged, s.
        min_window_s: shortest timed window, s.

    """

    matmul_n: int
    copy_bytes: int
    idle_s: float
    min_window_s: float


SIZES = {
    ("gpu", False): CeilingSizes(8192, 1 << 30, 2.0, 0.1),
    ("gpu", True): CeilingSizes(4096, 256 << 20, 2.0, 0.05),
    ("cpu", False): CeilingSizes(2048, 256 << 20, 2.0, 0.1),
    ("cpu", True): CeilingSizes(512, 32 << 20, 2.0, 0.02),
}


def _kind(device: str) -> str:
    return "gpu" if device.startswith("cuda") else "cpu"


@contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """Allow (or forbid) TF32 tensor cores for fp32 CUDA matmuls inside the block, restoring the setting."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def matmul_flops_per_s(device: str, dtype: str, n: int, min_window_s: float = 0.05) -> float:
    """Measured dense ``n x n @ n x n`` matmul throughput, FLOP/s (2 n³ FLOPs per product).

    Raises:
        ValueError: for a dtype without a benchmark, or ``tf32`` off CUDA.

    """
    if dtype not in TORCH_DTYPES:
        raise ValueError(f"no matmul ceiling benchmark for dtype {dtype!r}; known: {', '.join(TORCH_DTYPES)}")
    if dtype == "tf32" and _kind(device) != "gpu":
        raise ValueError("tf32 is a CUDA tensor-core mode; measure fp32 on a CPU")
    a = torch.randn(n, n, device=device).to(TORCH_DTYPES[dtype])
    b = torch.randn(n, n, device=device).to(TORCH_DTYPES[dtype])
    with _tf32(dtype == "tf32"):
        m = measure(lambda: torch.mm(a, b), device=device, min_window_s=min_window_s, warmup=2, energy_window_s=0)
    return 2.0 * n**3 / m.time_s


def copy_bandwidth_bytes_per_s(device: str, n_bytes: int, min_window_s: float = 0.05) -> float:
    """Measured device-memory copy bandwidth, (bytes read + bytes written) / s."""
    src = torch.empty(n_bytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    m = measure(lambda: dst.copy_(src), device=device, min_window_s=min_window_s, warmup=2, energy_window_s=0)
    return 2.0 * src.numel() * src.element_size() / m.time_s


def first_touch_bytes_per_s(n_bytes: int = 64 * 2**20, min_window_s: float = 0.05) -> float | None:
    """A CPU's rate of faulting in freshly mapped memory, bytes/s (``None`` where it costs nothing measurable).

    ``torch.sqrt`` of an ``n_bytes`` float32 tensor into a fresh output (mapped anew above glibc's 32 MiB mmap
    threshold: :mod:`flopcast.predictor.first_touch`) against the same into a reused one; the difference is the
    first touch of ``n_bytes``. Less than 5 % apart (transparent huge pages, another allocator): ``None``.
    """
    x = torch.rand(n_bytes // 4) + 0.1
    y = torch.empty_like(x)
    fresh = measure(lambda: torch.sqrt(x), min_window_s=min_window_s, warmup=2, energy_window_s=0).time_s
    reused = measure(lambda: torch.sqrt(x, out=y), min_window_s=min_window_s, warmup=2, energy_window_s=0).time_s
    return n_bytes / (fresh - reused) if fresh > 1.05 * reused else None


def launch_overhead_s(device: str, min_window_s: float = 0.05) -> float:
    """Launch overhead, s: time per call of a tiny op (in-place add on a 1-element tensor) run back to back.

    The one definition of a device's launch overhead (see ARCHITECTURE.md): a tiny op timed as the
    microbenchmarks time every op, by :func:`~flopcast.calibration.windows.measure` (calls back to back,
    one synchronisation per window), so this figure and the one fitted from a device's microbenchmark
    rows (``predictor.training.fitted_overhead_s``: the median of its cheapest rows) measure the same thing.
    """
    x = torch.zeros(1, device=device)
    return measure(lambda: x.add_(1.0), device=device, min_window_s=min_window_s, warmup=50, energy_window_s=0).time_s


def idle_power_w(device: str, meter: EnergyMeter, idle_s: float = 2.0) -> float | None:
    """Mean power while the process sleeps for ``idle_s``, W; ``None`` unless ``meter`` measures power."""
    if meter.source not in MEASURED_ENERGY_SOURCES or not meter.available:
        return None
    monitor = Monitor(device, meter)
    monitor.begin_window("idle")
    time.sleep(idle_s)
    m = monitor.end_window("idle", min_energy_window_s=idle_s)
    if not m.trusted:
        warnings.warn(f"idle power untrusted: {m.reason}", UntrustedMeasurementWarning, stacklevel=2)
    return m.avg_power_w


def busy_cpu_note(load_1min: float | None = None, cores: int | None = None) -> str | None:
    """Why ceilings measured now on this host's CPU may be low: other work running (``None``: the host is idle enough).

    Busy means a 1-minute load average at or above the core count (this process alone counts about 1): a quick
    campaign run beside a test suite on a 2-vCPU VM measured 8.3 GB/s and 25 GFLOP/s where the idle VM gives
    55.6 GB/s, and a model calibrated on it priced a step 4.6x too slow.

    Args:
        load_1min: the load average (``None``: ``os.getloadavg()``).
        cores: usable cores (``None``: ``os.cpu_count()``).
    """
    load = os.getloadavg()[0] if load_1min is None else load_1min
    n = (os.cpu_count() or 1) if cores is None else cores
    if load < n:
        return None
    return (f"this CPU is busy (load {load:.1f} on {n} cores): its measured ceilings may be low; "
            "rerun on an idle machine")


def measure_ceilings(
    device: str = "cpu",
    dtypes: tuple[str, ...] = ("fp32", "bf16", "fp16"),
    quick: bool = False,
    meter: EnergyMeter | None = None,
) -> dict[str, Any]:
    """Measure the ceilings of one device.

    Sizes (see :data:`SIZES`): 8192² matmuls and a 1 GiB copy on a GPU, 2048² and 256 MiB on a CPU;
    ``quick`` shrinks them (4096² / 512², 256 / 32 MiB) for smoke runs. Idle power needs >= 2 s of sleep.

    Args:
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        dtypes: dtype keys of :data:`TORCH_DTYPES` to measure matmuls in.
        quick: smaller problems and fewer calls.
        meter: energy meter for idle power; ``None`` selects a measuring one (NVML, RAPL), never an estimate.

    Returns:
        ``measured_peak_flops_per_s`` (dtype -> FLOP/s), ``measured_bandwidth_bytes_per_s`` (bytes/s),
        ``launch_overhead_s`` (s), ``idle_power_w`` (W, ``None`` without NVML or RAPL) and, on a CPU,
        ``measured_first_touch_bytes_per_s`` (bytes/s, :func:`first_touch_bytes_per_s`).

    """
    sizes = SIZES[(_kind(device), quick)]
    busy = busy_cpu_note() if _kind(device) == "cpu" else None
    if busy:  # one line on stderr (the CLI configures no logging: Python's last-resort handler prints it)
        log.warning(busy)
    if meter is None:
        meter = select_meter(device, estimates=False)
    # Idle first: after heavy kernels a GPU stays in a high-power state for seconds (H200: ~125 W vs ~80 W).
    idle_w = idle_power_w(device, meter, sizes.idle_s)
    return {
        "idle_power_w": idle_w,
        "launch_overhead_s": launch_overhead_s(device, sizes.min_window_s),
        "measured_bandwidth_bytes_per_s": copy_bandwidth_bytes_per_s(device, sizes.copy_bytes, sizes.min_window_s),
        "measured_peak_flops_per_s": {
            dtype: matmul_flops_per_s(device, dtype, sizes.matmul_n, sizes.min_window_s) for dtype in dtypes
        },
        **({"measured_first_touch_bytes_per_s": first_touch_bytes_per_s(min_window_s=sizes.min_window_s)}
           if _kind(device) == "cpu" else {}),
    }
