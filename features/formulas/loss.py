"""Loss functions, forward and backward: per-element losses and the gather-based NLL loss."""

from __future__ import annotations

from flopcast.features.formulas._common import aten, nbytes, register_table, self_numel
from flopcast.features.formulas.pointwise import TRANSCENDENTAL as T
from flopcast.features.records import Category, OpCost
from flopcast.features.registry import Call, register_op_cost

#: FLOPs per *input* element (the forward's output may be a reduced scalar): mse = sub, square, sum;
#: its backward = sub, scale 2/N, multiply by grad; smooth L1 / Huber add a compare and a select;
#: BCE takes two logs; BCE-with-logits a log-sigmoid (exp, log) and the weighting.
LOSS_FLOPS: dict[str, int] = {
    "mse_loss": 3,
    "mse_loss_backward": 3,
    "smooth_l1_loss": 5,
    "smooth_l1_loss_backward": 4,
    "huber_loss": 5,
    "huber_loss_backward": 4,
    "binary_cross_entropy": 2 * T + 5,
    "binary_cross_entropy_backward": 6,
    "binary_cross_entropy_with_logits": 2 * T + 6,
    "soft_margin_loss": 2 * T + 3,
    "soft_margin_loss_backward": T + 4,
}

# the backward's first argument is grad_output; count the elements of its input (arg 1) instead
register_table(
    {k: v for k, v in LOSS_FLOPS.items() if not k.endswith("backward")}, Category.OTHER, self_numel, variants=()
)
register_table({k: v for k, v in LOSS_FLOPS.items() if k.endswith("backward")}, Category.OTHER, variants=())


@register_op_cost(aten.nll_loss_forward, aten.nll_loss2d_forward, category=Category.OTHER)
def nll_loss_forward(call: Call) -> OpCost:
    """``nll_loss_forward(self, target, weight, ...)``: picks one log-prob per target and sums them.

    One add (two with class weights) per target; reads the targets and the picked elements only.
    """
    logp, target, weight = call.args[0], call.args[1], call.arg(2, "weight")
    picked = target.numel
    read = target.nbytes + picked * logp.itemsize_bytes + (picked * weight.itemsize_bytes if weight else 0)
    return OpCost(flops=picked * (2 if weight else 1), bytes_read=read)


@register_op_cost(aten.nll_loss_backward, aten.nll_loss2d_backward, category=Category.OTHER)
def nll_loss_backward(call: Call) -> OpCost:
    """``nll_loss_backward(grad_output, self, target, weight, ..., total_weight)``: zero-fill and scatter.

    One multiply per target; reads everything but ``self`` (only its shape matters), writes grad_input.
    """
    target = call.args[2]
    read = sum(m.nbytes for m in call.tensor_args()) - nbytes(call.args[1])
    return OpCost(flops=target.numel * (2 if call.arg(3, "weight") else 1), bytes_read=read)
