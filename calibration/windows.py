"""Measurement windows (after Zeus's ``begin_window`` / ``end_window``) and :func:`measure` for one workload.

Both ends of a window synchronise the device first, so asynchronous GPU work lands inside the window.
A window that is too short for the timer or the energy counter is returned *untrusted*, with the reason.
"""

from __future__ import annotations

import math
import re
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from flopcast.calibration.energy import EnergyMeter, NullMeter, select_meter
from flopcast.calibration.measurement import Measurement

TIMER_RESOLUTION_S = time.get_clock_info("perf_counter").resolution
"""Resolution of ``time.perf_counter``, s."""

MAX_REPEATS = 10_000_000
"""Upper bound on repetitions per window (a no-op workload must not loop forever)."""


class UntrustedMeasurementWarning(UserWarning):
    """A measurement was kept but marked ``trusted=False``."""


def device_synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for all queued work on ``device`` (a no-op for ``cpu``).

    Raises:
        ValueError: for a CUDA device when CUDA is not available, or an unknown device string.

    """
    if device == "cpu":
        return lambda: None
    if re.fullmatch(r"cuda(:\d+)?", device):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        return lambda: torch.cuda.synchronize(device)
    raise ValueError(f"unknown device {device!r}: use cpu, cuda or cuda:N")


@dataclass(frozen=True)
class _Open:
    t0_s: float
    energy0_j: float | None


class Monitor:
    """Named measurement windows over one device; several may be open at once (nested or overlapping).

    Args:
        device: ``cpu``, ``cuda`` or ``cuda:N``; synchronised at both ends of every window.
        meter: energy meter; ``None`` selects one with :func:`~flopcast.calibration.energy.select_meter`.
        clock: time source, s (tests pass a fake one).

    """

    def __init__(
        self,
        device: str = "cpu",
        meter: EnergyMeter | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.device = device
        self.meter = meter if meter is not None else select_meter(device)
        self.clock = clock
        self.synchronize = device_synchronizer(device)
        self._open: dict[str, _Open] = {}

    def begin_window(self, name: str) -> None:
        """Open window ``name`` after synchronising the device.

        Raises:
            ValueError: if a window of that name is already open.

        """
        if name in self._open:
            raise ValueError(f"measurement window {name!r} is already open")
        self.synchronize()
        # Energy first, time second: the timed span then lies inside the energy span.
        energy0 = self.meter.read_j()
        self._open[name] = _Open(self.clock(), energy0)

    def elapsed_s(self, name: str) -> float:
        """Seconds since window ``name`` opened, after synchronising the device (the window stays open).

        Raises:
            KeyError: if no window of that name is open.

        """
        try:
            opened = self._open[name]
        except KeyError:
            raise KeyError(f"no open measurement window {name!r}") from None
        self.synchronize()
        return self.clock() - opened.t0_s

    def end_window(self, name: str, n_repeats: int = 1, min_energy_window_s: float = 0.0) -> Measurement:
        """Close window ``name`` after synchronising the device.

        Args:
            name: an open window.
            n_repeats: repetitions of the workload inside the window; time and energy are divided by it.
            min_energy_window_s: energy windows shorter than this, s, are not trusted (besides the
                meter's update period, always checked).

        Returns:
            One-window :class:`Measurement`: per-repetition time and energy, the whole window in
            ``window_s``/``energy_window_s``. ``reason`` lists every caveat; ``trusted`` is false when one
            of them disqualifies the values (caveats starting ``note:`` do not).

        Raises:
            KeyError: if no window of that name is open.

        """
        try:
            opened = self._open.pop(name)
        except KeyError:
            raise KeyError(f"no open measurement window {name!r}") from None
        self.synchronize()
        t1 = self.clock()
        energy1 = self.meter.read_j()
        window_s = t1 - opened.t0_s
        reasons = timing_problems(window_s, n_repeats)
        energy_j, avg_power_w, energy_window_s = None, None, 0.0
        if opened.energy0_j is not None and energy1 is not None:
            total_j = energy1 - opened.energy0_j
            energy_window_s = window_s
            energy_j = total_j / n_repeats
            avg_power_w = total_j / window_s if window_s > 0 else None
            reasons += energy_problems(window_s, total_j, self.meter, min_energy_window_s)
        elif self.meter.reason:
            reasons.append(f"note: energy missing ({self.meter.reason})")
        reasons += throttle_problems(self.meter)
        per_rep = window_s / n_repeats
        return Measurement(
            time_s=per_rep,
            time_s_min=per_rep,
            time_s_max=per_rep,
            n_repeats=n_repeats,
            n_windows=1,
            window_s=window_s,
            energy_j=energy_j,
            energy_source=self.meter.source if energy_j is not None else "none",
            energy_window_s=energy_window_s,
            avg_power_w=avg_power_w,
            trusted=is_trusted(reasons),
            reason="; ".join(dict.fromkeys(reasons)),
        )


def is_trusted(reasons: list[str]) -> bool:
    """Whether no caveat disqualifies a measurement (``note:`` caveats are informational)."""
    return all(r.startswith("note:") for r in reasons)


def timing_problems(window_s: float, n_repeats: int) -> list[str]:
    """Reasons a timed window is unfit: non-finite or non-positive, or per-repetition time below the timer."""
    if not math.isfinite(window_s) or window_s <= 0:
        return [f"window time {window_s!r} s is not a positive finite number"]
    per_rep = window_s / n_repeats
    if per_rep < TIMER_RESOLUTION_S:
        return [f"time per repetition {per_rep:.3g} s < timer resolution {TIMER_RESOLUTION_S:.3g} s"]
    return []


def energy_problems(window_s: float, energy_j: float, meter: EnergyMeter, min_window_s: float = 0.0) -> list[str]:
    """Reasons an energy window is unfit: shorter than the counter's update period or ``min_window_s``.

    Args:
        window_s: energy window duration, s.
        energy_j: energy over the whole window, J.
        meter: the meter that produced it.
        min_window_s: window the caller asked for, s.

    """
    problems = []
    if window_s < meter.update_period_s:
        problems.append(f"energy window {window_s:.3g} s < counter update period {meter.update_period_s:.3g} s")
    if window_s < min_window_s:
        problems.append(f"energy window {window_s:.3g} s < requested {min_window_s:.3g} s")
    if energy_j <= 0 and window_s > 0:
        problems.append(f"{meter.source} counter did not advance over {window_s:.3g} s")
    return problems


def throttle_problems(meter: EnergyMeter) -> list[str]:
    """Clock-throttle reasons the meter reports; benign ones (power cap) are prefixed ``note:``."""
    return [
        f"throttled: {name}" if spoils else f"note: clocks {name}" for name, spoils in meter.throttle_reasons().items()
    ]


def _timed(fn: Callable[[], object], reps: int, sync: Callable[[], None], clock: Callable[[], float]) -> float:
    """Seconds for ``reps`` calls of ``fn``, the device synchronised before and after."""
    sync()
    t0 = clock()
    for _ in range(reps):
        fn()
    sync()
    return clock() - t0


def _repeats_for(
    fn: Callable[[], object], target_s: float, sync: Callable[[], None], clock: Callable[[], float]
) -> int:
    """Repetitions after which one window lasts at least ``target_s`` (grows x10 at most per probe)."""
    reps = 1
    while reps < MAX_REPEATS:
        elapsed = _timed(fn, reps, sync, clock)
        if elapsed >= target_s or (elapsed <= 0 and reps >= 1000):  # a clock that never moves is broken
            return reps
        wanted = math.ceil(reps * target_s * 1.2 / elapsed) if elapsed > 0 else reps * 10
        reps = min(max(reps + 1, wanted), reps * 10, MAX_REPEATS)
    return reps


def _repeat_until(fn: Callable[[], object], reps: int, min_s: float, elapsed_s: Callable[[], float]) -> int:
    """Call ``fn`` ``reps`` times, then more until ``elapsed_s()`` reaches ``min_s``; returns the calls made.

    The first count comes from earlier timings; a workload that runs faster inside the window (clocks
    boosting, caches warm) would end it short, so the window is checked after the planned calls and
    extended, at the observed rate plus 10 % (x10 at most per extension), until it is long enough.
    Stops at :data:`MAX_REPEATS` calls, or after 1000 calls of a clock that never moves.
    """
    done, batch = 0, max(1, min(reps, MAX_REPEATS))
    while True:
        for _ in range(batch):
            fn()
        done += batch
        if done >= MAX_REPEATS:
            return done
        elapsed = elapsed_s()
        if elapsed >= min_s or (elapsed <= 0 and done >= 1000):
            return done
        wanted = math.ceil(done * (min_s * 1.1 / elapsed - 1)) if elapsed > 0 else 9 * done
        batch = min(max(1, wanted), 9 * done, MAX_REPEATS - done)


def measure(
    fn: Callable[[], object],
    *,
    device: str = "cpu",
    min_window_s: float = 0.05,
    n_windows: int = 3,
    warmup: int = 3,
    energy_window_s: float = 1.0,
    meter: EnergyMeter | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Time ``fn`` robustly and, where a meter exists, measure its energy.

    Warm up, pick repetitions so one window lasts >= ``min_window_s``, time ``n_windows`` windows (median,
    min, max per repetition), then one energy window of >= ``energy_window_s`` when an energy meter exists:
    its repetitions are planned from the timed windows and extended until the window has really lasted
    that long, up to :data:`MAX_REPEATS` (a window cut short by the cap is untrusted, and says so).

    Args:
        fn: the workload; called with no arguments, may queue asynchronous device work.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        min_window_s: shortest timed window, s.
        n_windows: timed windows (>= 1; 3 or more for a meaningful spread).
        warmup: untimed calls first.
        energy_window_s: shortest energy window, s; 0 skips energy.
        meter: energy meter; ``None`` selects the best one for ``device``.
        clock: time source, s.

    Returns:
        The measurement; untrusted ones also raise an :class:`UntrustedMeasurementWarning`.

    """
    if n_windows < 1:
        raise ValueError(f"n_windows must be >= 1, not {n_windows}")
    if energy_window_s <= 0:
        meter = NullMeter("")  # energy not requested: nothing to note
    monitor = Monitor(device, meter, clock)
    sync = monitor.synchronize
    for _ in range(warmup):
        fn()
    reps = _repeats_for(fn, min_window_s, sync, clock)
    windows = [_timed(fn, reps, sync, clock) for _ in range(n_windows)]
    per_rep = [w / reps for w in windows]
    reasons = [r for w in windows for r in timing_problems(w, reps)]
    energy = None
    if monitor.meter.available:
        # Planned from the timed windows, 10 % over the target so jitter does not leave it just short;
        # then extended until the window has really lasted energy_window_s (or the repetition cap).
        e_reps = math.ceil(energy_window_s * 1.1 / max(statistics.median(per_rep), TIMER_RESOLUTION_S))
        monitor.begin_window("energy")
        e_reps = _repeat_until(fn, max(reps, e_reps), energy_window_s, lambda: monitor.elapsed_s("energy"))
        energy = monitor.end_window("energy", e_reps, min_energy_window_s=energy_window_s)
        reasons += energy.reason.split("; ") if energy.reason else []
        if e_reps >= MAX_REPEATS and energy.window_s < energy_window_s:
            reasons.append(f"energy window stopped at the repetition cap ({MAX_REPEATS} repetitions)")
    elif monitor.meter.reason:
        reasons.append(f"note: energy missing ({monitor.meter.reason})")
    trusted = is_trusted(reasons)
    result = Measurement(
        time_s=statistics.median(per_rep),
        time_s_min=min(per_rep),
        time_s_max=max(per_rep),
        n_repeats=reps,
        n_windows=n_windows,
        window_s=statistics.median(windows),
        energy_j=energy.energy_j if energy else None,
        energy_source=energy.energy_source if energy else "none",
        energy_window_s=energy.energy_window_s if energy else 0.0,
        avg_power_w=energy.avg_power_w if energy else None,
        trusted=trusted,
        reason="; ".join(dict.fromkeys(reasons)),
    )
    if not trusted:
        warnings.warn(f"untrusted measurement: {result.reason}", UntrustedMeasurementWarning, stacklevel=2)
    return result
