from __future__ import annotations

from dataclasses import replace

import numpy as np

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.power import idle_power_w, power_bounded_j, tdp_w
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
