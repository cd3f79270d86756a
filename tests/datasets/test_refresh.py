from __future__ import annotations

import json
import random

import pandas as pd

from flopcast.calibration.microbench import get_family
from flopcast.calibration.microbench.static import static_features
from flopcast.calibration.zoo_steps import StepConfig, static_columns
from flopcast.datasets.refresh import STEP_FEATURE_COLUMNS, main, refresh_folder, refreshed, refreshed_steps


def _rows():
    rows = []
    rng = random.Random(0)
    for family in ("matmul", "softmax", "sdpa_fwd"):
        fam = get_family(family)
        config = fam.fit({**fam.sample(rng), "dtype": "fp32"}, 1 << 22)
        features, problem = static_features(fam, config)
        assert not problem
        rows.append({**features, "family": family, "config": json.dumps(config), "time_s": 1e-3, "key": family})
    return pd.DataFrame(rows)


def test_current_rows_are_left_alone_and_stale_features_are_traced_again():
    table = _rows()
    _, changed = refreshed(table)
    assert changed == 0
    stale = table.copy()
    stale.loc[0, "flops"] = stale.loc[0, "flops"] * 2 + 7
    stale.loc[0, "time_s"] = 5.0
    fixed, changed = refreshed(stale)
    assert changed == 1
    assert fixed.loc[0, "flops"] == table.loc[0, "flops"]
    assert fixed.loc[0, "time_s"] == 5.0  # measured columns are never rewritten


def _step_rows():
    rows = []
    for model, mode, optimizer in (("mlp-small", "infer", "none"), ("mlp-small", "train", "sgd")):
        features, problem = static_columns(StepConfig(model, 2, mode, "fp32", optimizer), "cpu")
        assert not problem
        rows.append({"model": model, "batch_size": 2, "mode": mode, "precision": "fp32", "optimizer": optimizer,
                     "device_kind": "cpu", **features, "time_s": 1e-3})
    rows.append({**rows[0], "model": "no-such-zoo-model", "flops": 5, "time_s": 2e-3})
    return pd.DataFrame(rows)


def test_stale_step_analyses_are_recomputed_and_measured_columns_kept():
    table = _step_rows()
    matmul_flops = 2 * 2 * (784 * 512 + 512 * 512 + 512 * 10)  # batch 2, forward only (+ bias adds, ReLUs)
    assert matmul_flops <= table.loc[0, "flops"] < 1.01 * matmul_flops
    _, changed = refreshed_steps(table)
    assert changed == 0
    stale = table.copy()
    stale.loc[0, "flops"] = 1024  # what an early tracer recorded for inference steps
    stale.loc[1, "op_count"] = 3
    fixed, changed = refreshed_steps(stale)
    assert changed == 2
    for c in STEP_FEATURE_COLUMNS:
        assert fixed.loc[:1, c].tolist() == table.loc[:1, c].tolist()
    assert fixed["time_s"].tolist() == table["time_s"].tolist()
    assert fixed.loc[2, "flops"] == 5  # a model the zoo does not know keeps the campaign's values


def test_refresh_folder_rewrites_both_tables_in_place(tmp_path):
    ops, steps = _rows(), _step_rows()
    ops.loc[1, "bytes_read"] = 1.0
    steps.loc[0, "flops"] = 1024
    ops.to_parquet(tmp_path / "microbench.parquet")
    steps.to_parquet(tmp_path / "steps.parquet")
    assert refresh_folder(tmp_path) == (1, 1)
    assert pd.read_parquet(tmp_path / "steps.parquet").loc[0, "flops"] == _step_rows().loc[0, "flops"]
    assert refresh_folder(tmp_path) == (0, 0)


def test_cli_without_folder_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
