"""Softmax and log-softmax, forward and backward: FLOPs per element of the (input-shaped) output."""

from __future__ import annotations

from flopcast.features.formulas._common import register_table
from flopcast.features.formulas.pointwise import TRANSCENDENTAL
from flopcast.features.records import Category

#: FLOPs per element: forward = max, subtract, exp, sum, divide (log-softmax: subtract the log-sum);
#: backward of softmax = g * y, row sum, subtract, multiply; of log-softmax = exp(y), row sum of g,
#: multiply, subtract.
SOFTMAX_FLOPS: dict[str, int] = {
    "_softmax": TRANSCENDENTAL + 4,
    "_safe_softmax": TRANSCENDENTAL + 4,
    "_log_softmax": TRANSCENDENTAL + 4,
    "_softmax_backward_data": 4,
    "_log_softmax_backward_data": TRANSCENDENTAL + 3,
}

register_table(SOFTMAX_FLOPS, Category.SOFTMAX, variants=())
