"""Zero-FLOP ops: views and metadata (no memory traffic), copies, write-only fills and gathers/scatters."""

from __future__ import annotations

import torch

from flopcast.features.formulas._common import aten, inplace_bytes, nbytes, self_numel
from flopcast.features.records import Category, OpCost
from flopcast.features.registry import Call, register_op_cost, register_zero_cost

_DM = Category.DATA_MOVEMENT


def _ops(*names: str) -> list[object]:
    """``aten`` packets of ``names``; every name must exist (typos fail at import)."""
    return [getattr(aten, n) for n in names]


# Views, aliases and metadata-only ops: they only create a new tensor header.
register_zero_cost(
    *_ops(
        "view",
        "_unsafe_view",
        "_reshape_alias",
        "reshape",
        "t",
        "t_",
        "transpose",
        "transpose_",
        "permute",
        "expand",
        "slice",
        "select",
        "unsqueeze",
        "unsqueeze_",
        "squeeze",
        "squeeze_",
        "as_strided",
        "as_strided_",
        "detach",
        "detach_",
        "alias",
        "lift_fresh",
        "split",
        "split_with_sizes",
        "unbind",
        "chunk",
        "narrow",
        "unsafe_split",
        "unsafe_split_with_sizes",
        "unsafe_chunk",
        "diagonal",
        "unfold",
        "view_as_real",
        "view_as_complex",
        "_conj",
        "_neg_view",
        "movedim",
        "set_",
        "resize_",
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "_local_scalar_dense",
    ),
    category=_DM,
    moves_bytes=False,
)
register_zero_cost(torch.ops.prim.device, torch.ops.prim.layout, category=_DM, moves_bytes=False)
# profiler ranges that nn modules open (record_function); they mark time, they do no work
register_zero_cost(
    torch.ops.profiler._record_function_enter_new,
    torch.ops.profiler._record_function_exit,
    category=Category.OTHER,
    moves_bytes=False,
)

# Copies: read the inputs, write the outputs, no arithmetic (the tracer's default bytes are right).
register_zero_cost(
    *_ops(
        "clone",
        "_to_copy",
        "contiguous",
        "lift_fresh_copy",
        "cat",
        "stack",
        "repeat",
        "roll",
        "flip",
        "constant_pad_nd",
        "reflection_pad1d",
        "reflection_pad2d",
        "reflection_pad3d",
        "replication_pad1d",
        "replication_pad2d",
        "replication_pad3d",
        "upsample_nearest1d",
        "upsample_nearest2d",
        "upsample_nearest3d",
        "_upsample_nearest_exact2d",
        "im2col",
        "pixel_shuffle",
        "pixel_unshuffle",
        "slice_backward",
        "select_backward",
        "slice_scatter",
        "select_scatter",
        "diagonal_backward",
        "as_strided_scatter",
        "tril",
        "triu",
        "where",
        "masked_fill",
        "scatter",
        "index_put",
        "view_copy",
        "expand_copy",
        "permute_copy",
        "transpose_copy",
        "t_copy",
        "unsqueeze_copy",
        "squeeze_copy",
        "masked_scatter",
    ),
    category=_DM,
    moves_bytes=True,
)


@register_op_cost(
    *_ops(
        "zeros",
        "ones",
        "full",
        "zeros_like",
        "ones_like",
        "full_like",
        "new_zeros",
        "new_ones",
        "new_full",
        "scalar_tensor",
        "arange",
        "linspace",
        "eye",
    ),
    category=_DM,
)
def write_only(call: Call) -> OpCost:
    """Factory fills: write the output, read nothing (a ``*_like`` input gives only its shape)."""
    return OpCost(flops=0, bytes_read=0, bytes_written=sum(m.nbytes for m in call.outputs))


@register_op_cost(*_ops("fill_", "zero_", "copy_", "masked_fill_", "tril_", "triu_", "index_fill_"), category=_DM)
def overwrite(call: Call) -> OpCost:
    """In-place overwrite of ``self`` (fill, zero, copy_ from ``src``): reads the other inputs only."""
    read, written = inplace_bytes(call, reads_self=False)
    return OpCost(flops=0, bytes_read=read, bytes_written=written)


@register_op_cost(*_ops("index_select", "gather", "index", "_unsafe_index", "take"), category=_DM)
def gather(call: Call) -> OpCost:
    """Gathers: read only the selected elements (= output bytes) and the indices, write the output."""
    out = sum(m.nbytes for m in call.outputs)
    index_bytes = sum(m.nbytes for m in call.tensor_args()) - nbytes(call.arg(0, "self"))
    return OpCost(flops=0, bytes_read=out + index_bytes, bytes_written=out)


def _source_numel(call: Call) -> int:
    """Elements of the source / values tensor: the last tensor argument."""
    tensors = call.tensor_args()
    return tensors[-1].numel if tensors else 0


@register_op_cost(*_ops("scatter_add", "index_add", "scatter_reduce", "index_reduce"), category=_DM)
def scatter_add(call: Call) -> OpCost:
    """Out-of-place scatter-accumulate: copy ``self``, then one add per source element."""
    return OpCost(flops=_source_numel(call))


@register_op_cost(*_ops("scatter_add_", "index_add_", "scatter_reduce_", "index_reduce_"), category=_DM)
def scatter_add_(call: Call) -> OpCost:
    """In-place scatter-accumulate: one add per source element; reads and writes the touched elements."""
    src = call.tensor_args()[-1]
    moved = src.nbytes
    return OpCost(
        flops=src.numel, bytes_read=2 * moved + sum(m.nbytes for m in call.tensor_args()[1:-1]), bytes_written=moved
    )


def _scatter_in_place(call: Call, accumulate: bool) -> OpCost:
    values = call.tensor_args()[-1]
    read = sum(m.nbytes for m in call.tensor_args()) - nbytes(call.arg(0, "self"))
    return OpCost(flops=values.numel if accumulate else 0, bytes_read=read, bytes_written=values.nbytes)


@register_op_cost(*_ops("scatter_", "index_copy_", "masked_scatter_"), category=_DM)
def scatter_(call: Call) -> OpCost:
    """In-place scatter: reads the indices and values, writes as many elements as there are values."""
    return _scatter_in_place(call, accumulate=False)


@register_op_cost(aten.index_put_, category=_DM)
def index_put_(call: Call) -> OpCost:
    """``self[indices] = values`` (``accumulate=True``: ``+=``, one add per value), bytes as a scatter."""
    return _scatter_in_place(call, accumulate=bool(call.arg(3, "accumulate", False)))


@register_op_cost(aten.col2im, category=_DM)
def col2im(call: Call) -> OpCost:
    """``fold``: sums overlapping patches back into the image, one add per column element."""
    return OpCost(flops=self_numel(call))


@register_op_cost(
    *_ops(
        "reflection_pad1d_backward",
        "reflection_pad2d_backward",
        "reflection_pad3d_backward",
        "replication_pad1d_backward",
        "replication_pad2d_backward",
        "replication_pad3d_backward",
    ),
    category=_DM,
)
def pad_backward(call: Call) -> OpCost:
    """Reflection / replication pad backward: folds each grad_output element back, one add per element."""
    return OpCost(flops=self_numel(call))
