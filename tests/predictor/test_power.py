from __future__ import annotations

from dataclasses import replace

import numpy as np

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.power import energy_with_time_spread, idle_power_w, power_bounded_j, tdp_w
from flopcast.predictor.predict import predict_on
from tests.datasets.synthetic import DEVICES
from tests.predictor.conftest import synthetic_analyse

GPU = replace(HardwareDescriptor.from_dict(DEVICES["test-gpu"]), tdp_w=400.0, idle_power_w=50.0)


def test_step_energy_stays_between_idle_power_and_the_power_limit():
    time_s = np.array([0.01, 0.02, 0.04])
    # 900 W over 10 ms is above the 400 W limit, 1 W over 20 ms below the 50 W idle floor, 200 W is kept
    energy = power_bounded_j(np.array([9.0, 0.02, 8e-3 * 1000]), time_s, GPU)
    assert np.allclose(energy, [4.0, 1.0, 8.0])
    assert np.all(energy / time_s >= idle_power_w(GPU)) and np.all(energy / time_s <= tdp_w(GPU))


def test_predicted_step_energy_implies_a_power_the_device_can_draw(model):
    step = synthetic_analyse("b2", 4, "train", "fp32", "adamw", "cuda")
    for d in (GPU, replace(GPU, tdp_w=60.0), replace(GPU, idle_power_w=390.0)):
        p = predict_on(model, step, d, "fp32", "train")
        power = np.array(p.step_energy_j) / np.array(p.step_time_s)
        assert np.all(power >= idle_power_w(d) - 1e-9) and np.all(power <= tdp_w(d) + 1e-9)


def test_the_energy_interval_carries_the_time_interval_in_quadrature():
    energy = np.array([[8.0, 10.0, 12.5], [10.0, 10.0, 10.0], [5.0, 10.0, 20.0]])
    time_s = np.array([[1.0, 1.0, 1.0], [0.8, 1.0, 1.25], [0.5, 1.0, 2.0]])
    out = energy_with_time_spread(energy, time_s)
    assert np.allclose(out[0], energy[0])  # a known time: the power interval alone
    assert np.allclose(out[1], [8.0, 10.0, 12.5])  # a known power: the time interval alone
    assert np.allclose(out[2], [10 * 2 ** -np.sqrt(2), 10.0, 10 * 2 ** np.sqrt(2)])  # both: sqrt(2) x the log width
    assert np.allclose(out[:, 1], energy[:, 1])  # the median stays


def test_predicted_energy_interval_is_at_least_as_wide_as_the_time_interval(model):
    p = predict_on(model, synthetic_analyse("b2", 4, "train", "fp32", "adamw", "cuda"), GPU, "fp32", "train")
    (e_lo, e_mid, e_hi), (t_lo, t_mid, t_hi) = p.step_energy_j, p.step_time_s
    assert e_mid / e_lo >= t_mid / t_lo * (1 - 1e-9) or e_lo / t_lo <= idle_power_w(GPU) * (1 + 1e-9)
    assert e_hi / e_mid >= t_hi / t_mid * (1 - 1e-9) or e_hi / t_hi >= tdp_w(GPU) * (1 - 1e-9)
