from __future__ import annotations

import math

import pytest

from flopcast.predictor.metrics import error_metrics


def test_error_metrics_arithmetic():
    m = error_metrics([1.05, 1.2, 3.0, float("nan")], [1.0, 1.0, 1.0, 1.0])
    assert m["n"] == 3
    assert m["median_ape_pct"] == pytest.approx(20.0)
    assert m["mean_ape_pct"] == pytest.approx((5 + 20 + 200) / 3)
    assert m["within_10_pct"] == pytest.approx(100 / 3) and m["within_25_pct"] == pytest.approx(200 / 3)


def test_error_metrics_without_rows_are_nan():
    assert math.isnan(error_metrics([], [])["median_ape_pct"])
