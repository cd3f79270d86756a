"""experiments/neusight_benchmark.py: each row scored by the median of the op-model seeds' predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.experiments.conftest import load_script


@pytest.fixture(scope="module")
def benchmark():
    return load_script("neusight_benchmark")


def _run(flopcast: list[float], calibrated: list[bool]) -> pd.DataFrame:
    f = np.array(flopcast)
    return pd.DataFrame({"measured": [1.0, 2.0], "flopcast": f, "p10": f / 2, "p90": f * 2, "ops_s": f * 0.9,
                         "calibrated": calibrated})


def test_each_row_takes_the_median_prediction_of_the_seeds(benchmark):
    runs = [_run([1.0, 2.6], [True, True]), _run([1.3, 2.0], [True, False]), _run([1.1, 2.2], [True, True])]
    out = benchmark.median_over_seeds(runs)
    assert out["flopcast"].tolist() == pytest.approx([1.1, 2.2])
    assert out["p90"].tolist() == pytest.approx([2.2, 4.4])
    assert out["ops_s"].tolist() == pytest.approx([0.99, 1.98])
    assert out["measured"].tolist() == [1.0, 2.0]  # labels untouched
    assert out["calibrated"].tolist() == [True, False]  # calibrated only if every seed's prediction was
    assert runs[0]["flopcast"].tolist() == [1.0, 2.6]  # inputs not modified
