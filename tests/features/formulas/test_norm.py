from __future__ import annotations

import pytest
import torch
from _helpers import cost, tm, trace

aten = torch.ops.aten
N = 8 * 16 * 10 * 10  # elements of a (8, 16, 10, 10) activation


@pytest.mark.parametrize(
    ("build", "fwd_op", "bwd_op"),
    [
        (lambda: torch.nn.LayerNorm(10), aten.native_layer_norm.default, aten.native_layer_norm_backward.default),
        (lambda: torch.nn.BatchNorm2d(16), aten.native_batch_norm.default, aten.native_batch_norm_backward.default),
        (lambda: torch.nn.GroupNorm(4, 16), aten.native_group_norm.default, aten.native_group_norm_backward.default),
    ],
)
def test_norm_forward_backward(build, fwd_op, bwd_op):
    ops = trace(build, lambda: (torch.empty(8, 16, 10, 10, requires_grad=True),))
    (fwd,) = [r.cost for r in ops if r.op is fwd_op]
    (bwd,) = [r.cost for r in ops if r.op is bwd_op]
    assert fwd.flops == (5 + 2) * N  # statistics + normalise 5, affine 2 per element
    assert bwd.flops == 8 * N
    assert fwd.bytes_read is None and bwd.bytes_read is None


def test_batch_norm_eval_and_no_affine():
    x = tm(8, 16, 10, 10)
    assert cost(aten.native_batch_norm, x, tm(16), tm(16), tm(16), tm(16), False, 0.1, 1e-5).flops == 2 * N
    assert cost(aten.native_layer_norm, x, [10], None, None, 1e-5).flops == 5 * N


def test_rms_norm():
    x = tm(4, 32, 64)
    assert cost(aten._fused_rms_norm, x, [64], tm(64), 1e-6).flops == (3 + 1) * 4 * 32 * 64
    assert cost(aten._fused_rms_norm_backward, x, x, [64], tm(4, 32, 1), tm(64), [True, True]).flops == 6 * 4 * 32 * 64
