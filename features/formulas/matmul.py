"""Matrix products: mm, addmm, bmm, baddbmm, addbmm, mv, dot; FLOPs = 2 x MACs (+ the bias add)."""

from __future__ import annotations

from flopcast.features.formulas._common import aten, optional_op
from flopcast.features.formulas.pointwise import POINTWISE_FLOPS
from flopcast.features.records import Category, OpCost, TensorMeta
from flopcast.features.registry import Call, register_op_cost


def product_macs(a: TensorMeta, b: TensorMeta) -> int:
    """Multiply-accumulates of ``a @ b`` (batched or not): every element of ``a`` meets each column of ``b``.

    ``(m, k) @ (k, n)`` -> m*k*n; ``(B, m, k) @ (B, k, n)`` -> B*m*k*n; ``(m, k) @ (k,)`` -> m*k.
    """
    return a.numel * (b.shape[-1] if len(b.shape) >= 2 else 1)


def _bias_flops(call: Call) -> int:
    """One add per output element for the ``beta * self`` term, unless ``beta`` is 0."""
    return 0 if call.kwargs.get("beta", 1) == 0 or not call.outputs else call.outputs[0].numel


@register_op_cost(aten.mm, aten.bmm, aten.mv, aten.dot, aten.vdot, category=Category.MATMUL)
def matmul(call: Call) -> OpCost:
    """``a @ b``: 2 FLOPs per multiply-accumulate."""
    macs = product_macs(call.args[0], call.args[1])
    return OpCost(flops=2 * macs, macs=macs)


@register_op_cost(aten.addmm, aten.baddbmm, aten.addbmm, aten.addmv, category=Category.MATMUL)
def add_matmul(call: Call) -> OpCost:
    """``beta * self + alpha * (a @ b)``: the product plus one add per output element."""
    macs = product_macs(call.args[1], call.args[2])
    return OpCost(flops=2 * macs + _bias_flops(call), macs=macs)


@register_op_cost(aten._addmm_activation, category=Category.MATMUL)
def addmm_activation(call: Call) -> OpCost:
    """CuBLASLt ``addmm`` fused with ReLU or GELU: addmm plus the activation per output element."""
    act = POINTWISE_FLOPS["gelu" if call.kwargs.get("use_gelu", False) else "relu"]
    base = add_matmul(call)
    return OpCost(flops=base.flops + act * call.outputs[0].numel, macs=base.macs)


_SCALED_MM = optional_op("_scaled_mm")
if _SCALED_MM is not None:

    @register_op_cost(_SCALED_MM, category=Category.MATMUL)
    def scaled_mm(call: Call) -> OpCost:
        """FP8 ``_scaled_mm``: the product; the per-tensor scales are folded into the epilogue."""
        return matmul(call)


_GROUPED_MM = optional_op("_grouped_mm")
if _GROUPED_MM is not None:

    @register_op_cost(_GROUPED_MM, category=Category.MATMUL)
    def grouped_mm(call: Call) -> OpCost:
        """``_grouped_mm(a, b, offs)``: one product per group (an MoE layer's experts), 2 FLOPs per MAC.

        ``(S, K) x (E, K, N) -> (S, N)`` with row groups (``offs``): each of the S routed token rows meets one
        expert's ``K x N`` weight, S*K*N MACs, whatever the routing; ``(E, M, K) x (E, K, N)``: E*M*K*N;
        ``(K, S) x (S, N) -> (E, K, N)`` (a weight gradient over row groups): K*S*N. The bytes read charge every
        group's weight, an upper bound that the MoE routing assumption lowers to the experts a step hits
        (:mod:`flopcast.features.moe`).
        """
        a, b = call.args[0], call.args[1]
        out = call.outputs[0]
        macs = a.shape[0] * a.shape[1] * b.shape[1] if len(a.shape) == 2 and len(b.shape) == 2 else \
            out.numel * a.shape[-1]
        bias = 0 if call.arg(3, "bias") is None else out.numel
        return OpCost(flops=2 * macs + bias, macs=macs)
