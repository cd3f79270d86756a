from __future__ import annotations

import numpy as np
import pytest

from flopcast.datasets.loader import load_datasets
from flopcast.datasets.validate import spearman, validate
from tests.datasets.synthetic import write_folder


@pytest.fixture
def ds(tmp_path):
    write_folder(tmp_path, "test-cpu", n_ops=60)
    write_folder(tmp_path, "test-gpu", n_ops=60)
    return load_datasets([tmp_path])


def test_synthetic_data_is_valid(ds):
    assert validate(ds) == []


def _first(df, category):
    return df.index[df["category"] == category][0]


@pytest.mark.parametrize(("breakage", "message"), [
    ("negative_time", "non-finite or non-positive time_s"),
    ("above_peak", "above the spec peak"),
    ("energy_over_tdp", "exceeds TDP x time_s"),
    ("negative_energy", "non-positive energy_j"),
    ("shuffled_family", "ranks poorly with work"),
])
def test_each_physics_problem_is_named(ds, breakage, message):
    mb = ds.microbench
    if breakage == "negative_time":
        mb.loc[0, "time_s"] = -1.0
    elif breakage == "above_peak":
        i = _first(mb, "matmul")
        mb.loc[i, "time_s"] = mb.loc[i, "flops"] / (mb.loc[i, "hw_peak_fp32"] * 5)
    elif breakage in ("energy_over_tdp", "negative_energy"):
        i = mb.index[mb["energy_j"].notna()][0]
        over = 10 * mb.loc[i, "hw_tdp_w"] * mb.loc[i, "time_s"]
        mb.loc[i, "energy_j"] = -1.0 if breakage == "negative_energy" else over
    else:
        rows = (mb["hardware"] == "test-cpu") & (mb["category"] == "elementwise")
        mb.loc[rows, "time_s"] = mb.loc[rows, "time_s"].to_numpy()[::-1]
    problems = validate(ds)
    assert any(message in p for p in problems), problems


def test_missing_column_is_named(ds):
    problems = validate(type(ds)(ds.microbench.drop(columns=["flops"]), ds.steps, ds.descriptors))
    assert problems == ["microbench: missing column(s) flops"]


def test_spearman():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_a_rows_peak_is_its_dtypes_as_microbenchmarks_run_it():
    import pandas as pd

    from flopcast.datasets.validate import allowed_flops_per_s, row_peak_flops_per_s

    # a microbenchmark runs TF32 exactly when its dtype says tf32: a float32 conv row is strict fp32
    rows = pd.DataFrame({"dtype": ["float32", "tf32", "float32", "float32"],
                         "category": ["conv", "conv", "matmul", "conv"], "hw_kind": ["gpu", "gpu", "gpu", "cpu"],
                         "hw_peak_fp32": [6.7e13, 6.7e13, 6.7e13, 2e12],
                         "hw_peak_tf32": [4.9e14, 4.9e14, 4.9e14, np.nan],
                         "hardware": ["g", "g", "g", "c"]})
    assert list(row_peak_flops_per_s(rows)) == [6.7e13, 4.9e14, 6.7e13, 2e12]
    # Winograd convolutions multiply less than the direct FLOP count: conv rows get 4x more room
    np.testing.assert_allclose(allowed_flops_per_s(rows),
                               [1.1 * 4 * 6.7e13, 1.1 * 4 * 4.9e14, 1.1 * 6.7e13, 1.1 * 4 * 2e12])


def test_dispatch_bound_rows_are_judged_by_their_work_not_their_time(ds):
    mb = ds.microbench
    rows = mb.index[(mb["hardware"] == "test-cpu") & (mb["category"] == "elementwise")]
    # tiny work that took long (hundreds of launches, as a many-tensor optimizer step): not a physics problem
    mb.loc[rows, ["flops", "bytes_read", "bytes_written"]] = mb.loc[rows, ["flops", "bytes_read",
                                                                            "bytes_written"]].to_numpy() * 0 + 1
    mb.loc[rows, "time_s"] = np.linspace(1e-2, 1e-3, len(rows))
    assert not any("ranks poorly" in p for p in validate(ds))


def test_skinny_matmuls_are_told_apart_from_regular_ones():
    from flopcast.datasets.validate import degenerate_matmul

    assert degenerate_matmul('{"b": 47, "m": 152, "k": 5, "n": 1485}')  # thin k: output-bound
    assert degenerate_matmul({"m": 1, "k": 512, "n": 512})  # GEMV
    assert not degenerate_matmul({"m": 8, "k": 8, "n": 8})
    assert not degenerate_matmul('{"n": 3, "c": 16}')  # not a matmul config
    assert not degenerate_matmul("not json")
