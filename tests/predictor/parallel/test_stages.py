from __future__ import annotations

import math

import pytest

from flopcast.features.config import AnalyzeConfig
from flopcast.features.records import Phase
from flopcast.predictor.parallel.plan import ParallelError
from flopcast.predictor.parallel.stages import (
    FSDP_GATHERED_UNITS,
    fsdp_memory,
    fsdp_shard,
    layer_stages,
    split_stages,
    subset_optimizer_op,
)
from tests.predictor.parallel.conftest import GPT2, gpt2_config, sharded

L, H, V = GPT2["n_layer"], GPT2["n_embd"], GPT2["vocab_size"]


@pytest.mark.parametrize(("n", "pp", "expected"), [(36, 4, [0] * 9 + [1] * 9 + [2] * 9 + [3] * 9),
                                                  (3, 2, [0, 0, 1]), (5, 5, [0, 1, 2, 3, 4])])
def test_layers_split_evenly_earlier_stages_taking_the_extra(n, pp, expected):
    assert layer_stages(n, pp) == expected


@pytest.fixture(scope="module")
def gpt2_step():
    return sharded(gpt2_config(2, grad_clip=1.0, fused_optimizer=True), 1)


def test_every_forward_and_backward_op_lands_on_one_stage(gpt2_step):
    a, record = gpt2_step
    stages = split_stages(a, record, 2, micro_batches=4)
    work = [o for o in a.ops if o.phase != Phase.OPTIMIZER]
    assert sum(len([o for o in s.analysis.ops if o.phase != Phase.OPTIMIZER]) for s in stages) == len(work)
    assert sum(o.flops for s in stages for o in s.analysis.ops if o.phase != Phase.OPTIMIZER) == \
        sum(o.flops for o in work)
    first, last = stages
    assert first.boundary == "transformer.h.0" and last.boundary is None
    assert any(o.module == "transformer.wte" for o in first.analysis.ops)
    assert any(o.op.startswith("aten.nll_loss") for o in last.analysis.ops)  # the loss runs on the last stage


def test_stages_hold_their_layers_and_both_ends_the_tied_embedding(gpt2_step):
    a, record = gpt2_step
    first, last = split_stages(a, record, 2, micro_batches=1)
    held = [{p.name for p, k in zip(record.params, s.keep, strict=True) if k} for s in (first, last)]
    assert "transformer.wte.weight" in held[0] and "transformer.wte.weight" in held[1]
    assert "transformer.wpe.weight" in held[0] and "transformer.ln_f.weight" in held[1]
    assert not any(n.startswith("transformer.h.1.") for n in held[0])
    n0 = sum(1 for p, k in zip(record.params, first.keep, strict=True) if k and p.trainable)
    [adam] = [o for o in first.analysis.ops if o.op.startswith("aten._fused_adamw")]
    assert len(adam.inputs) == 5 * n0  # params, grads, exp_avg, exp_avg_sq, steps of the stage's parameters


def test_stage_memory_divides_the_whole_model_as_documented(gpt2_step):
    a, record = gpt2_step
    whole = a.memory.breakdown_bytes
    stages = split_stages(a, record, 2, micro_batches=4)
    param_bytes = sum(p.bytes for p in record.params)
    for s in stages:
        m = s.analysis.memory.breakdown_bytes
        own = sum(p.bytes for p, k in zip(record.params, s.keep, strict=True) if k)
        assert m["parameters"] == round(whole["parameters"] * own / param_bytes)
        assert m["inputs"] == (whole["inputs"] if s.index == 0 else 0)
        assert s.analysis.memory.peak_bytes == sum(m.values())
    # activations: the model's x the stage's share of forward bytes written x micro-batches in flight (1F1B:
    # min(K, p - s): 2 on stage 0, 1 on the last)
    fwd = sum(o.bytes_written for o in a.ops if o.phase == Phase.FORWARD)
    for s, in_flight in zip(stages, (2, 1), strict=True):
        share = sum(o.bytes_written for o in s.analysis.ops if o.phase == Phase.FORWARD) / fwd
        assert s.analysis.memory.breakdown_bytes["activations"] == round(whole["activations"] * share * in_flight)


def test_more_stages_than_layers_is_one_line(gpt2_step):
    a, record = gpt2_step
    with pytest.raises(ParallelError, match=f"3 pipeline stages but the layer stack transformer.h has only {L}"):
        split_stages(a, record, 3, micro_batches=1)


def test_fsdp_memory_is_the_unsharded_estimate_divided_by_dp_plus_two_gathered_units():
    breakdown = {"parameters": 800, "gradients": 800, "optimizer_state": 1600, "activations": 500,
                 "temporaries": 100, "inputs": 10, "buffers": 0}
    m = fsdp_memory(breakdown, 4, largest_unit_bytes=300)
    assert m == {"parameters": 200 + FSDP_GATHERED_UNITS * 300, "gradients": 200, "optimizer_state": 400,
                 "activations": 500, "temporaries": 100, "inputs": 10, "buffers": 0}


def test_fsdp_shards_the_optimizer_step(gpt2_step):
    a, record = gpt2_step
    dp = 4
    sharded_step = fsdp_shard(a, record.params, dp, max(record.units.values()))
    opt = [o for o in a.ops if o.phase == Phase.OPTIMIZER]
    opt4 = [o for o in sharded_step.ops if o.phase == Phase.OPTIMIZER]
    [adam], [adam4] = ([o for o in ops if o.op.startswith("aten._fused_adamw")] for ops in (opt, opt4))
    assert adam4.flops == pytest.approx(adam.flops / dp, rel=1e-3)
    assert all(t.shape == () or t.shape == (math.ceil(math.prod(u.shape) / dp),)
               for t, u in zip(adam4.inputs, adam.inputs, strict=True))
    assert sharded_step.memory.breakdown_bytes["optimizer_state"] == \
        math.ceil(a.memory.breakdown_bytes["optimizer_state"] / dp)


def test_an_optimizer_op_of_no_kept_parameter_goes(mlp_target):
    a, record = sharded(AnalyzeConfig(target=mlp_target, batch_size=4, optimizer="adamw"), 1)
    params = [p for p in record.params if p.trainable]
    op = next(o for o in a.ops if o.op.startswith("aten._foreach_mul_"))
    assert subset_optimizer_op(op, params, [False] * len(params)) is None
    half = subset_optimizer_op(op, params, [True, True, False, False])
    assert half.flops == pytest.approx(op.flops * (64 * 64 + 64) / 4680, rel=1e-3)
