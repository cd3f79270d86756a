from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _helpers import cost, tm, trace
from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

from flopcast.features.formulas.attention import SCORE_FLOPS_BACKWARD, SCORE_FLOPS_FORWARD

aten = torch.ops.aten
FWD = [
    aten._scaled_dot_product_flash_attention_for_cpu,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_cudnn_attention,
]
BWD = [
    aten._scaled_dot_product_flash_attention_for_cpu_backward,
    aten._scaled_dot_product_flash_attention_backward,
    aten._scaled_dot_product_efficient_attention_backward,
    aten._scaled_dot_product_cudnn_attention_backward,
]
B, H, L, S, D = 2, 4, 128, 96, 64


@pytest.mark.parametrize("op", FWD)
def test_sdpa_forward(op):
    c = cost(op, tm(B, H, L, D), tm(B, H, S, D), tm(B, H, S, D), outputs=(tm(B, H, L, D),))
    assert c.macs == 2 * 4 * 128 * 96 * (64 + 64)  # QK^T and PV
    assert c.flops == 4 * 2 * 4 * 128 * 96 * 64 + SCORE_FLOPS_FORWARD * 2 * 4 * 128 * 96
    assert 2 * c.macs == sdpa_flop_count((B, H, L, D), (B, H, S, D), (B, H, S, D))


@pytest.mark.parametrize("op", BWD)
def test_sdpa_backward(op):
    q, kv = tm(B, H, L, D), tm(B, H, S, D)
    c = cost(op, tm(B, H, L, D), q, kv, kv, outputs=(q, kv, kv))
    assert c.macs == 2 * 4 * 128 * 96 * (3 * 64 + 2 * 64)  # five products: 2.5x the forward
    assert c.flops == 2 * c.macs + SCORE_FLOPS_BACKWARD * 2 * 4 * 128 * 96
    assert 2 * c.macs == sdpa_backward_flop_count((B, H, L, D), (B, H, L, D), (B, H, S, D), (B, H, S, D))


def test_gqa_counts_query_heads():
    # 8 query heads over 2 KV heads: the kernel broadcasts K/V, work follows the query heads
    c = cost(FWD[0], tm(1, 8, 16, 32), tm(1, 2, 16, 32), tm(1, 2, 16, 32), outputs=(tm(1, 8, 16, 32),))
    assert c.macs == 1 * 8 * 16 * 16 * (32 + 32)


def test_sdpa_trace_on_cpu():
    class Attn(torch.nn.Module):
        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q, is_causal=True)

    ops = trace(Attn, lambda: (torch.empty(2, 4, 32, 16, requires_grad=True),))
    by_op = {r.op.overloadpacket: r.cost for r in ops if r.cost is not None}
    assert by_op[FWD[0]].macs == 2 * 4 * 32 * 32 * (16 + 16)  # causal: nothing halved
    assert by_op[BWD[0]].macs == 2 * 4 * 32 * 32 * (3 * 16 + 2 * 16)
