"""Embedding lookups and bags, forward and backward: gathers that read only the rows they touch."""

from __future__ import annotations

from flopcast.features.formulas._common import aten, nbytes
from flopcast.features.records import Category, OpCost
from flopcast.features.registry import Call, Formula, register_op_cost

#: ``mode`` of ``_embedding_bag``.
BAG_SUM, BAG_MEAN, BAG_MAX = 0, 1, 2


@register_op_cost(aten.embedding, category=Category.EMBEDDING)
def embedding(call: Call) -> OpCost:
    """``embedding(weight, indices)``: 0 FLOPs; reads the gathered rows (= output bytes) and the indices."""
    out = call.outputs[0]
    return OpCost(flops=0, bytes_read=out.nbytes + call.args[1].nbytes, bytes_written=out.nbytes)


@register_op_cost(aten.embedding_dense_backward, category=Category.EMBEDDING)
def embedding_dense_backward(call: Call) -> OpCost:
    """``embedding_dense_backward(grad_output, indices, num_weights, ...)``: one add per gathered element.

    Reads grad_output and the indices; writes the dense ``num_weights x D`` gradient once.
    """
    grad = call.args[0]
    return OpCost(flops=grad.numel, bytes_read=grad.nbytes + call.args[1].nbytes, bytes_written=call.outputs[0].nbytes)


def _bag_row_width(call: Call) -> int:
    return call.outputs[0].shape[-1] if call.outputs else 0


@register_op_cost(aten._embedding_bag, aten._embedding_bag_forward_only, category=Category.EMBEDDING)
def embedding_bag(call: Call) -> OpCost:
    """``_embedding_bag(weight, indices, offsets, ..., mode, ..., per_sample_weights)``.

    One add (sum, mean) or compare (max) per gathered element, one multiply more with per-sample
    weights, one divide per output element for ``mean``. Reads the gathered rows, indices and offsets.
    """
    weight, indices, offsets = call.args[0], call.args[1], call.args[2]
    gathered = indices.numel * _bag_row_width(call)
    psw = call.arg(6, "per_sample_weights")
    flops = gathered * (2 if psw is not None else 1)
    if call.arg(4, "mode", BAG_SUM) == BAG_MEAN:
        flops += call.outputs[0].numel
    read = gathered * weight.itemsize_bytes + indices.nbytes + offsets.nbytes + nbytes(psw)
    return OpCost(flops=flops, bytes_read=read, bytes_written=sum(m.nbytes for m in call.outputs))


def _bag_backward(mode_index: int, psw_index: int) -> Formula:
    """Bag backward ``(grad, indices, ...)``: one add per gathered element into the dense weight gradient.

    ``mean`` adds a divide per gathered element and ``per_sample_weights`` a multiply.
    """

    def formula(call: Call) -> OpCost:
        grad, indices = call.args[0], call.args[1]
        gathered = indices.numel * grad.shape[-1]
        scaled = call.arg(mode_index, "mode", BAG_SUM) == BAG_MEAN or (
            call.arg(psw_index, "per_sample_weights") is not None
        )
        return OpCost(flops=gathered * (2 if scaled else 1))

    formula.__doc__ = _bag_backward.__doc__
    return formula


# _embedding_bag_backward(grad, indices, offsets, offset2bag, bag_size, max_indices, num_weights,
#                         scale_grad_by_freq, mode, sparse, per_sample_weights, padding_idx)
register_op_cost(aten._embedding_bag_backward, category=Category.EMBEDDING)(_bag_backward(8, 10))
# _embedding_bag_dense_backward(grad, indices, offset2bag, bag_size, max_indices, num_weights,
#                               scale_grad_by_freq, mode, per_sample_weights, padding_idx)
register_op_cost(aten._embedding_bag_dense_backward, category=Category.EMBEDDING)(_bag_backward(7, 8))


@register_op_cost(aten._embedding_bag_per_sample_weights_backward, category=Category.EMBEDDING)
def embedding_bag_per_sample_weights_backward(call: Call) -> OpCost:
    """Gradient of the per-sample weights ``(grad, weight, indices, ...)``: a dot product of width D per index."""
    return OpCost(flops=2 * call.args[2].numel * call.args[0].shape[-1])
