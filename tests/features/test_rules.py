"""Counting rules: documented defaults stated in the JSON, causal attention full or halved, FLOPs or MACs."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from flopcast.features.api import analyze
from flopcast.features.config import AnalyzeConfig
from flopcast.features.errors import OptionError
from flopcast.features.rules import CountingRules
from flopcast.features.spec import parse_spec
from flopcast.features.trace_model import trace_model
from flopcast.predictor.main import main

L, H, D = 32, 4, 16


class CausalAttention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = torch.nn.Linear(H * D, 3 * H * D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).view(x.shape[0], L, 3, H, D).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _trace(rules: CountingRules):
    config = AnalyzeConfig(target="attn", inputs=("float32[B,32,64]",), batch_size=2, mode="infer", device="cpu",
                           optimizer="none", rules=rules)
    return trace_model(CausalAttention, [parse_spec(s) for s in config.inputs], config)


def test_defaults_are_stated_under_rules():
    a = analyze(CausalAttention, ["float32[B,32,64]"], batch_size=2, mode="infer", device="cpu")
    assert a.to_dict()["rules"] == {"causal_attention": "full", "count": "flops", "activation_checkpointing": "none",
                                    "grad_accumulation": 1, "moe_routing": "uniform", "expert_load": None}
    assert a.to_dict()["work"] == a.flops and a.to_dict()["work_unit"] == "FLOP"


def test_halved_counts_the_executed_share_of_a_causal_score_matrix():
    full, halved = _trace(CountingRules()), _trace(CountingRules(causal_attention="halved"))
    attention = full.by_category()["attention"]["flops"]
    assert attention == 2 * H * L * L * (4 * D + 9)  # the full 32 x 32 score matrix
    # top-left causal mask: L (L + 1) / 2 of the L x L pairs are computed
    assert halved.by_category()["attention"]["flops"] == round(attention * (L + 1) / (2 * L))
    assert halved.flops == full.flops - attention + round(attention * (L + 1) / (2 * L))
    assert halved.by_category()["matmul"] == full.by_category()["matmul"]
    assert [o.flops for o in halved.ops] == [o.flops for o in full.ops]  # the op table the cost model reads


def test_count_macs_makes_macs_the_headline():
    a = _trace(CountingRules(count="macs"))
    d = a.to_dict()
    assert d["work"] == d["macs"] == a.macs < a.flops and d["work_unit"] == "MAC"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"causal_attention": "quarter"}, "--causal-attention must be"),
    ({"count": "ops"}, "--count must be"),
    ({"activation_checkpointing": "every-0"}, "--activation-checkpointing must be"),
    ({"activation_checkpointing": "sometimes"}, "--activation-checkpointing must be"),
])
def test_bad_rules_are_refused(kwargs, message):
    with pytest.raises(OptionError, match=message):
        CountingRules(**kwargs)


@pytest.mark.parametrize(("text", "every"), [("none", 0), ("full", 1), ("every-1", 1), ("every-3", 3)])
def test_checkpointing_rule_parses(text, every):
    assert CountingRules(activation_checkpointing=text).checkpoint_every == every


def test_cli_rules_reach_the_json(capsys, tmp_path):
    (tmp_path / "m.py").write_text("import torch\nINPUTS = ['float32[B,16]']\n\n\ndef build():\n"
                                   "    return torch.nn.Linear(16, 4)\n")
    assert main(["analyze", f"{tmp_path / 'm.py'}:build", "--device", "cpu", "--count", "macs",
                 "--causal-attention", "halved", "--grad-accumulation", "2", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)["rules"]
    assert rules["count"] == "macs" and rules["causal_attention"] == "halved" and rules["grad_accumulation"] == 2
