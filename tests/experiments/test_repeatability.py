"""experiments/repeatability.py: a repeat measurement scored as a prediction of the first one."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from tests.experiments.conftest import EXPERIMENTS, load_script

ROOT = EXPERIMENTS.parent


@pytest.fixture(scope="module")
def repeatability():
    return load_script("repeatability")


def _steps(times: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"model": [f"m{i}" for i in range(len(times))], "batch_size": 1, "mode": "train",
                         "precision": "fp32", "optimizer": "adamw", "family": "f", "time_s": times,
                         "measured_at": "2026-12-02T00:00:00+00:00"})


def test_a_uniformly_slower_repeat_differs_only_by_its_level(repeatability):
    first = _steps([0.01, 0.02, 0.04, 0.08])
    again = _steps([0.012, 0.024, 0.048, 0.096])
    measured, detrended = repeatability.repeat_rows(repeatability.paired(first, again), "repeat1")
    assert measured["level_ratio"] == pytest.approx(1.2)
    assert measured["median_ape_pct"] == pytest.approx(20.0)
    assert detrended["median_ape_pct"] == pytest.approx(0.0, abs=1e-9)
    assert detrended["within_10_pct"] == 100.0


def test_scatter_is_kept_once_the_level_is_divided_out(repeatability):
    first = _steps([0.01] * 5)
    again = _steps([0.008, 0.009, 0.010, 0.011, 0.0125])
    _, detrended = repeatability.repeat_rows(repeatability.paired(first, again), "repeat1")
    assert detrended["level_ratio"] == pytest.approx(1.0)
    assert detrended["median_ape_pct"] == pytest.approx(10.0)


def test_only_steps_measured_in_both_are_paired(repeatability):
    first, again = _steps([0.01, 0.02, 0.03]), _steps([0.01, 0.02])
    again.loc[1, "precision"] = "bf16"  # another configuration: not the same step
    pairs = repeatability.paired(first, again)
    assert list(pairs["model"]) == ["m0"]


def test_model_rows_score_one_prediction_against_every_measurement(repeatability):
    every = _steps([0.01, 0.02]).assign(time_repeat1_s=[0.02, 0.04])
    predictions = every[["model", "batch_size", "mode", "precision"]].assign(time_p50=[0.01, 0.02])
    rows = repeatability.model_rows(every, predictions, ["repeat1"])
    assert [r["against"] for r in rows] == ["first", "repeat1"]
    assert [r["median_ape_pct"] for r in rows] == pytest.approx([0.0, 50.0])
    assert np.isclose(rows[1]["level_ratio"], 0.5)


def test_a_step_predicted_once_per_seed_is_scored_once_at_its_median_prediction(repeatability):
    every = _steps([0.01, 0.02])
    predictions = pd.concat([every[["model", "batch_size", "mode", "precision"]].assign(time_p50=t, seed=k)
                             for k, t in enumerate(([0.009, 0.02], [0.01, 0.03], [0.012, 0.02]))])
    rows = repeatability.model_rows(every, predictions, [])
    assert rows[0]["n"] == 2  # two steps, not six predictions
    assert rows[0]["median_ape_pct"] == pytest.approx(0.0)  # the medians 0.01 and 0.02 are exact


def test_released_repeat_runs_and_another_device_is_one_error_line(repeatability, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(repeatability, "RESULTS", tmp_path)
    first = str(ROOT / "datasets" / "dev-cpu-amd-epyc-zen4-2c")
    monkeypatch.setattr(sys, "argv", ["repeatability.py", "--first", first,
                                      "--again", str(ROOT / "experiments" / "data" / "repeat-zen4-cpu-1"),
                                      "--again", str(ROOT / "experiments" / "data" / "repeat-zen4-cpu-2")])
    assert repeatability.main() == 0
    table = (tmp_path / "repeatability.md").read_text().splitlines()
    compared = [line.split(" | ")[:2] for line in table if line.startswith("| repeat")]
    assert compared == [["| repeat1 as measured", "first"], ["| repeat1 / its level ratio", "first"],
                        ["| repeat2 as measured", "first"], ["| repeat2 / its level ratio", "first"],
                        ["| repeat2 as measured", "repeat1"], ["| repeat2 / its level ratio", "repeat1"]]
    monkeypatch.setattr(sys, "argv", ["repeatability.py", "--first", first, "--again", str(ROOT / "datasets" / "h200")])
    assert repeatability.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "measured h200, not local-cpu-amd-epyc-zen4" in err[0]


def test_three_measurements_add_a_row_against_their_level_aligned_median(repeatability):
    every = _steps([0.010, 0.020, 0.040]).assign(time_repeat1_s=[0.024, 0.040, 0.080],  # x2, one step x2.4
                                                 time_repeat2_s=[0.010, 0.030, 0.040])  # one step x1.5
    predictions = every[["model", "batch_size", "mode", "precision"]].assign(time_p50=[0.010, 0.020, 0.040])
    rows = repeatability.model_rows(every, predictions, ["repeat1", "repeat2"])
    assert rows[-1]["against"] == "median of 3"
    # aligned: repeat1 / 2 = [0.012, 0.02, 0.04], repeat2 / 1 = [0.01, 0.03, 0.04]; medians = the first's times
    assert rows[-1]["median_ape_pct"] == pytest.approx(0.0)


def test_noise_sigma_reads_the_spread_of_each_pair_around_its_level(repeatability):
    a = 0.1
    first = _steps([0.01, 0.02, 0.03, 0.04])
    every = first.assign(time_repeat1_s=first["time_s"] * 1.3 * np.exp([a, -a, a, -a]))  # level 1.3 taken off
    sigma = repeatability.noise_sigma(every, ["repeat1"])
    assert sigma == pytest.approx(a / (0.6745 * np.sqrt(2)))


def test_a_perfect_predictor_is_held_back_only_by_the_measurement_noise(repeatability):
    quiet, noisy = repeatability.perfect_predictor_row(0.001, 10), repeatability.perfect_predictor_row(0.5, 10)
    assert quiet["median_ape_pct"] < 0.1 and quiet["within_25_pct"] == pytest.approx(100.0)
    assert noisy["median_ape_pct"] == pytest.approx((np.exp(0.6745 * 0.5) - 1) * 100)
    assert noisy["within_10_pct"] < noisy["within_25_pct"] < 50
