"""Reductions, scans and sorts: FLOPs per element of the input."""

from __future__ import annotations

import math

from flopcast.features.formulas._common import aten, register_table, self_numel
from flopcast.features.formulas.pointwise import TRANSCENDENTAL
from flopcast.features.records import Category, OpCost
from flopcast.features.registry import Call, register_op_cost

#: FLOPs per *input* element: one accumulate / compare (``histc``: one bin increment); variance: subtract,
#: square, add; norms: square and add; logsumexp: exp and add.
REDUCTION_FLOPS: dict[str, int] = {
    **dict.fromkeys(
        [
            "sum",
            "nansum",
            "mean",
            "nanmean",
            "prod",
            "amax",
            "amin",
            "max",
            "min",
            "argmax",
            "argmin",
            "any",
            "all",
            "cumsum",
            "cumprod",
            "count_nonzero",
            "aminmax",
            "histc",
            "logcumsumexp",
        ],
        1,
    ),
    **dict.fromkeys(["var", "std", "var_mean", "std_mean"], 3),
    **dict.fromkeys(["linalg_vector_norm", "norm"], 2),
    "logsumexp": TRANSCENDENTAL + 1,
}

register_table(REDUCTION_FLOPS, Category.REDUCTION, self_numel, variants=("_",))


def _dim_size(call: Call, dim_index: int) -> int:
    shape = call.args[0].shape
    dim = call.arg(dim_index, "dim", -1)
    return shape[dim] if shape else 1


@register_op_cost(aten.sort, category=Category.REDUCTION)
def sort(call: Call) -> OpCost:
    """Comparison sort along ``dim``: ``numel * ceil(log2(n))`` compares, ``n`` the sorted dimension."""
    n = _dim_size(call, 1)
    return OpCost(flops=self_numel(call) * max(1, math.ceil(math.log2(max(n, 2)))))


@register_op_cost(aten.topk, category=Category.REDUCTION)
def topk(call: Call) -> OpCost:
    """Heap selection of ``k``: ``numel * ceil(log2(k + 1))`` compares."""
    k = int(call.arg(1, "k", 1))
    return OpCost(flops=self_numel(call) * max(1, math.ceil(math.log2(k + 1))))
