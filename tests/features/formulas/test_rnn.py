from __future__ import annotations

import pytest
import torch
from _helpers import cost, tm, trace

from flopcast.features.formulas.rnn import GRU, LSTM

aten = torch.ops.aten
T, B, IN, H = 6, 2, 16, 32


def forward_only(model, x):
    model(x)


def test_lstm_layer_on_cpu():
    ops = trace(lambda: torch.nn.LSTM(IN, H, batch_first=True), lambda: (torch.empty(B, T, IN, requires_grad=True),))
    (fwd,) = [r for r in ops if r.op is aten.mkldnn_rnn_layer.default]
    (bwd,) = [r for r in ops if r.op is aten.mkldnn_rnn_layer_backward.default]
    assert fwd.call.args[9] == LSTM
    macs = 6 * 2 * (4 * 32 * 16 + 4 * 32 * 32)  # every token meets W_ih (4H x IN) and W_hh (4H x H)
    gates = 6 * 2 * 32 * (24 + 4 * 3)  # per unit: gate maths 24 + (ih + hh + 2 biases) sums for 4 gates
    assert (fwd.cost.macs, fwd.cost.flops) == (macs, 2 * macs + gates)
    assert (bwd.cost.macs, bwd.cost.flops) == (2 * macs, 2 * (2 * macs + gates))


def test_gru_decomposes_into_costed_matmuls():
    ops = trace(lambda: torch.nn.GRU(IN, H), lambda: (torch.empty(T, B, IN),), step=forward_only)
    assert all(r.registered for r in ops), [str(r.op) for r in ops if not r.registered]
    assert sum(r.cost.macs for r in ops if r.cost) == 6 * 2 * 3 * 32 * (16 + 32)  # T*B*3H*(IN + H)


def test_lstm_cell_decomposes_into_costed_ops():
    ops = trace(lambda: torch.nn.LSTMCell(IN, H), lambda: (torch.empty(B, IN),), step=forward_only)
    assert all(r.registered for r in ops)
    assert sum(r.cost.macs for r in ops if r.cost) == 2 * 4 * 32 * (16 + 32)  # B*4H*(IN + H)


@pytest.mark.parametrize(
    ("op", "args", "flops"),
    [
        (
            aten._thnn_fused_lstm_cell,
            (tm(B, 4 * H), tm(B, 4 * H), tm(B, H), tm(4 * H), tm(4 * H)),
            2 * 32 * (24 + 4 * 3),
        ),
        (aten._thnn_fused_gru_cell, (tm(B, 3 * H), tm(B, 3 * H), tm(B, H), None, None), 2 * 32 * (17 + 3 * 1)),
        (aten._thnn_fused_gru_cell_backward, (tm(B, H), tm(B, 5 * H), True), 2 * (2 * 32 * (17 + 3 * 3))),
    ],
)
def test_fused_cells(op, args, flops):
    assert cost(op, *args).flops == flops


def test_cudnn_rnn_two_layers():
    w = [tm(3 * H, IN), tm(3 * H, H), tm(3 * H), tm(3 * H), tm(3 * H, H), tm(3 * H, H), tm(3 * H), tm(3 * H)]
    args = (tm(T, B, IN), w, 4, None, tm(2, B, H), None, GRU, H, 0, 2, False, 0.0, True, False, [], None)
    c = cost(aten._cudnn_rnn, *args)
    macs = 6 * 2 * (3 * 32 * 16 + 3 * 32 * 32 + 2 * 3 * 32 * 32)
    assert (c.macs, c.flops) == (macs, 2 * macs + 6 * 2 * 32 * 2 * (17 + 3 * 3))
