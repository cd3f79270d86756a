"""Parsing of NeuSight's 4-GPU labels and of its ``distributed.csv`` spreadsheet (experiments/distributed_benchmark)."""

from __future__ import annotations

import json

import pytest

from tests.experiments.conftest import load_script

bench = load_script("distributed_benchmark")

SUMMARY = """,,,A100x4,,,H100x4,,,
,Global batch size,,DP,TP,PP,DP,TP,PP,
GPT2-Large,4,Measured Latency (ms),452.3,484.9,1597.6,194.9,211.1,637.5,
,,NeuSight Prediction (ms),510.5 (12.9%),525.6 (8.4%),1761.6 (10.3%),214.1 (9.9%),228.1 (8.0%),650.2 (2.0%),
,16,Measured Latency (ms),,,,642.1,729.7,2384.0,
,,NeuSight Prediction (ms),,,,649.6 (1.2%),825.1 (13.1%),2638.4 (10.7%),
"""


@pytest.fixture
def checkout(tmp_path):
    """A NeuSight-shaped folder: two label files, one file of another kind, the summary spreadsheet."""
    labels = tmp_path / bench.LABEL_DIR
    for folder, name, ms in [("NVIDIA_H100_80GB_HBM3", "gpt2_large-train-1024-16-tp4.json", 729.7),
                             ("NVIDIA_A100-SXM4-40GB", "gpt2_large-train-1024-4-pp4_1.json", 1597.6),
                             ("NVIDIA_H100_80GB_HBM3", "gpt2_large-train-1024-16.json", 2417.7)]:
        (labels / folder).mkdir(parents=True, exist_ok=True)
        (labels / folder / name).write_text(json.dumps({"e2e_latency": ms}))
    (tmp_path / bench.SUMMARY).parent.mkdir(parents=True)
    (tmp_path / bench.SUMMARY).write_text(SUMMARY)
    return tmp_path


def test_label_files_give_one_row_each_with_strategy_batch_and_seconds(checkout):
    rows = bench.label_rows(checkout).sort_values("measured").reset_index(drop=True)
    assert len(rows) == 2  # the single-GPU label is not a 4-GPU row
    assert rows.loc[0, ["hardware", "parallel", "batch_size", "seq"]].tolist() == ["h100-sxm", "tp", 16, 1024]
    assert rows.loc[0, "measured"] == pytest.approx(0.7297)
    assert rows.loc[1, ["hardware", "parallel", "batch_size"]].tolist() == ["a100-40gb", "pp", 4]


def test_the_spreadsheet_gives_measured_and_neusight_per_model_batch_gpu_strategy(checkout):
    table = bench.neusight_predictions(checkout).set_index(["upstream", "batch_size", "folder", "parallel"])
    assert len(table) == 9  # 6 cells at batch 4, 3 H100 cells at batch 16 (empty A100 cells skipped)
    h100_tp16 = table.loc[("gpt2_large", 16, "NVIDIA_H100_80GB_HBM3", "tp")]
    assert h100_tp16["measured"] == pytest.approx(0.7297) and h100_tp16["neusight"] == pytest.approx(0.8251)
    a100_pp4 = table.loc[("gpt2_large", 4, "NVIDIA_A100-SXM4-40GB", "pp")]
    assert a100_pp4["neusight"] == pytest.approx(1.7616)


def test_a_folder_that_is_not_a_neusight_checkout_is_one_error(tmp_path):
    with pytest.raises(SystemExit, match="no such folder"):
        bench.label_rows(tmp_path)
