"""experiments/mlenergy_benchmark.py: the ML.ENERGY leaderboard's task file read, its rows selected, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.experiments.conftest import load_script


@pytest.fixture(scope="module")
def mle():
    return load_script("mlenergy_benchmark")


def row(model_id: str = "meta-llama/Llama-3.1-8B-Instruct", gpu: str = "H100", num_gpus: int = 1,
        precision: str = "bfloat16", max_num_seqs: int = 8, **extra) -> dict:
    """One configuration as the v3 leaderboard's ``public/data/tasks/lm-arena-chat.json`` writes it."""
    return {"activated_params_billions": 8.0, "architecture": "Dense Transformer", "avg_batch_size": 7.6,
            "avg_output_len": 388.5, "avg_power_watts": 486.4, "data_parallel": 1,
            "energy_per_request_joules": 176.8, "energy_per_token_joules": 0.455, "expert_parallel": 1,
            "gpu_model": gpu, "max_num_seqs": max_num_seqs, "median_itl_ms": 7.3, "model_id": model_id,
            "nickname": "x", "num_gpus": num_gpus, "output_throughput_tokens_per_sec": 1069.6, "p90_itl_ms": 7.7,
            "p95_itl_ms": 8.0, "p99_itl_ms": 10.9, "tensor_parallel": num_gpus, "total_params_billions": 8.0,
            "weight_precision": precision, **extra}


def write_repo(root: Path, rows: list[dict]) -> Path:
    """A folder shaped like the leaderboard checkout, holding ``rows``."""
    file = root / "public" / "data" / "tasks" / "lm-arena-chat.json"
    file.parent.mkdir(parents=True)
    file.write_text(json.dumps({"configurations": rows, "task": "lm-arena-chat"}))
    return root


ROWS = [row(max_num_seqs=16), row(), row(gpu="B200"), row(num_gpus=2), row(precision="fp8"),
        row(model_id="google/gemma-3-12b-it"), row(model_id="Qwen/Qwen3-8B")]


def test_select_keeps_single_h100_bf16_rows_of_known_models_sorted(mle, tmp_path):
    table = mle.select(mle.load_rows(mle.read_task_text(write_repo(tmp_path, ROWS))))
    assert list(zip(table["model_id"], table["max_num_seqs"], strict=True)) == [
        ("Qwen/Qwen3-8B", 8), ("meta-llama/Llama-3.1-8B-Instruct", 8), ("meta-llama/Llama-3.1-8B-Instruct", 16)]
    assert mle.request_shape(table.iloc[0], 256) == (8, 256, 388)  # round(7.6), P, round(388.5): half to even


def test_compare_errors_are_relative_to_the_measured_figures(mle):
    record = {"energy_per_token_j": 0.91, "tokens_per_s": 534.8, "time_per_output_token_s": 0.0146, "fits": True,
              "energy_source": "none"}
    out = mle.compare(pd.Series(row()), record, (8, 256, 388))
    assert out["j_per_tok_err"] == pytest.approx(1.0)  # 0.91 / 0.455 - 1
    assert out["tok_per_s_err"] == pytest.approx(0.5)  # 1 - 534.8 / 1069.6
    assert out["tpot_ms_err"] == pytest.approx(1.0)  # 14.6 / 7.3 - 1
    assert out["model"] == "Llama-3.1-8B-Instruct" and out["B"] == 8 and out["N"] == 388


def test_every_model_builds_with_its_published_shapes(mle):
    from flopcast.features.config import AnalyzeConfig
    from flopcast.features.targets import load_hf_target, parse_overrides

    for model_id, (target, sets) in mle.MODELS.items():
        load_hf_target(AnalyzeConfig(target=target, hf_overrides=sets))  # config accepted offline
        assert parse_overrides(sets)["num_key_value_heads"] == 8, model_id


def test_a_plain_folder_has_no_commit_and_its_license_is_named(mle, tmp_path):
    repo = write_repo(tmp_path, ROWS)
    (repo / "LICENSE").write_text("Apache")
    src = mle.source(repo)
    assert src.commit.startswith("unknown") and src.license == "LICENSE"


def test_a_bare_mirror_is_read_at_head(mle, tmp_path):
    work = write_repo(tmp_path / "work", ROWS)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q", str(work)], ["-C", str(work), "add", "."], ["-C", str(work), "commit", "-qm", "x"],
                 ["clone", "-q", "--bare", str(work), str(tmp_path / "bare")]):
        subprocess.run([*git, *args], check=True)
    bare = tmp_path / "bare"
    assert len(mle.load_rows(mle.read_task_text(bare))) == len(ROWS)
    src = mle.source(bare)
    assert len(src.commit) == 40 and src.license == "none at the top level"


@pytest.mark.parametrize("case, message", [
    ("no folder", "no such folder"),
    ("no file", "no public/data/tasks/lm-arena-chat.json"),
    ("not json", "not a leaderboard task file"),
    ("no column", "column 'median_itl_ms' missing"),
    ("no row", "no single-H100 bf16 row"),
])
def test_bad_input_is_one_line_and_exit_2(mle, tmp_path, capsys, case, message):
    path = tmp_path / "repo"
    if case == "no file":
        path.mkdir()
    elif case == "not json":
        write_repo(path, []).joinpath("public/data/tasks/lm-arena-chat.json").write_text("{")
    elif case == "no column":
        broken = row()
        del broken["median_itl_ms"]
        write_repo(path, [broken])
    elif case == "no row":
        write_repo(path, [row(gpu="B200")])
    assert mle.main(["--mlenergy", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not (tmp_path / "out").exists()
