"""Collective byte counts of each strategy against hand counts, for the MLP and a GPT-2 config."""

from __future__ import annotations

import pytest

from flopcast.features.config import AnalyzeConfig
from flopcast.predictor.parallel.plan import ParallelPlan
from flopcast.predictor.parallel.shard import Param
from flopcast.predictor.parallel.traffic import (
    BUCKET_CAP_BYTES,
    FIRST_BUCKET_BYTES,
    ddp_buckets,
    ddp_collectives,
    embedding_collectives,
    fsdp_collectives,
    pipeline_collectives,
    tensor_parallel_collectives,
)
from tests.predictor.parallel.conftest import GPT2, SEQ, gpt2_config, sharded

L, H, V = GPT2["n_layer"], GPT2["n_embd"], GPT2["vocab_size"]
MLP_GRAD_BYTES = (64 * 64 + 64 + 64 * 8 + 8) * 4  # 4680 fp32 parameters


def _group(kind, text, gpus, nodes=1):
    return ParallelPlan.parse(text, gpus, nodes).group(kind)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_ddp_ring_all_reduce_sends_2_n_minus_1_over_n_of_the_gradients(mlp_target, n):
    _, record = sharded(AnalyzeConfig(target=mlp_target, batch_size=8), 1)
    cs = ddp_collectives(ddp_buckets([p for p in record.params if p.trainable]), _group("dp", "dp", n))
    assert [c.op for c in cs] == ["all_reduce"] and cs[0].bytes == MLP_GRAD_BYTES
    assert cs[0].bytes_per_gpu == pytest.approx(2 * (n - 1) / n * MLP_GRAD_BYTES)


def test_ddp_gpt2_gradients_all_go_through_the_buckets():
    a, record = sharded(gpt2_config(2), 1)
    cs = ddp_collectives(ddp_buckets([p for p in record.params if p.trainable]), _group("dp", "dp", 4))
    assert sum(c.bytes for c in cs) == 4 * a.params  # every fp32 gradient once, the tied embedding once
    assert sum(c.bytes_per_gpu for c in cs) == pytest.approx(2 * 3 / 4 * 4 * a.params)


def test_buckets_close_at_1_mib_then_25_mib_as_ddp_assigns_them():
    mib = 1024 * 1024
    params = [Param(f"p{i}", f"m{i}", n // 4, 4, True) for i, n in enumerate([mib // 2, mib, 20 * mib, 10 * mib, mib])]
    buckets = ddp_buckets(params)
    assert [sum(p.bytes for p in b) for b in buckets] == [mib // 2 + mib, 30 * mib, mib]
    assert (mib, 25 * mib) == (FIRST_BUCKET_BYTES, BUCKET_CAP_BYTES)


def test_tensor_parallel_mlp_all_reduces_its_output_only(mlp_target):
    _, record = sharded(AnalyzeConfig(target=mlp_target, batch_size=8), 2)
    cs = tensor_parallel_collectives(record, _group("tp", "tp", 2), train=True, micro_batches=1)
    # forward: the row-parallel Linear's output (8 x 8 fp32); backward: none, the input needs no gradient
    assert [(c.op, c.phase, c.bytes, c.count) for c in cs] == [("all_reduce", "forward", 8 * 8 * 4, 1)]


@pytest.mark.parametrize("tp", [2, 4])
def test_tensor_parallel_gpt2_hand_count(tp):
    b = 2
    _, record = sharded(gpt2_config(b), tp)
    cs = tensor_parallel_collectives(record, _group("tp", "tp", tp), train=True, micro_batches=3)
    activation = b * SEQ * H * 4
    big = [c for c in cs if c.bytes == activation]
    # per micro-batch: forward 2L row outputs + the embedding; backward 2L column inputs + the LM head's input
    assert sum(c.count for c in big if c.phase == "forward") == 3 * (2 * L + 1)
    assert sum(c.count for c in big if c.phase == "backward") == 3 * (2 * L + 1)
    small = [c for c in cs if c.bytes != activation]
    assert [(c.bytes, c.count) for c in small] == [(b * SEQ * 4, 3 * 3)]  # cross-entropy: 3 floats per token
    assert all(c.group == tp and c.op == "all_reduce" and not c.overlapped for c in cs)


def test_fsdp_gathers_parameters_twice_and_scatters_gradients_once():
    a, record = sharded(gpt2_config(2), 1)
    cs = fsdp_collectives(record.units, _group("dp", "fsdp", 4), train=True)
    total = 4 * a.params
    gathered = sum(c.bytes for c in cs if c.op == "all_gather")
    assert gathered == 2 * total - record.units["root"]  # the root unit keeps its parameters after the forward
    assert sum(c.bytes for c in cs if c.op == "reduce_scatter") == total
    assert sum(c.bytes_per_gpu for c in cs if c.op == "reduce_scatter") == pytest.approx(3 / 4 * total)
    infer = fsdp_collectives(record.units, _group("dp", "fsdp", 4), train=False)
    assert sum(c.bytes for c in infer) == total and {c.op for c in infer} == {"all_gather"}


def test_pipeline_sends_the_stage_output_and_its_gradient_per_micro_batch(mlp_target):
    b = 2
    _, record = sharded(gpt2_config(b), 1)
    cs = pipeline_collectives(record, "transformer.h.0", _group("pp", "pp", 2), train=True, micro_batches=4)
    assert [(c.op, c.phase, c.bytes, c.count) for c in cs] == [
        ("send_recv", "forward", b * SEQ * H * 4, 4), ("send_recv", "backward", b * SEQ * H * 4, 4)]
    _, mlp = sharded(AnalyzeConfig(target=mlp_target, batch_size=8), 1)
    [fwd, _] = pipeline_collectives(mlp, "1", _group("pp", "pp", 2), train=True, micro_batches=1)
    assert fwd.bytes == 8 * 64 * 4  # the ReLU's output


def test_a_tied_embedding_on_two_stages_is_all_reduced_between_them():
    _, record = sharded(gpt2_config(2), 1)
    shared = [p.name == "transformer.wte.weight" for p in record.params]
    [c] = embedding_collectives(record.params, shared, _group("pp", "pp", 2))
    assert (c.op, c.group, c.bytes, c.phase) == ("all_reduce", 2, V * H * 4, "step")
