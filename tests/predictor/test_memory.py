from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flopcast.predictor.memory import MemoryModel


def _frame(est):
    return pd.DataFrame({"hardware": "gpu-a", "kind": "gpu", "est_peak_memory_bytes": est})


def test_recovers_a_constant_allocator_offset():
    est = np.geomspace(1e8, 1e10, 40)
    model = MemoryModel().fit(_frame(est), est + 3e7)
    assert model.predict("gpu-a", "gpu", 1e9) == pytest.approx(1e9 + 3e7, rel=1e-6)
    assert model.is_calibrated("gpu-a")


def test_a_few_large_outliers_do_not_pull_the_other_steps_up():
    est = np.geomspace(1e8, 1e10, 40)
    measured = est.copy()
    measured[:6] *= 2.5  # cuDNN workspaces of a few fp32 conv steps
    model = MemoryModel().fit(_frame(est), measured)
    predicted = np.array([model.predict("gpu-a", "gpu", e) for e in est[6:]])
    assert np.median(np.abs(predicted / measured[6:] - 1)) < 0.01


def test_unknown_hardware_uses_its_kind_then_the_identity():
    est = np.geomspace(1e8, 1e10, 10)
    model = MemoryModel().fit(_frame(est), est * 1.0 + 5e6)
    assert model.predict("gpu-b", "gpu", 1e9) == pytest.approx(1e9 + 5e6, rel=1e-6)
    assert model.predict("cpu-x", "cpu", 1e9) == pytest.approx(1e9)
