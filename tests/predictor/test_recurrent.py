"""Fused RNN ops are costed as the kernels they run: FLOPs kept, serial steps counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from torch import nn

from flopcast.features.api import analyze
from flopcast.features.table import ops_table
from flopcast.predictor.compose import compose
from flopcast.predictor.featurize import base_op_name, is_free
from flopcast.predictor.recurrent import (
    FUSED_RNN_OPS,
    INNER_KERNEL_FLOOR_S,
    expand_recurrent,
    inner_kernel_time_s,
    recurrent_layers,
)
from tests.predictor.test_predict import GPU

IN, H = 24, 32


class Recurrent(nn.Module):
    def __init__(self, cls: type[nn.Module], layers: int, bidirectional: bool) -> None:
        super().__init__()
        self.rnn = cls(IN, H, layers, batch_first=True, bidirectional=bidirectional)

    def forward(self, x):
        return self.rnn(x)[0]


def _ops(cls, device: str, steps: int, batch: int, layers: int = 1, bidirectional: bool = False, mode="train"):
    a = analyze(lambda: Recurrent(cls, layers, bidirectional), [f"float32[B,{steps},{IN}]"], batch_size=batch,
                mode=mode, device=device, optimizer="sgd" if mode == "train" else "none")
    t = ops_table(a.ops)
    return t[~is_free(t)]


def _fused(ops):
    return ops[ops["op"].map(base_op_name).isin(FUSED_RNN_OPS)]


# A CPU step runs LSTMs as oneDNN layers and GRUs already as per-step kernels; a CUDA step fuses both.
@pytest.mark.parametrize(("device", "cls"), [("cpu", nn.LSTM), ("cuda", nn.LSTM), ("cuda", nn.GRU)])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True)])
def test_kernels_carry_the_fused_ops_flops(device, cls, layers, bidirectional):
    ops = _ops(cls, device, steps=7, batch=3, layers=layers, bidirectional=bidirectional)
    fused = _fused(ops)
    assert len(fused), "the trace holds fused RNN ops"
    kernels = expand_recurrent(fused)
    assert (kernels["flops"] * kernels["repeat"]).sum() == pytest.approx(fused["flops"].sum(), rel=0.01)
    assert set(kernels["category"]) == {"matmul", "elementwise"}
    assert set(kernels["repeat"]) == {1, 7}


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_layers_steps_and_batch_read_from_shapes(device):
    fused = _fused(_ops(nn.LSTM, device, steps=5, batch=4, layers=2, bidirectional=True, mode="infer"))
    layers = [x for _, r in fused.iterrows()
              for x in recurrent_layers(base_op_name(r["op"]), json.loads(r["input_shapes"]),
                                       json.loads(r["output_shapes"]))]
    if device == "cpu":  # oneDNN: one op per layer and direction
        assert len(layers) == 4 and {x.directions for x in layers} == {1}
        assert sorted(x.input_size for x in layers) == [IN, IN, 2 * H, 2 * H]
    else:  # cuDNN: one call over both layers; each layer's two directions run together
        assert len(layers) == 2 and {x.directions for x in layers} == {2}
        assert [x.input_size for x in layers] == [IN, 2 * H]
    assert {(x.steps, x.batch, x.hidden, x.gates) for x in layers} == {(5, 4, H, 4)}


def test_other_rows_are_untouched():
    ops = _ops(nn.GRU, "cuda", steps=3, batch=2)
    rest = ops[~ops.index.isin(_fused(ops).index)]
    out = expand_recurrent(rest)
    assert (out["repeat"] == 1).all() and not out["inner"].any()
    assert out.drop(columns=["repeat", "inner"]).equals(rest)


def test_unreadable_shapes_keep_the_fused_row():
    fused = _fused(_ops(nn.LSTM, "cpu", steps=3, batch=2, mode="infer")).copy()
    fused["input_shapes"] = json.dumps([[6, 24]])
    out = expand_recurrent(fused)
    assert len(out) == len(fused) and (out["repeat"] == 1).all()


def test_a_longer_sequence_costs_more_at_equal_flops(model):
    """T steps of B rows run serially: 64 x 2 is slower than 2 x 64 though both do the same work."""
    long_seq, wide_batch = _ops(nn.LSTM, "cuda", steps=64, batch=2), _ops(nn.LSTM, "cuda", steps=2, batch=64)
    assert _fused(long_seq)["flops"].sum() == pytest.approx(_fused(wide_batch)["flops"].sum(), rel=0.02)
    slow, fast = compose(model, long_seq, GPU, "fp32"), compose(model, wide_batch, GPU, "fp32")
    assert slow.ops_s > 5 * fast.ops_s
    assert slow.n_ops > 10 * fast.n_ops and "rnn" not in slow.fallback  # no roofline guess for the fused op


def test_inner_kernels_pay_the_device_floor_not_the_framework_overhead():
    overhead = 10e-6
    q = np.array([[11e-6, 12e-6, 14e-6], [1e-3, 1.1e-3, 1.3e-3], [1e-6, 2e-6, 3e-6]])
    roof = np.array([1e-7, 0.9e-3, 1e-7])
    t = inner_kernel_time_s(q, roof, overhead, "gpu")
    floor = INNER_KERNEL_FLOOR_S["gpu"]
    assert t[0] == pytest.approx([1e-6 + floor, 2e-6 + floor, 4e-6 + floor])  # launch-bound: overhead removed
    assert t[1] == pytest.approx(q[1] - overhead + floor)  # large kernel: barely changed
    assert (t <= q).all() and (t[2] == q[2]).all()  # never slower than predicted as a framework op
