from __future__ import annotations

import json
from dataclasses import replace

import pytest

from flopcast.features.config import AnalyzeConfig
from flopcast.predictor.ep import Training
from flopcast.predictor.main import main
from flopcast.predictor.pool import load_pool
from flopcast.predictor.predict import PredictConfig, _analyse_config
from flopcast.predictor.suggest import (
    SuggestConfig,
    SuggestError,
    memoised,
    parse_duration,
    recommended,
    slurm_time,
    suggest,
)
from tests.datasets.synthetic import DEVICES

NET = '''import torch
INPUTS = ["float32[B,65536]"]  # 256 KiB a sample: the largest batch is memory's, well below the search limit


def build():
    return torch.nn.Sequential(torch.nn.Linear(65536, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 8))
'''
POOL = """gpus:
  - hardware: gpu.json
    partition: gpu-test
    gres: testgpu
    per_node: 4
    price_per_gpu_hour: 3.0
    cpus_per_node: 32
  - hardware: t4
    partition: gpu-t4
    gres: t4
    price_per_gpu_hour: 0.4
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("suggest")
    (root / "net.py").write_text(NET)
    (root / "gpu.json").write_text(json.dumps(DEVICES["test-gpu"]))
    (root / "tiny.json").write_text(json.dumps(dict(DEVICES["test-gpu"], name="tiny-gpu", memory_bytes=2**20)))
    (root / "pool.yaml").write_text(POOL)
    return root


def _suggest(files, model_dir, *extra, pool="pool.yaml"):
    return ["suggest", str(files / "net.py:build"), "--batch-size", "8", "--model", str(model_dir),
            "--pool", str(files / pool), "--dataset-size", "2000", "--epochs", "2", *extra]


def _json(capsys, args):
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.fixture(scope="module")
def shared_analyse():
    return memoised(_analyse_config)


@pytest.mark.parametrize("objective", ["time", "energy", "co2", "cost"])
def test_ranking_follows_the_objective(files, model, shared_analyse, objective):
    config = SuggestConfig(
        predict=PredictConfig(AnalyzeConfig(target=str(files / "net.py:build"), batch_size=8), dataset_size=2000),
        training=Training(), pool=load_pool(files / "pool.yaml"), objective=objective)
    out = suggest(replace(config, predict=replace(config.predict, hardware=tuple(g.hardware for g in config.pool))),
                  model, analyse=shared_analyse)
    key = {"time": "run_time_s", "energy": "run_energy_kwh", "co2": "run_co2_kg", "cost": "run_cost"}[objective]
    values = [o[key] for o in out["options"]]
    assert values == sorted(values) and [o["rank"] for o in out["options"]] == [1, 2]
    assert out["winner"] is out["options"][0]


def test_numbers_are_predict_numbers(files, model_dir, capsys):
    out = _json(capsys, _suggest(files, model_dir, "--json"))
    for o in out["options"]:
        hardware = str(files / "gpu.json") if o["hardware"] == "test-gpu" else o["hardware"]
        base = ["predict", str(files / "net.py:build"), "--model", str(model_dir), "--hardware", hardware, "--json"]
        at_user_batch = _json(capsys, [*base, "--batch-size", "8", "--max-batch"])[0]
        assert o["max_batch_size"] == at_user_batch["max_batch_size"]
        run = _json(capsys, [*base, "--batch-size", str(o["recommended_batch_size"]), "--dataset-size", "2000",
                             "--epochs", "2"])[0]
        assert o["run_time_s"] == run["run_time_s"] and o["run_co2_kg_p90"] == run["run_co2_kg_p90"]
        assert o["recommended_batch_size"] <= min(o["max_batch_size"], 2000)
        assert o["run_cost"] == pytest.approx(run["run_time_s"] / 3600 * o["price_per_gpu_hour"])


def test_the_recommended_batch_leaves_the_margin(files, model_dir, capsys):
    loose = _json(capsys, _suggest(files, model_dir, "--json", "--dataset-size", "100000000", "--memory-margin", "0"))
    tight = _json(capsys, _suggest(files, model_dir, "--json", "--dataset-size", "100000000", "--memory-margin",
                                   "0.5"))
    for a, b in zip(loose["options"], tight["options"], strict=True):
        assert b["recommended_batch_size"] < a["recommended_batch_size"] <= a["max_batch_size"]
        assert b["recommended_batch_size"] % 8 == 0


def test_sbatch_header_for_the_winner(files, model_dir, capsys, tmp_path):
    job = tmp_path / "job.sh"
    out = _json(capsys, _suggest(files, model_dir, "--json", "--objective", "time", "--sbatch", str(job)))
    text = job.read_text()
    w = out["winner"]
    assert text == out["sbatch"] and text.startswith("#!/bin/bash\n")
    gres = "testgpu" if w["hardware"] == "test-gpu" else "t4"
    assert f"#SBATCH --gres=gpu:{gres}:1" in text and f"#SBATCH --partition={w['partition']}" in text
    assert "one GPU per job: --max-gpus N also weighs data-parallel runs" in text
    assert "#SBATCH --time=0-00:01:00" in text  # a run of milliseconds: one minute, the least SLURM takes


def test_deadline_filters_the_winner(files, model_dir, capsys):
    out = _json(capsys, _suggest(files, model_dir, "--json", "--objective", "cost", "--deadline", "1d"))
    assert all(o["meets_deadline"] for o in out["options"]) and out["deadline_s"] == 86400


@pytest.mark.parametrize(("extra", "pool_text", "message"), [
    (["--deadline", "1s", "--dataset-size", "100000000"], None, "no GPU type in the pool meets --deadline"),
    (["--deadline", "12x"], None, "--deadline '12x': use a duration such as 12h"),
    ([], "gpus:\n  - hardware: h1000\n    partition: p\n    gres: g\n", "unknown hardware 'h1000'; did you mean"),
    ([], "gpus: [a, b\n", "not valid YAML at line"),
    ([], "gpus:\n  - hardware: t4\n    partition: p\n", "is missing gres"),
    ([], "gpus:\n  - hardware: tiny.json\n    partition: p\n    gres: g\n",
     "nothing in the pool fits: the step needs"),
    (["--sbatch", "/nonexistent-folder/job.sh"], None, "cannot write the #SBATCH script"),
])
def test_bad_input_is_one_line(files, model_dir, capsys, extra, pool_text, message):
    pool = "pool.yaml"
    if pool_text is not None:
        pool = "bad.yaml"
        (files / pool).write_text(pool_text)
    code = main(_suggest(files, model_dir, *extra, pool=pool))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_missing_pool_file_is_one_line(files, model_dir, capsys):
    assert main(_suggest(files, model_dir, pool="nothing.yaml")) == 2
    assert "pool file not found" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "seconds"), [("12h", 43200), ("90m", 5400), ("1d6h", 108000), ("45s", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_slurm_time_rounds_up_to_the_minute():
    assert slurm_time(61) == "0-00:02:00" and slurm_time(86400 + 3600) == "1-01:00:00"
    with pytest.raises(SuggestError):
        parse_duration("0h")
    assert recommended(37) == 32 and recommended(5) == 5
