from __future__ import annotations

import pytest
import torch
from _helpers import cost, tm

aten = torch.ops.aten
X = tm(16, 64)


@pytest.mark.parametrize(
    ("op", "args", "flops"),
    [
        (aten.sum, (X, [1]), 16 * 64),  # one add per input element
        (aten.mean, (X,), 16 * 64),
        (aten.amax, (X, [1]), 16 * 64),
        (aten.var, (X, [1]), 3 * 16 * 64),  # sub, square, add
        (aten.linalg_vector_norm, (X,), 2 * 16 * 64),
        (aten.sort, (X, -1), 16 * 64 * 6),  # log2(64)
        (aten.topk, (X, 3), 16 * 64 * 2),  # ceil(log2(4))
    ],
)
def test_reductions(op, args, flops):
    assert cost(op, *args, outputs=(tm(16),)).flops == flops
