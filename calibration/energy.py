"""Energy meters: one small interface over NVML, RAPL, CodeCarbon's TDP estimate and nothing.

A meter is a cumulative counter in joules. A meter that cannot read returns ``None`` from
:meth:`EnergyMeter.read_j` and says why in ``reason``; constructing a meter never raises, so missing
hardware becomes missing energy rather than a crash.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from flopcast.calibration.nvml_device import NvmlDeviceError, nvml_handle

log = logging.getLogger(__name__)

NVML_COUNTER_RANGE_MJ = 2**64
"""``nvmlDeviceGetTotalEnergyConsumption`` is an unsigned 64-bit count of mJ."""

NVML_UPDATE_PERIOD_S = 0.1
"""Typical refresh period of NVML's energy counter, s.

Recorded on an H200 (``traces/nvml_h200_recorded.json``): updates every 69-222 ms, median 100 ms, so each
end of a window may be up to ~0.1-0.2 s stale: a 1 s energy window carries about +-10-20 % error.
"""

RAPL_UPDATE_PERIOD_S = 0.001
"""RAPL counters refresh about every millisecond."""

POWERCAP_ROOT = Path("/sys/class/powercap")

# NVML clock-event bits that mean the clocks were pulled down, and whether they spoil a measurement.
# A power cap under a heavy kernel is the device's normal steady state, so it is noted, not distrusted.
THROTTLE_REASONS: dict[str, tuple[int, bool]] = {
    "sw_power_cap": (0x4, False),
    "hw_slowdown": (0x8, True),
    "sw_thermal_slowdown": (0x20, True),
    "hw_thermal_slowdown": (0x40, True),
    "hw_power_brake_slowdown": (0x80, True),
}


@runtime_checkable
class EnergyMeter(Protocol):
    """A cumulative energy counter.

    Attributes:
        source: ``nvml``, ``rapl``, ``codecarbon-tdp`` or ``none`` (goes into ``Measurement.energy_source``).
        update_period_s: how often the underlying counter refreshes, s; shorter windows are not trusted.
        available: whether the meter could start.
        reason: why readings are missing or estimated ("" when measured without caveat).

    """

    source: str
    update_period_s: float
    available: bool
    reason: str

    def read_j(self) -> float | None:
        """Energy since the meter started, J, or ``None`` (``reason`` says why)."""
        ...

    def throttle_reasons(self) -> dict[str, bool]:
        """Active clock-throttle reasons -> whether they make a measurement untrustworthy."""
        ...


class WrappingCounter:
    """Accumulates a hardware counter that wraps at a fixed range (raw units, e.g. mJ or µJ).

    Args:
        range_: counter modulus; a decrease ``new < last`` counts as one wrap: ``new + range_ - last``.

    """

    def __init__(self, range_: int):
        self.range_ = range_
        self.wraps = 0
        self._last: int | None = None
        self._total = 0

    def update(self, raw: int) -> int:
        """Feed a raw reading; returns the total raw increase since the first reading."""
        if self._last is not None:
            delta = raw - self._last
            if delta < 0:
                delta += self.range_
                self.wraps += 1
            self._total += delta
        self._last = raw
        return self._total


class NullMeter:
    """No energy source: every reading is ``None``.

    Args:
        reason: why no real meter is available (kept in ``Measurement.reason``).

    """

    source = "none"
    update_period_s = 0.0
    available = False

    def __init__(self, reason: str = "no energy meter selected"):
        self.reason = reason

    def read_j(self) -> float | None:
        """Always ``None``."""
        return None

    def throttle_reasons(self) -> dict[str, bool]:
        """Never known."""
        return {}


class NvmlEnergyMeter:
    """NVIDIA GPU energy from ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load, Volta+).

    Args:
        index: CUDA device index (``cuda:N``); the NVML device is found by its PCI bus id
            (:func:`~flopcast.calibration.nvml_device.nvml_handle`), so ``CUDA_VISIBLE_DEVICES`` is honoured.
        update_period_s: counter refresh period assumed for trust checks, s.

    """

    source = "nvml"

    def __init__(self, index: int = 0, update_period_s: float = NVML_UPDATE_PERIOD_S):
        self.index = index
        self.nvml_index: int | None = None
        self.update_period_s = update_period_s
        self.available = False
        self.reason = ""
        self._counter = WrappingCounter(NVML_COUNTER_RANGE_MJ)
        self._nvml: Any = None
        self._handle: Any = None
        try:
            import pynvml
        except ImportError as e:
            self.reason = f"nvml: pynvml not installed ({e})"
            return
        try:
            pynvml.nvmlInit()
            self._handle, self.nvml_index = nvml_handle(pynvml, index)
        except (pynvml.NVMLError, NvmlDeviceError) as e:
            self.reason = f"nvml: cannot open GPU {index} ({e})"
            return
        self._nvml = pynvml
        self.available = self.read_j() is not None

    def read_j(self) -> float | None:
        """Energy since the meter started, J; ``None`` with ``reason`` set if NVML refuses the read."""
        if self._nvml is None:
            return None
        try:
            raw_mj = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except self._nvml.NVMLError as e:
            self.reason = f"nvml: total energy counter unavailable on GPU {self.index} ({e})"
            return None
        return self._counter.update(raw_mj) / 1000.0

    def throttle_reasons(self) -> dict[str, bool]:
        """Active NVML clock-throttle reasons (``{}`` when NVML cannot say)."""
        if self._nvml is None:
            return {}
        try:
            mask = int(self._nvml.nvmlDeviceGetCurrentClocksThrottleReasons(self._handle))
        except self._nvml.NVMLError as e:
            log.info("nvml: cannot read throttle reasons on GPU %d (%s)", self.index, e)
            return {}
        return {name: spoils for name, (bit, spoils) in THROTTLE_REASONS.items() if mask & bit}


class RaplEnergyMeter:
    """CPU package energy from Linux powercap RAPL (``intel-rapl:N/energy_uj``, µJ; AMD uses it too).

    Sums the top-level package domains; each wraps at its ``max_energy_range_uj``.

    Args:
        root: powercap sysfs root (a fake tree in tests).
        include_dram: also add the ``dram`` sub-domains where the CPU exposes them.

    """

    source = "rapl"
    update_period_s = RAPL_UPDATE_PERIOD_S

    def __init__(self, root: Path = POWERCAP_ROOT, include_dram: bool = False):
        self.root = Path(root)
        self.available = False
        self.reason = ""
        self._domains: list[tuple[Path, WrappingCounter]] = []
        domains = sorted(p for p in self.root.glob("intel-rapl:*") if re.fullmatch(r"intel-rapl:\d+", p.name))
        if include_dram:
            domains += [
                p
                for p in sorted(self.root.glob("intel-rapl:*:*"))
                if (p / "name").is_file() and (p / "name").read_text().strip() == "dram"
            ]
        if not domains:
            self.reason = f"rapl: no intel-rapl package domain under {self.root}"
            return
        try:
            for d in domains:
                range_uj = int((d / "max_energy_range_uj").read_text())
                self._domains.append((d / "energy_uj", WrappingCounter(range_uj)))
        except OSError as e:  # PermissionError: energy_uj is root-only since the 2020 PLATYPUS fix
            self.reason = f"rapl: cannot read {self.root} ({e})"
            return
        self.available = self.read_j() is not None

    def read_j(self) -> float | None:
        """Energy since the meter started, J; ``None`` with ``reason`` set if a counter cannot be read."""
        if not self._domains:
            return None
        total_uj = 0
        for path, counter in self._domains:
            try:
                raw = int(path.read_text())
            except (OSError, ValueError) as e:
                self.reason = f"rapl: cannot read {path} ({e})"
                return None
            total_uj += counter.update(raw)
        return total_uj / 1e6

    def throttle_reasons(self) -> dict[str, bool]:
        """Not available from RAPL."""
        return {}


class CodecarbonTdpMeter:
    """CPU energy *estimated* the way CodeCarbon does without RAPL: power from its TDP table, integrated.

    Uses ``codecarbon.core.cpu.TDP`` (CPU model -> TDP lookup, 4 W per thread or 85 W when unknown) and
    ``codecarbon.external.hardware.CPU``: in ``cpu_load`` mode power = TDP x (0.1 + 0.9 x load³) over the
    interval since the previous reading; in ``constant`` mode power = TDP x 0.5. Each :meth:`read_j`
    adds power x elapsed time, so the counter is cumulative like the measured ones.

    Args:
        mode: ``cpu_load`` or ``constant`` (CodeCarbon's mode names).
        tdp_w: skip the lookup and use this TDP, W.
        model: CPU model name passed to CodeCarbon (detected when ``None``).
        clock: time source, s.

    """

    source = "codecarbon-tdp"
    update_period_s = 0.01  # psutil CPU times tick at 100 Hz

    def __init__(
        self,
        mode: str = "cpu_load",
        tdp_w: float | None = None,
        model: str | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.available = False
        self.reason = ""
        self._clock = clock
        self._cpu: Any = None
        self._energy_j = 0.0
        self._last_t = 0.0
        try:
            from codecarbon.core.cpu import TDP
            from codecarbon.external.hardware import CPU, POWER_CONSTANT
        except ImportError as e:
            self.reason = f"codecarbon-tdp: codecarbon not installed ({e})"
            return
        if tdp_w is None:
            lookup = TDP()  # CodeCarbon looks the detected CPU model up in its table here (~1 s)
            model, tdp_w = model or lookup.model, lookup.tdp
        if tdp_w is None:
            tdp_w = POWER_CONSTANT
        self.tdp_w = float(tdp_w)
        self._cpu = CPU(output_dir=".", mode=mode, model=model or "unknown", tdp=self.tdp_w)
        self._cpu.start()
        self._last_t = clock()
        self.available = True
        self.reason = f"codecarbon-tdp: estimated from TDP {self.tdp_w:.0f} W ({mode}), not measured"

    def read_j(self) -> float | None:
        """Estimated energy since the meter started, J."""
        if self._cpu is None:
            return None
        now = self._clock()
        self._energy_j += self._cpu.total_power().W * (now - self._last_t)
        self._last_t = now
        return self._energy_j

    def throttle_reasons(self) -> dict[str, bool]:
        """Not available."""
        return {}


def _cuda_index(device: str) -> int | None:
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    return None if m is None else int(m.group(1) or 0)


def select_meter(device: str, *, estimates: bool = True, powercap_root: Path = POWERCAP_ROOT) -> EnergyMeter:
    """Pick the best available meter for a device; never raises.

    Order: NVML for ``cuda[:N]``; RAPL then (if ``estimates``) CodeCarbon's TDP estimate for ``cpu``.
    Unavailable candidates are logged and their reasons kept in the chosen meter's ``reason`` (or the
    :class:`NullMeter`'s when none works).

    Args:
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        estimates: allow the CodeCarbon TDP estimate (not a measurement) as a fallback for ``cpu``.
        powercap_root: RAPL sysfs root.

    Returns:
        The chosen meter.

    """
    index = _cuda_index(device)
    candidates: list[Callable[[], EnergyMeter]]
    if index is not None:
        candidates = [lambda: NvmlEnergyMeter(index)]
    elif device == "cpu":
        candidates = [lambda: RaplEnergyMeter(powercap_root)]
        if estimates:
            candidates.append(CodecarbonTdpMeter)
    else:
        return NullMeter(f"no energy meter for device {device!r}")
    skipped: list[str] = []
    for make in candidates:
        meter = make()
        if meter.available:
            if skipped:
                meter.reason = "; ".join([meter.reason, *skipped]).strip("; ")
            return meter
        log.info("energy meter unavailable: %s", meter.reason)
        skipped.append(meter.reason)
    return NullMeter("; ".join(skipped))
