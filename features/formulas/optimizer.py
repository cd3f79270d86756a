"""Optimizer kernels: ``_foreach_*`` list ops (summed over the list) and fused Adam(W)/SGD steps.

The for-loop optimizers run plain element-wise ops (``add_``, ``lerp_``, ``addcdiv_``...) costed in
:mod:`pointwise`.
"""

from __future__ import annotations

from flopcast.features.formulas._common import aten, nbytes, numel, optional_op, per_element
from flopcast.features.formulas.pointwise import POINTWISE_FLOPS
from flopcast.features.formulas.reduction import REDUCTION_FLOPS
from flopcast.features.records import Category, OpCost
from flopcast.features.registry import Call, Formula, register_op_cost

#: FLOPs per parameter element of one Adam step: m = b1*m + (1-b1)*g (3), v = b2*v + (1-b2)*g*g (4),
#: denom = sqrt(v) / sqrt(bc2) + eps (3), p -= lr/bc1 * m / denom (3).
ADAM_FLOPS = 13
#: Extra FLOPs per element: decoupled decay p *= 1 - lr*wd (AdamW, 1); L2 decay g += wd*p (Adam, 2);
#: AMSGrad's running max (1).
ADAMW_DECAY, ADAM_L2_DECAY, AMSGRAD = 1, 2, 1
#: SGD per element: p -= lr * d (2); momentum buf = mu*buf + (1-dampening)*g (3); nesterov d = g + mu*buf (2);
#: weight decay g += wd*p (2).
SGD_STEP, SGD_MOMENTUM, SGD_NESTEROV, SGD_DECAY = 2, 3, 2, 2


def _foreach_names() -> dict[str, int]:
    """FLOPs per element of every ``_foreach_<op>`` that torch has for a costed element-wise/norm op."""
    table = {**POINTWISE_FLOPS, "norm": REDUCTION_FLOPS["norm"]}
    return {f"_foreach_{n}{s}": k for n, k in table.items() for s in ("", "_") if optional_op(f"_foreach_{n}{s}")}


FOREACH_FLOPS = _foreach_names()

for _name, _k in FOREACH_FLOPS.items():
    register_op_cost(getattr(aten, _name), category=Category.OPTIMIZER)(
        per_element(_k, lambda call: numel(call.arg(0, "self")), inplace=_name.endswith("_"))
    )


def _mutated_bytes(call: Call, lists: tuple[int, ...]) -> int:
    return sum(nbytes(call.args[i]) for i in lists if i < len(call.args))


def _fused_adam(decay_flops: int) -> Formula:
    def formula(call: Call) -> OpCost:
        per = ADAM_FLOPS + (AMSGRAD if call.kwargs.get("amsgrad") else 0)
        per += decay_flops if call.kwargs.get("weight_decay", 0) else 0
        read = sum(m.nbytes for m in call.tensor_args())
        written = _mutated_bytes(call, (0, 2, 3, 4))
        return OpCost(flops=per * numel(call.args[0]), bytes_read=read, bytes_written=written)

    formula.__doc__ = """Fused Adam(W) step ``(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, ...)``.

    Reads every list once; writes params and both moments (and the AMSGrad max).
    """
    return formula


register_op_cost(aten._fused_adam_, category=Category.OPTIMIZER)(_fused_adam(ADAM_L2_DECAY))
register_op_cost(aten._fused_adamw_, category=Category.OPTIMIZER)(_fused_adam(ADAMW_DECAY))


@register_op_cost(aten._fused_sgd_, category=Category.OPTIMIZER)
def fused_sgd(call: Call) -> OpCost:
    """``_fused_sgd_(params, grads, momentum_buffers, ...)``: reads all lists, writes params and buffers."""
    n = numel(call.args[0])
    per = SGD_STEP
    if call.kwargs.get("momentum", 0):
        per += SGD_MOMENTUM + (SGD_NESTEROV if call.kwargs.get("nesterov") else 0)
    if call.kwargs.get("weight_decay", 0):
        per += SGD_DECAY
    read = sum(m.nbytes for m in call.tensor_args())
    return OpCost(flops=per * n, bytes_read=read, bytes_written=_mutated_bytes(call, (0, 2)))


#: Gradient scaler (``torch.amp.GradScaler``), per gradient element: a finiteness check and a multiply
#: by the inverse scale. The scale update is a few scalar operations: compare the found-inf flag,
#: count or reset the growth tracker, multiply the scale.
AMP_UNSCALE_FLOPS, AMP_UPDATE_SCALE_FLOPS = 2, 3


@register_op_cost(aten._amp_foreach_non_finite_check_and_unscale_, category=Category.OPTIMIZER)
def amp_unscale(call: Call) -> OpCost:
    """``_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale)``: unscale in place.

    Reads every gradient, the flag and the inverse scale; writes the gradients back (the flag only when
    a non-finite value is found, which a steady-state step does not).
    """
    grads = call.arg(0, "self")
    read = sum(m.nbytes for m in call.tensor_args())
    return OpCost(flops=AMP_UNSCALE_FLOPS * numel(grads), bytes_read=read, bytes_written=nbytes(grads))


@register_op_cost(aten._amp_update_scale_, category=Category.OPTIMIZER)
def amp_update_scale(call: Call) -> OpCost:
    """``_amp_update_scale_(scale, growth_tracker, found_inf, ...)``: scalar update of scale and tracker."""
    read = sum(m.nbytes for m in call.tensor_args())
    return OpCost(flops=AMP_UPDATE_SCALE_FLOPS, bytes_read=read, bytes_written=_mutated_bytes(call, (0, 1)))
