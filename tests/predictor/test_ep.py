from __future__ import annotations

import json

import pytest

from flopcast.features.api import analyze_config
from flopcast.features.config import AnalyzeConfig
from flopcast.predictor.ep import Training, TrainingOptionError, ep_analysis
from flopcast.predictor.main import main

L1 = 2 * 8 * 64 * 64 + 8 * 64  # addmm of layer 1 at batch 8: 2 x B x in x out + the bias add
L2 = 2 * 8 * 64 * 8 + 8 * 8  # addmm of layer 2
RELU = 8 * 64
ADAMW = 4 + 3 * 14040 + 5 * 4680  # the traced foreach AdamW over 64x64 + 64 + 64x8 + 8 = 4680 parameters


@pytest.fixture(scope="module")
def net(small_net):
    return small_net / "net.py"


def _analysis(net, mode):
    return analyze_config(AnalyzeConfig(target=f"{net}:build", batch_size=8, mode=mode, device="cuda"))


def test_ep_step_matches_the_hand_count(net):
    ep = ep_analysis(_analysis(net, "infer"), _analysis(net, "train"), free_steps=3, nudged_steps=2)
    iteration = L1 + RELU + L2 + L2  # forward, then the feedback of layer 2 (W2^T); the input layer is clamped
    update = 2 * (L1 + L2)  # free and nudged correlations of each layer
    assert ep.flops == (3 + 2) * iteration + update + ADAMW
    assert ep.by_phase()["backward"]["flops"] == update and ep.by_phase()["backward"]["ops"] == 4
    assert [o.index for o in ep.ops] == list(range(len(ep.ops)))
    assert ep.target.mode == "train" and ep.memory == _analysis(net, "train").memory


def test_predict_puts_bp_and_ep_side_by_side(net, model_dir, capsys):
    args = ["predict", f"{net}:build", "--batch-size", "8", "--model", str(model_dir), "--hardware", "h100",
            "--training", "bp,ep", "--ep-free-steps", "3", "--ep-nudged-steps", "2"]
    assert main([*args, "--json"]) == 0
    bp, ep = json.loads(capsys.readouterr().out)
    assert (bp["training"], ep["training"]) == ("bp", "ep") and ep["ep_free_steps"] == 3
    assert ep["flops"] == 5 * (L1 + RELU + 2 * L2) + 2 * (L1 + L2) + ADAMW
    assert bp["label"] == "h100-sxm (BP)" and ep["label"] == "h100-sxm (EP 3+2)"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "h100-sxm (EP 3+2)" in out and "step FLOPs" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--training", "ep", "--mode", "infer"], "--training ep prices a train step"),
    (["--training", "ff"], "--training must list bp and/or ep"),
    (["--training", "ep", "--ep-free-steps", "0"], "--ep-free-steps must be >= 1"),
])
def test_bad_training_options_are_one_line(net, model_dir, capsys, args, message):
    code = main(["predict", f"{net}:build", "--model", str(model_dir), "--hardware", "h100", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_training_validates_regimes():
    with pytest.raises(TrainingOptionError):
        Training(("bp", "dfa"))
