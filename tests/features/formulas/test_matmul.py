from __future__ import annotations

import pytest
import torch
from _helpers import cost, flop_counter_total, matmul_macs_total, tm, trace

aten = torch.ops.aten


@pytest.mark.parametrize(
    ("op", "args", "out", "kwargs", "flops", "macs"),
    [
        (aten.mm, (tm(64, 128), tm(128, 256)), tm(64, 256), {}, 2 * 64 * 128 * 256, 64 * 128 * 256),
        (aten.bmm, (tm(8, 16, 32), tm(8, 32, 24)), tm(8, 16, 24), {}, 2 * 8 * 16 * 32 * 24, 8 * 16 * 32 * 24),
        # Linear(128, 256) on (64, 128): bias add is one FLOP per output element
        (
            aten.addmm,
            (tm(256), tm(64, 128), tm(128, 256)),
            tm(64, 256),
            {},
            2 * 64 * 128 * 256 + 64 * 256,
            64 * 128 * 256,
        ),
        (
            aten.baddbmm,
            (tm(8, 16, 24), tm(8, 16, 32), tm(8, 32, 24)),
            tm(8, 16, 24),
            {},
            2 * 8 * 16 * 32 * 24 + 8 * 16 * 24,
            8 * 16 * 32 * 24,
        ),
        (
            aten.baddbmm,
            (tm(8, 16, 24), tm(8, 16, 32), tm(8, 32, 24)),
            tm(8, 16, 24),
            {"beta": 0},
            2 * 8 * 16 * 32 * 24,
            8 * 16 * 32 * 24,
        ),
        (aten.mv, (tm(64, 128), tm(128)), tm(64), {}, 2 * 64 * 128, 64 * 128),
        (aten.dot, (tm(128), tm(128)), tm(), {}, 2 * 128, 128),
    ],
)
def test_matmul_flops(op, args, out, kwargs, flops, macs):
    c = cost(op, *args, outputs=(out,), **kwargs)
    assert (c.flops, c.macs) == (flops, macs)
    assert c.bytes_read is None and c.bytes_written is None  # the tracer's sum of input/output sizes


def test_linear_trace_matches_flop_counter():
    def build():
        return torch.nn.Sequential(torch.nn.Linear(13, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))

    def inputs():
        return (torch.empty(4, 13),)

    ops = trace(build, inputs)
    addmm = [r for r in ops if r.op is aten.addmm.default]
    assert [r.cost.flops for r in addmm] == [2 * 4 * 13 * 64 + 4 * 64, 2 * 4 * 64 * 8 + 4 * 8]
    assert matmul_macs_total(ops) == flop_counter_total(build, inputs)


def test_bmm_trace_matches_flop_counter():
    class Bmm(torch.nn.Module):
        def forward(self, a, b):
            return torch.bmm(a, b) + torch.baddbmm(a[:, :, :4], a, b)

    def inputs():
        return (torch.empty(3, 4, 5, requires_grad=True), torch.empty(3, 5, 4, requires_grad=True))

    ops = trace(Bmm, inputs)
    assert matmul_macs_total(ops) == flop_counter_total(Bmm, inputs)
