from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from flopcast.features.attention_mask import causal_pairs, causal_work_share, executed_flops
from flopcast.features.table import ops_table
from flopcast.features.trace_torch import trace_ops


@pytest.mark.parametrize(("l_q", "l_kv"), [(1, 1), (5, 5), (3, 7), (7, 3), (64, 128)])
def test_causal_pairs_match_torch_mask(l_q, l_kv):
    mask = torch.ones(l_q, l_kv, dtype=torch.bool).tril(diagonal=0)  # SDPA's is_causal mask
    assert causal_pairs(l_q, l_kv) == int(mask.sum())


def _attention_records(causal: bool, l_q: int, l_kv: int, backward: bool = False):
    def build():
        q = torch.randn(2, 4, l_q, 16, requires_grad=backward)
        k = torch.randn(2, 4, l_kv, 16, requires_grad=backward)
        v = torch.randn(2, 4, l_kv, 16, requires_grad=backward)

        def step():
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            if backward:
                out.sum().backward()
        return step
    return [r for r in trace_ops(build) if r.category.value == "attention"]


@pytest.mark.parametrize("backward", [False, True])
def test_share_read_back_from_recorded_ops(backward):
    records = _attention_records(True, 32, 32, backward)
    assert len(records) == (2 if backward else 1)
    table = ops_table(records)
    shares = [causal_work_share(*row) for row in zip(table["op"], table["attrs"], table["input_shapes"], strict=True)]
    assert shares == pytest.approx([causal_pairs(32, 32) / 32**2] * len(records))
    plain = ops_table(_attention_records(False, 32, 32, backward))
    assert list(executed_flops(plain)) == list(plain["flops"].astype(float))


def test_non_attention_or_garbage_rows_keep_their_flops():
    assert causal_work_share("aten.mm", {"args": ["T", "T"]}, [[2, 3], [3, 4]]) == 1.0
    assert causal_work_share("aten._scaled_dot_product_flash_attention_for_cpu", "not json", "[]") == 1.0
    ops = pd.DataFrame({"op": ["aten.mm", "aten._scaled_dot_product_flash_attention_for_cpu"],
                        "category": ["matmul", "attention"], "flops": [100.0, 1000.0],
                        "attrs": ["{}", json.dumps({"args": ["T", "T", "T", 0.0, True]})],
                        "input_shapes": ["[[2, 3], [3, 4]]", json.dumps([[1, 1, 4, 8]] * 3)]})
    assert list(executed_flops(ops)) == [100.0, 1000.0 * causal_pairs(4, 4) / 16]
