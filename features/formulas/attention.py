"""Fused attention kernels: scaled-dot-product attention forward and backward, fused inference blocks.

SDPA: CPU flash, CUDA flash / efficient / cuDNN. Blocks: the inference fast paths of
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` (one op for projections and attention, or
for the whole layer), charged what their unfused ops cost.
"""

from __future__ import annotations

from flopcast.features.formulas._common import aten, optional_op
from flopcast.features.formulas.norm import AFFINE, NORM_FORWARD
from flopcast.features.formulas.pointwise import POINTWISE_FLOPS
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


def _mha_cost(
    query: TensorMeta,
    key: TensorMeta,
    embed_dim: int,
    num_heads: int,
    qkv_bias: object,
    proj_weight: TensorMeta,
    proj_bias: object,
    averaged_weights: bool = False,
) -> OpCost:
    """Multi-head attention with its projections on batch-first ``(B, L, E)`` query and key/value.

    Q, K and V projections (``E x E`` each, plus the bias), the attention product and per-score softmax
    as :func:`sdpa_forward`, and the output projection: what the unfused modules cost piece by piece.
    """
    e = embed_dim
    tokens_q, tokens_kv = query.numel // e, key.numel // e
    e_out = proj_weight.shape[0]
    scores = query.numel // e * key.shape[-2] * num_heads
    attn_macs = scores * 2 * (e // num_heads)
    macs = (tokens_q + 2 * tokens_kv) * e * e + attn_macs + tokens_q * e * e_out
    bias = (tokens_q + 2 * tokens_kv) * e * (qkv_bias is not None) + tokens_q * e_out * (proj_bias is not None)
    flops = 2 * macs + bias + SCORE_FLOPS_FORWARD * scores + (scores if averaged_weights else 0)
    return OpCost(flops=flops, macs=macs)


@register_op_cost(aten._native_multi_head_attention, category=Category.ATTENTION)
def native_multi_head_attention(call: Call) -> OpCost:
    """``nn.MultiheadAttention``'s fused inference path: projections, attention and output projection.

    Args: ``query, key, value, embed_dim, num_head, qkv_weight, qkv_bias, proj_weight, proj_bias, mask,
    need_weights, average_attn_weights, mask_type``. Returned attention weights averaged over heads
    cost one add per score.
    """
    averaged = bool(call.arg(10, "need_weights", True)) and bool(call.arg(11, "average_attn_weights", True))
    return _mha_cost(
        call.args[0],
        call.args[1],
        int(call.args[3]),
        int(call.args[4]),
        call.arg(6, "qkv_bias"),
        call.arg(7, "proj_weight"),
        call.arg(8, "proj_bias"),
        averaged,
    )


@register_op_cost(aten._transformer_encoder_layer_fwd, category=Category.ATTENTION)
def transformer_encoder_layer(call: Call) -> OpCost:
    """``nn.TransformerEncoderLayer``'s fused inference path (eval, no grad): one op for the whole layer.

    Self-attention with projections (:func:`_mha_cost`), two residual adds, two layer norms and the
    feed-forward block (two linears with biases, ReLU or GELU): the sum of what the unfused layer's
    ops cost. Args: ``src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias, use_gelu,
    norm_first, eps, norm_weight_1, norm_bias_1, norm_weight_2, norm_bias_2, ffn_weight_1, ffn_bias_1,
    ffn_weight_2, ffn_bias_2, mask, mask_type``.
    """
    src: TensorMeta = call.args[0]
    e, heads = int(call.args[1]), int(call.args[2])
    attn = _mha_cost(src, src, e, heads, call.arg(4, "qkv_bias"), call.arg(5, "proj_weight"), call.arg(6, "proj_bias"))
    tokens, n = src.numel // e, src.numel
    w1: TensorMeta = call.arg(14, "ffn_weight_1")
    w2: TensorMeta = call.arg(16, "ffn_weight_2")
    hidden = w1.shape[0]
    ffn_macs = tokens * e * hidden + tokens * hidden * w2.shape[0]
    ffn_bias = tokens * hidden * (call.arg(15, "ffn_bias_1") is not None)
    ffn_bias += tokens * w2.shape[0] * (call.arg(17, "ffn_bias_2") is not None)
    activation = POINTWISE_FLOPS["gelu" if call.arg(7, "use_gelu") else "relu"] * tokens * hidden
    norms = sum(
        (NORM_FORWARD + (AFFINE if call.arg(i, name) is not None else 0)) * n
        for i, name in ((10, "norm_weight_1"), (12, "norm_weight_2"))
    )
    residual = 2 * n * POINTWISE_FLOPS["add"]
    flops = attn.flops + 2 * ffn_macs + ffn_bias + activation + norms + residual
    return OpCost(flops=flops, macs=attn.macs + ffn_macs)
