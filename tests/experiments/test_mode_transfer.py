"""experiments/mode_transfer.py: a device's steps of one mode predicted by stages that never saw them."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.experiments.conftest import load_script
from tests.predictor.conftest import synthetic_analyse


@pytest.fixture(scope="module")
def mode_transfer():
    return load_script("mode_transfer")


def test_only_devices_with_enough_steps_of_both_modes_are_scored(mode_transfer):
    steps = pd.DataFrame({"hardware": ["a"] * 8 + ["b"] * 8 + ["c"] * 3,
                          "mode": ["train"] * 4 + ["infer"] * 4 + ["train"] * 8 + ["infer"] * 3})
    assert mode_transfer.both_mode_devices(steps) == ["a"]


def test_the_baseline_reads_each_row_as_the_other_mode(mode_transfer):
    frame = pd.DataFrame({"mode": ["train", "infer"], "ops_s": [1.0, 2.0]})
    swapped = mode_transfer.as_other_mode(frame)
    assert swapped["mode"].tolist() == ["infer", "train"] and frame["mode"].tolist() == ["train", "infer"]


def test_the_table_scores_each_reading_per_device_and_held_mode(mode_transfer):
    p = pd.DataFrame({"hardware": "a", "held_mode": ["infer"] * 2, "model": ["m1", "m2"], "measured": [1.0, 2.0],
                      "lent offset": [1.1, 2.0], "measured mode's level": [1.5, 3.0], "op sum": [0.5, 1.0]})
    row = mode_transfer.error_table(p).iloc[0]
    assert row["n"] == 2 and row["lent offset median %"] == pytest.approx(5.0)
    assert row["measured mode's level pred/meas"] == pytest.approx(1.5) and row["op sum median %"] == pytest.approx(50)


def test_the_script_runs_end_to_end_on_synthetic_data(mode_transfer, data_root, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(mode_transfer, "RESULTS", tmp_path)
    monkeypatch.setattr(mode_transfer, "zoo_step", synthetic_analyse)
    monkeypatch.setattr("sys.argv", ["mode_transfer.py", "--data", str(data_root / "test-cpu"),
                                     "--data", str(data_root / "test-gpu")])
    assert mode_transfer.main() == 0
    table = pd.read_csv(tmp_path / "mode_transfer.csv")
    assert len(table) and set(table["held-out mode"]) <= {"train", "infer"}
    assert (table["n"] >= 1).all() and table["lent offset median %"].notna().all()
