from __future__ import annotations

import pytest
import torch
from _helpers import cost, tm

from flopcast.features.formulas.pointwise import POINTWISE_FLOPS, TRANSCENDENTAL
from flopcast.features.trace_torch import trace_ops

aten = torch.ops.aten
X = tm(64, 128)


@pytest.mark.parametrize(
    ("op", "per"),
    [
        (aten.add, 1),
        (aten.mul, 1),
        (aten.sub, 1),
        (aten.div, 1),
        (aten.relu, 1),
        (aten.threshold_backward, 1),
        (aten.exp, TRANSCENDENTAL),
        (aten.tanh, 4),
        (aten.sigmoid, 4),
        (aten.gelu, 8),
        (aten.gelu_backward, 13),
        (aten.silu, 5),
        (aten.silu_backward, 9),
        (aten.sigmoid_backward, 3),
        (aten.tanh_backward, 3),
        (aten.native_dropout, 3),
        (aten.addcmul, 3),
        (aten.lerp, 3),
        (aten.floor_divide, 1),
    ],
)
def test_out_of_place(op, per):
    c = cost(op, X, X, outputs=(X,))
    assert c.flops == per * 64 * 128
    assert c.bytes_read is None and c.bytes_written is None
    assert POINTWISE_FLOPS[str(op).split(".")[-1]] == per


@pytest.mark.parametrize(
    ("op", "args", "flops", "read"),
    [
        (aten.add_, (X, X), 64 * 128, 2 * 64 * 128 * 4),  # reads self and other
        (aten.mul_, (X, 0.9), 64 * 128, 64 * 128 * 4),
        (aten.addcdiv_, (X, X, X), 3 * 64 * 128, 3 * 64 * 128 * 4),
        (aten.sigmoid_, (X,), 4 * 64 * 128, 64 * 128 * 4),
        (aten.bernoulli_, (X, 0.9), 2 * 64 * 128, 0),  # overwrites self without reading it
        (aten.floor_divide_, (X, X), 64 * 128, 2 * 64 * 128 * 4),
    ],
)
def test_in_place(op, args, flops, read):
    c = cost(op, *args, outputs=(X,))
    assert (c.flops, c.bytes_read, c.bytes_written) == (flops, read, 64 * 128 * 4)


def test_floor_divide_is_traced_and_costed():
    def build():
        x, y = torch.empty(64, 128), torch.empty(128)

        def run():
            x // y  # aten.floor_divide (Tensor)
            x // 3  # aten.floor_divide (Scalar)
            x.floor_divide_(y)  # in place

        return run

    records = [o for o in trace_ops(build) if "floor_divide" in o.op]
    assert [o.op for o in records] == ["aten.floor_divide", "aten.floor_divide", "aten.floor_divide_"]
    assert all(o.outcome.value == "formula" and o.flops == 64 * 128 for o in records)
