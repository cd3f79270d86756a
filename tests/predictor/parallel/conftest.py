from __future__ import annotations

import json

import pytest

from flopcast.features.api import analyze_config
from flopcast.features.config import AnalyzeConfig
from flopcast.features.step_options import StepOptions
from flopcast.predictor.parallel.shard import ShardRecord, sharded_builder
from tests.datasets.synthetic import DEVICES

GPT2 = {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 128, "n_positions": 32}
"""A GPT-2 config small enough to trace in a second: L = 2 layers, h = 64, 4 heads, V = 128."""
SEQ = 16


def gpt2_config(batch: int, **step) -> AnalyzeConfig:
    """The train step of :data:`GPT2` at sequence length :data:`SEQ`, cross-entropy loss."""
    return AnalyzeConfig(target="hf:gpt2", batch_size=batch, seq_len=SEQ, trace_all_layers=True,
                         hf_overrides=tuple(f"{k}={v}" for k, v in GPT2.items()),
                         step=StepOptions(loss="cross-entropy", **step))


def sharded(config: AnalyzeConfig, tp: int = 1, stack: bool = True):
    """The analysis of one GPU's shard and its record."""
    record = ShardRecord()
    a = analyze_config(config, transform=lambda build: sharded_builder(build, tp, record, stack=stack))
    return a, record


@pytest.fixture(scope="module")
def mlp_target(small_net):
    """``net.py:build`` of the two-layer MLP (Linear 64 -> 64, ReLU, Linear 64 -> 8)."""
    return f"{small_net / 'net.py'}:build"


@pytest.fixture(scope="module")
def gpu_file(tmp_path_factory):
    """The synthetic trained GPU with NVLink 4 and PCIe 5 links (its descriptor names them)."""
    path = tmp_path_factory.mktemp("gpu") / "gpu.json"
    path.write_text(json.dumps({**DEVICES["test-gpu"], "interconnect": "NVLink 4 900 GB/s; PCIe 5 x16"}))
    return path
