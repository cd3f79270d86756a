from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _helpers import trace

aten = torch.ops.aten


class Pools(torch.nn.Module):
    def forward(self, x):
        y = F.max_pool2d(x, 2) + F.avg_pool2d(x, 2) + F.adaptive_avg_pool2d(x, 4)
        return F.interpolate(y, scale_factor=2, mode="bilinear") + F.interpolate(y, scale_factor=2)


OUT = 2 * 3 * 4 * 4  # pooled (2, 3, 4, 4)
UP = 2 * 3 * 8 * 8


@pytest.mark.parametrize(
    ("op", "flops"),
    [
        (aten.max_pool2d_with_indices.default, OUT * 4),  # 2x2 window per output
        (aten.max_pool2d_with_indices_backward.default, OUT),  # one add per grad element
        (aten.avg_pool2d.default, OUT * 4),
        (aten.avg_pool2d_backward.default, OUT * 4),
        (aten._adaptive_avg_pool2d.default, OUT * 4),  # 8 -> 4: window ceil(8 / 4) = 2 per dim
        (aten._adaptive_avg_pool2d_backward.default, OUT * 4),
        (aten.upsample_bilinear2d.default, UP * 7),  # 4 taps: 4 mul + 3 add
        (aten.upsample_bilinear2d_backward.default, UP * 8),
        (aten.upsample_nearest2d_backward.default, UP),
    ],
)
def test_pool_and_interpolate(op, flops):
    ops = trace(Pools, lambda: (torch.empty(2, 3, 8, 8, requires_grad=True),))
    (c,) = [r.cost for r in ops if r.op is op]
    assert c.flops == flops
