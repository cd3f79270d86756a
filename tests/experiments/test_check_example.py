"""experiments/check_example.py --per-op: measured and predicted time side by side, per op."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.experiments.conftest import load_script


@pytest.fixture(scope="module")
def check_example():
    return load_script("check_example")


def test_per_op_table_lines_up_ops_largest_first_with_a_total(check_example):
    measured = pd.Series({"aten.mm": 4.0, "aten.fill_": 1.0, "aten.div": 2.0}, name="measured_ms")
    predicted = pd.Series({"aten.mm": 3.0, "aten.div": 0.5, "aten.sqrt": 0.25}, name="predicted_ms")
    table = check_example.per_op_table(measured, predicted)
    assert list(table.index) == ["aten.mm", "aten.div", "aten.fill_", "aten.sqrt", "all aten ops"]
    assert table.loc["aten.fill_", "predicted_ms"] == 0.0  # measured, not in the analysis: shown, not dropped
    assert table.loc["aten.sqrt", "measured_ms"] == 0.0 and pd.isna(table.loc["aten.sqrt", "ratio"])
    assert table.loc["aten.div", "ratio"] == 0.25
    assert table.loc["all aten ops"].tolist() == [7.0, 3.75, round(3.75 / 7.0, 2)]
