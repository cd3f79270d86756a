"""Fused scaled-dot-product attention kernels (CPU flash, CUDA flash / efficient / cuDNN), forward and backward."""

from __future__ import annotations

from flopcast.features.formulas._common import aten, optional_op
from flopcast.features.formulas.softmax import SOFTMAX_FLOPS
from flopcast.features.records import Category, OpCost, TensorMeta
from flopcast.features.registry import Call, register_op_cost

#: FLOPs per attention score in the forward: scale (1) plus a softmax (max, sub, exp, sum, div).
SCORE_FLOPS_FORWARD = 1 + SOFTMAX_FLOPS["_softmax"]
#: FLOPs per attention score in the backward: recompute P (sub, exp), dS = P * (dP - delta), scale.
SCORE_FLOPS_BACKWARD = 8


def attention_dims(q: TensorMeta, k: TensorMeta, v: TensorMeta) -> tuple[int, int, int, int, int]:
    """``(batch x query heads, Lq, Lkv, D_qk, D_v)`` of ``(B, H, L, D)`` tensors (GQA: heads of the query)."""
    bh = q.numel // (q.shape[-2] * q.shape[-1])
    return bh, q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]


def attention_forward_macs(q: TensorMeta, k: TensorMeta, v: TensorMeta) -> tuple[int, int]:
    """(MACs, scores) of attention forward: ``Q K^T`` and ``P V`` over the full Lq x Lkv score matrix."""
    bh, lq, lkv, dqk, dv = attention_dims(q, k, v)
    scores = bh * lq * lkv
    return scores * (dqk + dv), scores


def attention_backward_macs(q: TensorMeta, k: TensorMeta, v: TensorMeta) -> tuple[int, int]:
    """(MACs, scores) of attention backward: recomputed ``Q K^T``, ``dO V^T``, ``P^T dO``, ``dS K``, ``dS^T Q``."""
    bh, lq, lkv, dqk, dv = attention_dims(q, k, v)
    scores = bh * lq * lkv
    return scores * (3 * dqk + 2 * dv), scores


_FORWARD = [
    aten._scaled_dot_product_flash_attention_for_cpu,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_cudnn_attention,
    optional_op("_scaled_dot_product_fused_attention_overrideable"),
]
_BACKWARD = [
    aten._scaled_dot_product_flash_attention_for_cpu_backward,
    aten._scaled_dot_product_flash_attention_backward,
    aten._scaled_dot_product_efficient_attention_backward,
    aten._scaled_dot_product_cudnn_attention_backward,
    optional_op("_scaled_dot_product_fused_attention_overrideable_backward"),
]


@register_op_cost(*(op for op in _FORWARD if op is not None), category=Category.ATTENTION)
def sdpa_forward(call: Call) -> OpCost:
    """Attention forward on ``query, key, value`` (args 0-2): 2 FLOPs per MAC plus the per-score softmax.

    Causal masking is not discounted: the full Lq x Lkv score matrix is charged.
    """
    macs, scores = attention_forward_macs(call.args[0], call.args[1], call.args[2])
    return OpCost(flops=2 * macs + SCORE_FLOPS_FORWARD * scores, macs=macs)


@register_op_cost(*(op for op in _BACKWARD if op is not None), category=Category.ATTENTION)
def sdpa_backward(call: Call) -> OpCost:
    """Attention backward on ``grad_out, query, key, value`` (args 0-3): 2.5x the forward's MACs."""
    macs, scores = attention_backward_macs(call.args[1], call.args[2], call.args[3])
    return OpCost(flops=2 * macs + SCORE_FLOPS_BACKWARD * scores, macs=macs)
