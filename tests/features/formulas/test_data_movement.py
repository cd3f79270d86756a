from __future__ import annotations

import pytest
import torch
from _helpers import cost, tm

from flopcast.features.registry import lookup

aten = torch.ops.aten
X = tm(64, 128)
XB = 64 * 128 * 4


@pytest.mark.parametrize(
    "op",
    [
        aten.view,
        aten._unsafe_view,
        aten.t,
        aten.transpose,
        aten.permute,
        aten.expand,
        aten.slice,
        aten.select,
        aten.unsqueeze,
        aten.squeeze,
        aten.as_strided,
        aten.detach,
        aten.alias,
        aten.split,
        aten.empty_like,
        aten.empty_strided,
        torch.ops.prim.device,
        torch.ops.prim.layout,
    ],
)
def test_views_move_nothing(op):
    e = lookup(op)
    assert e.formula is None and e.moves_bytes is False


@pytest.mark.parametrize("op", [aten.clone, aten._to_copy, aten.cat, aten.stack, aten.where, aten.masked_fill])
def test_copies_move_bytes(op):
    e = lookup(op)
    assert e.formula is None and e.moves_bytes is True


@pytest.mark.parametrize(
    ("op", "args", "read", "written"),
    [
        (aten.zeros_like, (X,), 0, XB),  # write-only
        (aten.fill_, (X, 0.0), 0, XB),
        (aten.zero_, (X,), 0, XB),
        (aten.copy_, (X, tm(64, 128, dtype="bfloat16", itemsize=2)), 64 * 128 * 2, XB),  # read src, write dst
    ],
)
def test_write_only_and_overwrites(op, args, read, written):
    c = cost(op, *args, outputs=(X,))
    assert (c.flops, c.bytes_read, c.bytes_written) == (0, read, written)


def test_gathers_read_selected_rows_only():
    idx = tm(10, dtype="int64", itemsize=8)
    c = cost(aten.index_select, tm(1000, 128), 0, idx, outputs=(tm(10, 128),))
    assert (c.bytes_read, c.bytes_written) == (10 * 128 * 4 + 10 * 8, 10 * 128 * 4)
    c = cost(aten.index, tm(1000, 128), [idx], outputs=(tm(10, 128),))
    assert c.bytes_read == 10 * 128 * 4 + 10 * 8


def test_index_put_accumulate():
    idx, vals = tm(10, dtype="int64", itemsize=8), tm(10, 128)
    c = cost(aten.index_put_, tm(1000, 128), [idx], vals, True, outputs=(tm(1000, 128),))
    assert (c.flops, c.bytes_read, c.bytes_written) == (10 * 128, 10 * 8 + 10 * 128 * 4, 10 * 128 * 4)
