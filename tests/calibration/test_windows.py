from __future__ import annotations

import pytest
import torch

from flopcast.calibration import windows
from flopcast.calibration.energy import NullMeter
from flopcast.calibration.windows import (
    TIMER_RESOLUTION_S,
    Monitor,
    UntrustedMeasurementWarning,
    device_synchronizer,
    measure,
    timing_problems,
)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


class ConstantPowerMeter:
    """An ideal meter: ``power_w`` times the fake clock's time, refreshed continuously."""

    source = "rapl"
    available = True
    reason = ""

    def __init__(self, clock: FakeClock, power_w: float = 50.0, update_period_s: float = 0.001, throttle=None):
        self.clock, self.power_w, self.update_period_s = clock, power_w, update_period_s
        self.throttle = throttle or {}

    def read_j(self) -> float | None:
        return self.power_w * self.clock()

    def throttle_reasons(self) -> dict[str, bool]:
        return self.throttle


@pytest.fixture
def clock():
    return FakeClock()


def test_nested_and_overlapping_windows(clock):
    monitor = Monitor("cpu", ConstantPowerMeter(clock), clock)
    monitor.begin_window("epoch")
    clock.advance(0.5)
    monitor.begin_window("step")
    clock.advance(0.25)
    monitor.begin_window("other")
    assert monitor.elapsed_s("step") == pytest.approx(0.25)  # a peek leaves the window open
    step = monitor.end_window("step")
    clock.advance(0.25)
    other = monitor.end_window("other")
    epoch = monitor.end_window("epoch")
    assert (step.time_s, other.time_s, epoch.time_s) == pytest.approx((0.25, 0.25, 1.0))
    assert epoch.energy_j == pytest.approx(50.0) and epoch.avg_power_w == pytest.approx(50.0)
    assert step.trusted and epoch.trusted and epoch.reason == ""


def test_window_name_errors(clock):
    monitor = Monitor("cpu", NullMeter(""), clock)
    monitor.begin_window("a")
    with pytest.raises(ValueError, match="already open"):
        monitor.begin_window("a")
    with pytest.raises(KeyError, match="no open measurement window 'b'"):
        monitor.end_window("b")
    with pytest.raises(KeyError, match="no open measurement window 'b'"):
        monitor.elapsed_s("b")


def test_end_window_divides_by_repeats(clock):
    monitor = Monitor("cpu", ConstantPowerMeter(clock), clock)
    monitor.begin_window("w")
    clock.advance(2.0)
    m = monitor.end_window("w", n_repeats=4)
    assert (m.time_s, m.window_s, m.n_repeats, m.energy_j) == pytest.approx((0.5, 2.0, 4, 25.0))


def test_measure_deterministic_on_fake_clock(clock):
    m = measure(lambda: clock.advance(0.001), device="cpu", meter=NullMeter(""), clock=clock, n_windows=5)
    assert (m.time_s, m.time_s_min, m.time_s_max) == pytest.approx((0.001, 0.001, 0.001))
    assert m.n_windows == 5 and m.n_repeats * 0.001 >= 0.05 and m.window_s >= 0.05
    assert m.trusted and m.energy_j is None and m.energy_source == "none" and m.reason == ""


def test_measure_spread_median_min_max(clock):
    calls = {"n": 0}

    def fn():  # every 7th call is 3x slower, so windows differ
        calls["n"] += 1
        clock.advance(0.003 if calls["n"] % 7 == 0 else 0.001)

    m = measure(fn, device="cpu", meter=NullMeter(""), clock=clock, min_window_s=0.01, n_windows=4)
    assert m.time_s_min <= m.time_s <= m.time_s_max
    assert m.time_s_min < m.time_s_max and m.spread > 0


def test_measure_real_clock_orders_statistics():
    m = measure(lambda: sum(range(200)), device="cpu", meter=NullMeter(""), min_window_s=0.01)
    assert 0 < m.time_s_min <= m.time_s <= m.time_s_max < 1e-3
    assert m.trusted, m.reason


def test_measure_with_energy(clock):
    meter = ConstantPowerMeter(clock, power_w=80.0)
    m = measure(lambda: clock.advance(0.004), device="cpu", meter=meter, clock=clock, energy_window_s=0.5)
    assert m.trusted, m.reason
    assert m.energy_window_s >= 0.5 and m.energy_source == "rapl"
    assert m.energy_j == pytest.approx(80.0 * 0.004) and m.avg_power_w == pytest.approx(80.0)


