"""Share of the score matrix a causal attention kernel really computes (flash kernels skip masked blocks).

The attention formulas charge the full ``Lq x Lkv`` score matrix, as torch's ``FlopCounterMode`` and the
usual ``6 N D`` accounting do, so recorded FLOPs stay comparable. Cost models need the work the kernel
does: with ``is_causal`` torch masks top-left aligned (query ``i`` sees keys ``0..i``), so only
``sum_i min(i + 1, Lkv)`` of the ``Lq x Lkv`` pairs are computed. :func:`causal_work_share` reads
``is_causal`` and the sequence lengths back from an op-table row (op name, ``attrs``, ``input_shapes``).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import torch


def causal_pairs(l_q: int, l_kv: int) -> int:
    """Query-key pairs a top-left aligned causal mask keeps: ``sum_{i < Lq} min(i + 1, Lkv)``."""
    if l_q <= l_kv:
        return l_q * (l_q + 1) // 2
    return l_kv * (l_kv + 1) // 2 + (l_q - l_kv) * l_kv


@cache
def _positions(op: str) -> tuple[int, int, int] | None:
    """Positional indices of ``is_causal``, ``query`` and ``key`` in an aten op's schema, or None."""
    packet, _, overload = op.removeprefix("aten.").partition(".")
    try:
        schema = getattr(getattr(torch.ops.aten, packet), overload or "default")._schema
    except (AttributeError, RuntimeError):
        return None
    names = [a.name for a in schema.arguments if not a.kwarg_only]
    if "is_causal" not in names or "query" not in names or "key" not in names:
        return None
    return names.index("is_causal"), names.index("query"), names.index("key")


def causal_work_share(op: str, attrs: Any, input_shapes: Any) -> float:
    """Executed share (0, 1] of an attention op's score matrix; 1.0 when not causal or not an attention op.

    Args:
        op: aten op name, e.g. ``aten._scaled_dot_product_flash_attention_for_cpu`` (overload optional).
        attrs: the op's ``attrs`` (JSON text or dict with the positional ``args``; tensors are ``"T"``).
        input_shapes: the op's tensor input shapes (JSON text or list), in argument order.
    """
    pos = _positions(str(op))
    if pos is None:
        return 1.0
    try:
        args = (json.loads(attrs) if isinstance(attrs, str) else attrs or {}).get("args", [])
        shapes = json.loads(input_shapes) if isinstance(input_shapes, str) else input_shapes
        i_causal, i_q, i_k = pos
        if i_causal >= len(args) or args[i_causal] is not True:
            return 1.0
        tensor_index = {i: n for n, i in enumerate(i for i, a in enumerate(args) if a == "T")}
        l_q, l_kv = int(shapes[tensor_index[i_q]][-2]), int(shapes[tensor_index[i_k]][-2])
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        return 1.0
    if l_q <= 0 or l_kv <= 0:
        return 1.0
    return causal_pairs(l_q, l_kv) / (l_q * l_kv)


def executed_flops(ops: pd.DataFrame) -> np.ndarray:
    """FLOPs the kernels really execute: recorded FLOPs, times the unmasked share for causal attention.

    Recorded attention FLOPs charge the full score matrix (torch's convention); a causal flash kernel
    skips the masked blocks (:func:`flopcast.features.attention_mask.causal_work_share`).
    """
    flops = ops["flops"].astype("float64").fillna(0.0).to_numpy()
    if "attrs" not in ops or "category" not in ops:
        return flops
    attention = (ops["category"].astype(str) == "attention").to_numpy()
    if attention.any():
        rows = ops[attention]
        share = [causal_work_share(o, a, s) for o, a, s in zip(rows["op"], rows["attrs"], rows["input_shapes"],
                                                                strict=True)]
        flops = flops.copy()
        flops[attention] *= np.array(share, dtype=float)
    return flops
