from __future__ import annotations

import torch
import torch.nn.functional as F
from _helpers import cost, tm, trace

aten = torch.ops.aten
N, C = 32, 100


class CE(torch.nn.Module):
    def forward(self, x, y):
        return F.cross_entropy(x, y) + F.mse_loss(x, torch.zeros_like(x))


def test_cross_entropy_and_mse():
    ops = trace(
        CE,
        lambda: (torch.empty(N, C, requires_grad=True), torch.randint(0, C, (N,))),
        step=lambda m, x, y: m(x, y).backward(),
    )
    by_op = {r.op: r.cost for r in ops if r.cost is not None}
    fwd = by_op[aten.nll_loss_forward.default]
    assert fwd.flops == 32  # one add per target
    assert fwd.bytes_read == 32 * 8 + 32 * 4  # targets + the picked log-probs, not the N x C input
    bwd = by_op[aten.nll_loss_backward.default]
    assert bwd.flops == 32
    assert by_op[aten.mse_loss.default].flops == 3 * 32 * 100  # sub, square, add per input element
    assert by_op[aten.mse_loss_backward.default].flops == 3 * 32 * 100


def test_nll_loss_backward_bytes():
    c = cost(aten.nll_loss_backward, tm(), tm(N, C), tm(N, dtype="int64", itemsize=8), None, 1, -100, tm())
    assert c.bytes_read == 4 + 32 * 8 + 4  # grad, targets, total_weight; writes the full grad_input