class BoostingWorkload:
    """Takes ``slow_s`` per call until the energy window opens (the meter's first read), then ``fast_s``.

    The energy window's repetitions are planned from the timed windows, so a workload that speeds up
    inside it (GPU clocks boosting, caches warming) would end the window short of its target.
    """

    def __init__(self, clock: FakeClock, slow_s: float, fast_s: float):
        self.clock, self.slow_s, self.fast_s, self.fast = clock, slow_s, fast_s, False

    def __call__(self) -> None:
        self.clock.advance(self.fast_s if self.fast else self.slow_s)


class BoostOnReadMeter(ConstantPowerMeter):
    def __init__(self, clock: FakeClock, workload: BoostingWorkload):
        super().__init__(clock)
        self.workload = workload

    def read_j(self) -> float | None:
        self.workload.fast = True
        return super().read_j()


def test_energy_window_reaches_its_length_when_the_workload_speeds_up(clock):
    fn = BoostingWorkload(clock, slow_s=0.01, fast_s=0.004)
    m = measure(fn, device="cpu", meter=BoostOnReadMeter(clock, fn), clock=clock, energy_window_s=1.0)
    # planned from 0.01 s per call: 110 calls, 0.44 s at the boosted speed; the window must go on to 1 s
    assert m.energy_window_s >= 1.0, m.reason
    assert m.trusted and "requested" not in m.reason
    assert m.energy_j == pytest.approx(50.0 * 0.004)
    assert m.energy_window_s < 1.5  # extended at the observed rate, not by a blind x10


def test_energy_window_cut_by_the_repetition_cap_says_so(clock, monkeypatch):
    monkeypatch.setattr(windows, "MAX_REPEATS", 50)
    with pytest.warns(UntrustedMeasurementWarning, match="repetition cap"):
        m = measure(
            lambda: clock.advance(0.002),
            device="cpu",
            meter=ConstantPowerMeter(clock),
            clock=clock,
            energy_window_s=1.0,
        )
    assert not m.trusted
    assert m.energy_window_s == pytest.approx(50 * 0.002)
    assert "< requested 1 s" in m.reason and "repetition cap (50 repetitions)" in m.reason


def test_energy_window_shorter_than_update_period_is_untrusted(clock):
    meter = ConstantPowerMeter(clock, update_period_s=0.5)
    with pytest.warns(UntrustedMeasurementWarning, match="update period"):
        m = measure(lambda: clock.advance(0.001), device="cpu", meter=meter, clock=clock, energy_window_s=0.1)
    assert not m.trusted and m.energy_j is not None


def test_time_below_timer_resolution_is_untrusted(clock):
    with pytest.warns(UntrustedMeasurementWarning, match="not a positive finite"):
        m = measure(lambda: None, device="cpu", meter=NullMeter(""), clock=clock)
    assert not m.trusted


@pytest.mark.parametrize(
    ("window_s", "reps", "problem"),
    [(float("nan"), 1, "positive finite"), (-1.0, 1, "positive finite"), (0.0, 1, "positive finite"),
     (TIMER_RESOLUTION_S * 0.5, 1, "timer resolution"), (1.0, 10, None)],
)  # fmt: skip
def test_timing_problems(window_s, reps, problem):
    problems = timing_problems(window_s, reps)
    assert (problem in problems[0]) if problem else problems == []


def test_throttle_flag_from_meter(clock):
    meter = ConstantPowerMeter(clock, throttle={"hw_slowdown": True})
    monitor = Monitor("cpu", meter, clock)
    monitor.begin_window("w")
    clock.advance(1.0)
    m = monitor.end_window("w")
    assert not m.trusted and "throttled: hw_slowdown" in m.reason


def test_device_synchronizer_errors():
    device_synchronizer("cpu")()
    with pytest.raises(ValueError, match="unknown device"):
        device_synchronizer("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            device_synchronizer("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_window_includes_async_work():
    x = torch.randn(4096, 4096, device="cuda")
    m = measure(lambda: x @ x, device="cuda", min_window_s=0.05, energy_window_s=1.0)
    assert m.time_s > 1e-5
    assert m.energy_source == "nvml" and m.energy_j > 0 and m.trusted, m.reason
    assert 20 < m.avg_power_w < 1500
