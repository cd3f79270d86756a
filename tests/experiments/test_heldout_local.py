"""experiments/heldout_local.py: models outside the zoo, measured and predicted the way a user runs predict."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

from flopcast.calibration.zoo import ZOO
from flopcast.features.spec import parse_spec
from flopcast.features.targets import load_file_target
from tests.experiments.conftest import EXPERIMENTS, load_script


@pytest.fixture(scope="module")
def heldout():
    return load_script("heldout_local")


def test_every_config_is_outside_the_zoo_and_runs_on_its_inputs(heldout, monkeypatch):
    monkeypatch.chdir(EXPERIMENTS.parent)
    zoo_classes = {type(z.build()).__name__ for z in ZOO.values() if z.batch_sizes}
    for c in heldout.CONFIGS:
        model = load_file_target(c.target).builder()
        assert c.target.rsplit(":", 1)[1] not in ZOO and not c.target.startswith("calibration/zoo")
        assert type(model).__name__ == "Sequential" or type(model).__name__ not in zoo_classes, c.label
        inputs = [parse_spec(s).materialize({"B": 2}, "cpu") for s in c.inputs]
        with torch.no_grad():
            assert torch.isfinite(model(*inputs)).all(), c.label


def test_predictions_are_the_cli_with_local_hardware(heldout, monkeypatch):
    calls = []

    def run(argv, env, **kwargs):
        calls.append((argv, env))
        return subprocess.CompletedProcess(argv, 0, json.dumps([{"step_time_s": 0.01, "calibrated": True}]), "")

    monkeypatch.setattr(heldout.subprocess, "run", run)
    c = next(c for c in heldout.CONFIGS if c.mode == "infer")
    assert heldout.predicted(c, ["--calibration", "d"], {"FLOPCAST_HOME": "h"})["step_time_s"] == 0.01
    (argv, env), = calls
    assert argv[argv.index("--hardware") + 1] == "local" and argv[-2:] == ["--calibration", "d"]
    assert argv[argv.index("--optimizer") + 1] == "none" and argv.count("--input") == len(c.inputs)
    assert argv[argv.index("--loss") + 1] == "mean"  # the plain step, as measured_s runs it
    assert env == {"FLOPCAST_HOME": "h"} and "load" in heldout.load() and str(os.cpu_count()) in heldout.load()


def test_h200_workspace_check_reads_the_released_steps(capsys):
    assert load_script("h200_workspace_check").main() == 0
    out = capsys.readouterr().out
    assert out.startswith("released H200 steps: ") and "adds (MLP-like step): 65 MiB" in out
    assert "= 0.61: step peak 102 MiB" in out and "= 0.65: step peak 121 MiB" in out  # 0.61 x 65 / 0.39
    assert "ratio 0." in out.split("released steps of about that size")[1]
