from __future__ import annotations

import pytest
import torch
from _helpers import cost, tm, trace

aten = torch.ops.aten
V, D, N = 1000, 64, 32


def test_embedding_forward_backward():
    ops = trace(lambda: torch.nn.Embedding(V, D), lambda: (torch.randint(0, V, (4, 8)),))
    (fwd,) = [r.cost for r in ops if r.op is aten.embedding.default]
    (bwd,) = [r.cost for r in ops if r.op is aten.embedding_dense_backward.default]
    assert fwd.flops == 0
    assert fwd.bytes_read == 4 * 8 * 64 * 4 + 4 * 8 * 8  # gathered rows + int64 indices, not the V x D table
    assert fwd.bytes_written == 4 * 8 * 64 * 4
    assert bwd.flops == 4 * 8 * 64  # one add per gathered element
    assert bwd.bytes_read == 4 * 8 * 64 * 4 + 4 * 8 * 8
    assert bwd.bytes_written == 1000 * 64 * 4  # the dense weight gradient


@pytest.mark.parametrize(
    ("mode", "fwd_flops", "bwd_flops"),
    [
        ("sum", 4 * 8 * 64, 4 * 8 * 64),
        ("mean", 4 * 8 * 64 + 4 * 64, 2 * 4 * 8 * 64),  # + one divide per output / per gathered element
    ],
)
def test_embedding_bag(mode, fwd_flops, bwd_flops):
    ops = trace(lambda: torch.nn.EmbeddingBag(V, D, mode=mode), lambda: (torch.randint(0, V, (4, 8)),))
    (fwd,) = [r for r in ops if r.op is aten._embedding_bag.default]
    (bwd,) = [r.cost for r in ops if r.op is aten._embedding_bag_backward.default]
    assert fwd.cost.flops == fwd_flops
    # gathered rows + indices (4*8 int64) + offsets (4 int64)
    assert fwd.cost.bytes_read == 4 * 8 * 64 * 4 + 4 * 8 * 8 + 4 * 8
    assert fwd.cost.bytes_written == sum(m.nbytes for m in fwd.call.outputs)
    assert bwd.flops == bwd_flops


def test_embedding_bag_per_sample_weights():
    args = (tm(V, D), tm(N, dtype="int64", itemsize=8), tm(4, dtype="int64", itemsize=8), False, 0, False, tm(N))
    c = cost(aten._embedding_bag, *args, outputs=(tm(4, D),))
    assert c.flops == 2 * 32 * 64  # multiply by the weight, add
    assert c.bytes_read == 32 * 64 * 4 + 32 * 8 + 4 * 8 + 32 * 4
