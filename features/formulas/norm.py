"""Normalisation layers (layer, batch, group, RMS), forward and backward: FLOPs per input element."""

from __future__ import annotations

from flopcast.features.formulas._common import aten, optional_op
from flopcast.features.records import Category, OpCost
from flopcast.features.registry import Call, Formula, register_op_cost

#: Forward FLOPs per element for the statistics and normalisation: mean (add), variance (sub, square,
#: add), scale by rstd (mul).
NORM_FORWARD = 5
#: RMS norm forward per element: square-accumulate (2), scale by rstd (1).
RMS_FORWARD = 3
#: Extra forward FLOPs per element for the affine ``* weight (+ bias)``: 2 (RMS norm: 1, no bias).
AFFINE = 2
#: Backward FLOPs per element: recompute x_hat (2), g * w (1), two row sums (2), combine (3); the
#: weight/bias gradients' sums are inside this figure.
NORM_BACKWARD = 8
#: RMS norm backward per element.
RMS_BACKWARD = 6
#: Batch norm in eval mode: a folded per-channel scale and shift.
NORM_EVAL = 2


def _forward(stats: int, affine: int, weight_index: int, training_index: int | None = None) -> Formula:
    """Forward formula: ``stats`` (+ ``affine`` when a weight is given) FLOPs per input element."""

    def formula(call: Call) -> OpCost:
        n = call.args[0].numel
        if training_index is not None and not call.arg(training_index, "training", True):
            return OpCost(flops=NORM_EVAL * n)
        has_weight = call.arg(weight_index, "weight") is not None
        return OpCost(flops=(stats + (affine if has_weight else 0)) * n)

    formula.__doc__ = "Normalisation forward: FLOPs per element of the input (arg 0)."
    return formula


def _backward(per_element: int, elements_index: int = 0) -> Formula:
    """Backward formula: ``per_element`` FLOPs per element of the grad / input at ``elements_index``."""

    def formula(call: Call) -> OpCost:
        return OpCost(flops=per_element * call.args[elements_index].numel)

    formula.__doc__ = "Normalisation backward: FLOPs per element of grad_output."
    return formula


register_op_cost(aten.native_layer_norm, category=Category.NORM)(_forward(NORM_FORWARD, AFFINE, 2))
register_op_cost(aten.native_group_norm, category=Category.NORM)(_forward(NORM_FORWARD, AFFINE, 1))
# native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps)
register_op_cost(aten.native_batch_norm, aten._native_batch_norm_legit, category=Category.NORM)(
    _forward(NORM_FORWARD, AFFINE, 1, training_index=5)
)
register_op_cost(aten._native_batch_norm_legit_functional, category=Category.NORM)(
    _forward(NORM_FORWARD, AFFINE, 1, training_index=5)
)
register_op_cost(aten.cudnn_batch_norm, category=Category.NORM)(_forward(NORM_FORWARD, AFFINE, 1, 5))
register_op_cost(aten._native_batch_norm_legit_no_training, category=Category.NORM)(_forward(NORM_EVAL, 0, 1))
_WITH_UPDATE = optional_op("_batch_norm_with_update")
if _WITH_UPDATE is not None:
    register_op_cost(_WITH_UPDATE, category=Category.NORM)(_forward(NORM_FORWARD, AFFINE, 1))
    register_op_cost(aten._batch_norm_no_update, category=Category.NORM)(_forward(NORM_EVAL, 0, 1))
    register_op_cost(aten.batch_norm_backward, category=Category.NORM)(_backward(NORM_BACKWARD))

register_op_cost(
    aten.native_layer_norm_backward,
    aten.native_batch_norm_backward,
    aten.native_group_norm_backward,
    aten.cudnn_batch_norm_backward,
    category=Category.NORM,
)(_backward(NORM_BACKWARD))

_RMS = optional_op("_fused_rms_norm")
if _RMS is not None:
    register_op_cost(_RMS, category=Category.NORM)(_forward(RMS_FORWARD, 1, 2))
    register_op_cost(aten._fused_rms_norm_backward, category=Category.NORM)(_backward(RMS_BACKWARD))
