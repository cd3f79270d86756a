from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _helpers import tm, trace

aten = torch.ops.aten
N = 4 * 8 * 50


class Soft(torch.nn.Module):
    def forward(self, x):
        return F.softmax(x, -1) + F.log_softmax(x, -1)


@pytest.mark.parametrize(
    ("op", "flops"),
    [
        (aten._softmax.default, 8 * N),  # max, sub, exp (4), sum, div
        (aten._log_softmax.default, 8 * N),
        (aten._softmax_backward_data.default, 4 * N),  # g*y, row sum, sub, mul
        (aten._log_softmax_backward_data.default, 7 * N),  # exp (4), row sum, mul, sub
    ],
)
def test_softmax(op, flops):
    ops = trace(Soft, lambda: (torch.empty(4, 8, 50, requires_grad=True),))
    (c,) = [r.cost for r in ops if r.op is op]
    assert c.flops == flops
    assert c.bytes_read is None


def test_meta_helper():
    assert tm(2, 3).nbytes == 24
