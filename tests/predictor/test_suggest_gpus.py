"""``suggest --max-gpus``: the GPU counts tried, the count chosen, and the run it puts in the ranking."""

from __future__ import annotations

import json

import pytest

from flopcast.predictor.main import main
from flopcast.predictor.suggest_gpus import choose, gpu_counts
from tests.datasets.synthetic import DEVICES


@pytest.mark.parametrize(("max_gpus", "per_node", "counts"), [
    (1, 8, [1]), (4, 8, [1, 2, 4]), (8, 4, [1, 2, 4]), (6, 8, [1, 2, 4, 6]), (8, 1, [1])])
def test_counts_are_powers_of_two_up_to_the_node_and_the_bound(max_gpus, per_node, counts):
    assert gpu_counts(max_gpus, per_node) == counts


RUNS = {1: {"run_time_s": 40.0, "run_time_s_p90": 50.0, "run_energy_kwh": 1.0},
        2: {"run_time_s": 22.0, "run_time_s_p90": 28.0, "run_energy_kwh": 1.1},
        4: {"run_time_s": 12.0, "run_time_s_p90": 15.0, "run_energy_kwh": 1.3},
        8: {"run_time_s": 7.0, "run_time_s_p90": 9.0, "run_energy_kwh": 1.6, "fits": False}}


@pytest.mark.parametrize(("key", "deadline", "chosen"), [
    ("run_energy_kwh", 30.0, 2),  # the fewest GPUs meeting the deadline, not the least energy
    ("run_energy_kwh", None, 1),  # no deadline: least energy
    ("run_time_s", None, 4),  # fastest that fits (8 does not)
    ("run_energy_kwh", 10.0, 4),  # nobody meets it: the fastest that fits
])
def test_choice_is_the_smallest_count_meeting_the_deadline_else_the_objective(key, deadline, chosen):
    assert choose(RUNS, key, deadline) == chosen


NET = '''import torch
INPUTS = ["float32[B,1024]"]


def build():
    return torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 8))
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("suggest-gpus")
    (root / "net.py").write_text(NET)
    (root / "gpu.json").write_text(json.dumps({**DEVICES["test-gpu"], "interconnect": "NVLink 4 900 GB/s"}))
    (root / "pool.yaml").write_text("gpus:\n  - hardware: gpu.json\n    partition: p\n    gres: testgpu\n"
                                    "    per_node: 4\n    price_per_gpu_hour: 2.0\n")
    return root


def _run(capsys, files, model_dir, *extra):
    code = main(["suggest", str(files / "net.py:build"), "--batch-size", "64", "--model", str(model_dir), "--pool",
                 str(files / "pool.yaml"), "--dataset-size", "1000000", "--json", "--max-gpus", "4", *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_max_gpus_prices_every_count_and_runs_the_chosen_one(capsys, files, model_dir):
    out = _run(capsys, files, model_dir, "--objective", "time")
    w = out["winner"]
    counts = {int(k): v for k, v in w["gpu_counts"].items()}
    assert sorted(counts) == [1, 2, 4]
    fitting = {n: c for n, c in counts.items() if c["fits"] is not False}
    assert w["gpus"] == min(fitting, key=lambda n: fitting[n]["run_time_s"])
    assert w["run_time_s"] == counts[w["gpus"]]["run_time_s"]
    assert w["batch_size"] == w["recommended_batch_size"] * w["gpus"]
    assert w["run_cost"] == pytest.approx(w["run_time_s"] / 3600 * 2.0 * w["gpus"])
    assert f"--gres=gpu:testgpu:{w['gpus']}" in out["sbatch"]


def test_a_deadline_takes_the_fewest_gpus_that_meet_it(capsys, files, model_dir):
    counts = {int(k): v for k, v in _run(capsys, files, model_dir)["winner"]["gpu_counts"].items()}
    slowest_ok = max(c["run_time_s_p90"] for n, c in counts.items() if n > 1 and c["fits"] is not False)
    w = _run(capsys, files, model_dir, "--deadline", f"{slowest_ok * 1.0001:.6f}s", "--objective", "energy")["winner"]
    meeting = [n for n, c in counts.items() if c["fits"] is not False and c["run_time_s_p90"] <= slowest_ok * 1.0001]
    assert w["gpus"] == min(meeting)
