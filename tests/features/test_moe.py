"""Mixture of experts: only the routed top-k experts per token count, under a stated routing assumption."""

from __future__ import annotations

import json

import pytest

from flopcast.features.api import analyze_config
from flopcast.features.config import AnalyzeConfig
from flopcast.features.errors import OptionError
from flopcast.features.moe import hit_experts, read_expert_load, routed_counts
from flopcast.features.rules import DEFAULT_RULES, CountingRules
from flopcast.predictor.main import main

pytest.importorskip("transformers")

T, H, INTER, E, K = 16, 64, 128, 4, 2
MIXTRAL = {"num_hidden_layers": 2, "hidden_size": H, "intermediate_size": INTER, "num_attention_heads": 4,
           "num_key_value_heads": 2, "vocab_size": 1000, "num_local_experts": E, "num_experts_per_tok": K}


def _mixtral(rules: CountingRules = DEFAULT_RULES, mode: str = "infer"):
    return analyze_config(AnalyzeConfig(
        target="hf:mixtral", hf_overrides=tuple(f"{k}={v}" for k, v in MIXTRAL.items()), seq_len=T, batch_size=1,
        mode=mode, device="cpu", optimizer="none" if mode == "infer" else "adamw", rules=rules))


def _expert_ops(a, phase="forward"):
    return [o for o in a.ops if ".experts" in o.module and o.category.value == "matmul" and o.phase.value == phase]


def test_mixtral_counts_k_of_e_experts_per_token():
    a = _mixtral()
    experts = _expert_ops(a)
    assert len(experts) == 2 * 2  # per layer one grouped product for gate+up and one for down
    # per layer, each of the T tokens runs K experts: gate+up (H -> 2 INTER) and down (INTER -> H)
    per_layer = 2 * T * K * (H * 2 * INTER) + 2 * T * K * (INTER * H)
    assert sum(o.flops for o in experts) == 2 * per_layer
    assert sum(o.flops for o in experts) * E // K != 2 * per_layer  # not every expert


def test_training_an_moe_traces_its_backward():
    a = _mixtral(mode="train")
    assert not a.unsupported_ops
    assert sum(o.flops for o in _expert_ops(a, "backward")) == 2 * sum(o.flops for o in _expert_ops(a))


def test_routing_sets_the_expert_weights_read():
    weight = E * H * 2 * INTER * 4  # the gate+up weights of all experts, fp32
    uniform = _expert_ops(_mixtral())[0]
    tokens_in = T * K * H * 4
    # T = 16 tokens each picking 2 of 4 experts uniformly hit all of them (1 - (1/2)^16 short of 4)
    offs = E * 4  # the int32 group offsets
    assert uniform.bytes_read == round(tokens_in + offs + weight * hit_experts(K, T, [1 / E] * E) / E)
    assert hit_experts(K, 1, [1 / E] * E) == pytest.approx(K)  # one token reads exactly its k experts
    assert hit_experts(K, T, [1.0, 0.0, 0.0, 0.0]) == pytest.approx(1.0)


def test_expert_load_file_is_stated_and_used(tmp_path):
    path = tmp_path / "load.json"
    path.write_text(json.dumps([9, 1, 0, 0]))
    a = _mixtral(CountingRules(expert_load=str(path)))
    assert a.to_dict()["rules"]["moe_routing"] == "measured" and a.to_dict()["rules"]["expert_load"] == str(path)
    assert _expert_ops(a)[0].bytes_read < _expert_ops(_mixtral())[0].bytes_read
    assert sum(o.flops for o in _expert_ops(a)) == sum(o.flops for o in _expert_ops(_mixtral()))


def test_switch_top1_runs_each_token_through_one_expert():
    sets = {"num_layers": 2, "num_decoder_layers": 2, "d_model": H, "d_ff": INTER, "num_heads": 4, "d_kv": 16,
            "num_experts": E, "vocab_size": 1000, "encoder_sparse_step": 1, "decoder_sparse_step": 1}
    a = analyze_config(AnalyzeConfig(target="hf:switch_transformers", hf_overrides=tuple(f"{k}={v}" for k, v in
                                                                                        sets.items()),
                                     seq_len=T, mode="infer", device="cpu", optimizer="none"))
    experts = [o for o in a.ops if ".experts.expert_" in o.module and o.category.value == "matmul"]
    layers = {o.module.rsplit(".experts.", 1)[0] for o in experts}
    # every sparse layer: its T tokens split over the experts (T / E each, uniform), wi (H -> INTER) and wo back
    assert sum(o.flops for o in experts) == len(layers) * 2 * (2 * T * H * INTER)
    assert not a.unsupported_ops


@pytest.mark.parametrize(("rows", "shares"), [(32, [0.25] * 4), (7, [0.5, 0.3, 0.2]), (3, [1 / 3] * 3)])
def test_routed_counts_sum_to_the_routed_rows(rows, shares):
    counts = routed_counts(rows, shares)
    assert sum(counts) == rows and all(abs(c - rows * p) < 1 for c, p in zip(counts, shares, strict=True))


@pytest.mark.parametrize("content", ["[]", "[-1, 2]", "[0, 0]", "{\"a\": 1}", "not json"])
def test_bad_expert_load_files_are_refused(tmp_path, content):
    path = tmp_path / "load.json"
    path.write_text(content)
    with pytest.raises(OptionError, match="--expert-load"):
        read_expert_load(str(path))


def test_expert_load_of_the_wrong_length_is_one_line(tmp_path, capsys):
    path = tmp_path / "load.json"
    path.write_text("[1, 2, 3]")
    code = main(["analyze", "hf:mixtral", *[x for k, v in MIXTRAL.items() for x in ("--set", f"{k}={v}")],
                 "--seq-len", str(T), "--mode", "infer", "--device", "cpu", "--expert-load", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--expert-load lists 3 experts, the MoE layer has 4" in err[0], err
