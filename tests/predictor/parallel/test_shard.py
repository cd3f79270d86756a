from __future__ import annotations

import pytest
import torch

from flopcast.features.config import AnalyzeConfig
from flopcast.predictor.parallel.plan import ParallelError
from flopcast.predictor.parallel.shard import ShardRecord, find_pairs, find_stack, tensor_parallel
from tests.predictor.parallel.conftest import GPT2, SEQ, gpt2_config, sharded

L, H, V = GPT2["n_layer"], GPT2["n_embd"], GPT2["vocab_size"]


def _gpt2_params(tp: int) -> int:
    """GPT-2's parameters on one of ``tp`` GPUs, counted by hand (Megatron's splits)."""
    per_layer = (
        2 * 2 * H  # ln_1, ln_2 (replicated)
        + H * 3 * H // tp + 3 * H // tp  # c_attn: columns split
        + H // tp * H + H  # attn c_proj: rows split, bias whole
        + H * 4 * H // tp + 4 * H // tp  # c_fc: columns split
        + 4 * H // tp * H + H  # mlp c_proj: rows split
    )
    return V // tp * H + GPT2["n_positions"] * H + L * per_layer + 2 * H  # wte (vocab split, tied head), wpe, ln_f


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_tensor_parallel_gpt2_holds_its_share_of_the_weights(tp):
    a, record = sharded(gpt2_config(2), tp)
    assert a.params == _gpt2_params(tp)
    if tp > 1:
        assert len(record.pairs) == 2 * L and record.vocab == ("transformer.wte", "lm_head")
        assert all(p.attention == (f"transformer.h.{i // 2}.attn",) for i, p in enumerate(record.pairs) if i % 2 == 0)


def test_tensor_parallel_splits_the_matmul_flops():
    a1, _ = sharded(gpt2_config(2), 1)
    a4, _ = sharded(gpt2_config(2), 4)
    mm = ("aten.addmm", "aten.mm", "aten.bmm")
    f1 = sum(o.flops for o in a1.ops if o.op.startswith(mm) and o.phase.value != "optimizer")
    f4 = sum(o.flops for o in a4.ops if o.op.startswith(mm) and o.phase.value != "optimizer")
    assert f4 == pytest.approx(f1 / 4, rel=0.01)  # every GEMM of a GPT-2 step is split (head included)


def test_the_mlp_pairs_its_two_linears(mlp_target):
    config = AnalyzeConfig(target=mlp_target, batch_size=4)
    a, record = sharded(config, 2)
    assert [(p.columns, p.row) for p in record.pairs] == [(("0",), "2")]
    assert a.params == 64 * 32 + 32 + 32 * 8 + 8  # Linear(64 -> 32), Linear(32 -> 8) with its whole bias
    assert record.calls["2"].out_shape == (4, 8) and record.calls["0"].in_requires_grad is False


def test_layer_names_find_megatron_pairs_in_llama_and_bert():
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        llama = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                             num_attention_heads=4, num_key_value_heads=2, vocab_size=100))
        bert = BertModel(BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                    num_attention_heads=4, vocab_size=100))
    assert [(c, r.rsplit(".", 1)[-1]) for c, r in find_pairs(llama)] == [
        (["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj"],
         "o_proj"),
        (["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"], "down_proj")]
    rows = [r for _, r in find_pairs(bert)]
    assert rows == ["encoder.layer.0.attention.output.dense", "encoder.layer.0.output.dense"]


@pytest.mark.parametrize(("tp", "message"), [(3, "does not divide the 4 heads"), (8, "does not divide")])
def test_a_degree_that_does_not_divide_heads_or_widths_is_one_line(tp, message):
    with pytest.raises(ParallelError, match=message) as e:
        sharded(gpt2_config(2), tp)
    assert "\n" not in str(e.value)


def test_a_model_without_linear_pairs_cannot_be_tensor_parallel():
    with torch.device("meta"):
        conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    with pytest.raises(ParallelError, match="pairs of linear layers"):
        tensor_parallel(conv, 2, ShardRecord())


def test_the_stack_is_the_container_holding_most_parameters(mlp_target):
    _, record = sharded(gpt2_config(2), 1)
    assert record.stack == ("transformer.h", L)
    assert set(record.units) == {"root", "layer 0", "layer 1"}
    assert sum(record.units.values()) == sum(p.bytes for p in record.params)
    _, mlp = sharded(AnalyzeConfig(target=mlp_target, batch_size=4), 1)
    assert mlp.stack == ("", 3)
    with torch.device("meta"):
        assert find_stack(torch.nn.Linear(4, 4)) is None


def test_stack_layer_calls_are_recorded_with_their_activation_shape():
    _, record = sharded(gpt2_config(3), 1)
    call = record.calls["transformer.h.0"]
    assert call.out_shape == (3, SEQ, H) and call.out_bytes == 3 * SEQ * H * 4
