"""Activation checkpointing: the backward runs the layers' forward again, and the peak memory goes down."""

from __future__ import annotations

import json

import pytest
import torch

from flopcast.features.config import AnalyzeConfig
from flopcast.features.rules import CountingRules
from flopcast.features.spec import parse_spec
from flopcast.features.trace_model import trace_model
from flopcast.predictor.main import main

LAYERS, WIDTH, BATCH = 4, 64, 4096
BLOCK_FLOPS = 2 * (2 * BATCH * WIDTH * WIDTH + BATCH * WIDTH + BATCH * WIDTH)  # 2 x (addmm with bias, relu)


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(WIDTH, WIDTH), torch.nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the last relu's output is saved: the recomputation runs the whole block
        return torch.relu(self.fc2(torch.relu(self.fc1(x))))


class Stack(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(Block() for _ in range(LAYERS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def _trace(rule: str):
    config = AnalyzeConfig(target="stack", inputs=(f"float32[B,{WIDTH}]",), batch_size=BATCH, device="cpu",
                           optimizer="sgd", rules=CountingRules(activation_checkpointing=rule))
    return trace_model(Stack, [parse_spec(s) for s in config.inputs], config)


@pytest.fixture(scope="module")
def plain():
    return _trace("none")


def _layer_forward_flops(a, layers) -> int:
    return sum(o.flops for o in a.ops if o.phase.value == "forward" and o.module.split(".")[:2] in
               [["layers", str(i)] for i in layers])


def test_full_checkpointing_adds_one_forward_to_the_backward(plain):
    full = _trace("full")
    forward = _layer_forward_flops(plain, range(LAYERS))
    assert forward == LAYERS * BLOCK_FLOPS
    assert full.by_phase()["backward"]["flops"] - plain.by_phase()["backward"]["flops"] == forward
    assert sum(o.flops for o in full.ops if o.recomputed) == forward
    assert all(o.phase.value == "backward" for o in full.ops if o.recomputed)
    assert full.by_phase()["forward"] == plain.by_phase()["forward"]


def test_checkpointing_lowers_the_peak(plain):
    full = _trace("full")
    assert full.peak_memory_bytes < plain.peak_memory_bytes
    assert full.memory.breakdown_bytes["activations"] < plain.memory.breakdown_bytes["activations"]


def test_every_k_checkpoints_every_kth_layer(plain):
    every2 = _trace("every-2")
    assert sum(o.flops for o in every2.ops if o.recomputed) == _layer_forward_flops(plain, (0, 2))
    assert _trace("full").peak_memory_bytes <= every2.peak_memory_bytes <= plain.peak_memory_bytes


def test_analyze_json_states_what_it_costs_and_saves(capsys, tmp_path):
    (tmp_path / "stack.py").write_text(
        "import torch\nfrom tests.features.test_checkpointing import Stack\n"
        f"INPUTS = ['float32[B,{WIDTH}]']\n\n\ndef build():\n    return Stack()\n")
    assert main(["analyze", f"{tmp_path / 'stack.py'}:build", "--batch-size", str(BATCH), "--device", "cpu",
                 "--optimizer", "sgd", "--activation-checkpointing", "full", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    c = d["checkpointing"]
    assert d["rules"]["activation_checkpointing"] == "full"
    assert c["recomputed_flops"] == LAYERS * BLOCK_FLOPS
    assert c["memory_saved_bytes"] == c["peak_without_bytes"] - d["peak_memory_bytes"] > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--mode", "infer", "--activation-checkpointing", "full"], "recomputes a train step's forward"),
    (["--activation-checkpointing", "full"], "has no stack of identical layers"),
])
def test_bad_checkpointing_is_one_line(capsys, tmp_path, args, message):
    (tmp_path / "m.py").write_text("import torch\nINPUTS = ['float32[B,8]']\n\n\ndef build():\n"
                                   "    return torch.nn.Linear(8, 8)\n")
    code = main(["analyze", f"{tmp_path / 'm.py'}:build", "--device", "cpu", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
