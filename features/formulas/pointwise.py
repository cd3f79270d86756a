"""Element-wise ops (arithmetic, comparisons, activations and their backwards): FLOPs per output element."""

from __future__ import annotations

from flopcast.features.formulas._common import (
    aten,
    inplace_bytes,
    numel,
    per_element,
    register_table,
    self_numel,
)
from flopcast.features.records import Category, OpCost
from flopcast.features.registry import Call, register_op_cost

#: FLOPs charged for one transcendental function (exp, log, tanh, sigmoid, erf, sin, pow, ...).
TRANSCENDENTAL = 4

T = TRANSCENDENTAL

#: FLOPs per output element of each element-wise op; the in-place form (``add_``) costs the same.
POINTWISE_FLOPS: dict[str, int] = {
    # one arithmetic, compare or select instruction
    **dict.fromkeys(
        [
            "add",
            "sub",
            "rsub",
            "mul",
            "div",
            "neg",
            "abs",
            "sgn",
            "sign",
            "reciprocal",
            "sqrt",
            "rsqrt",
            "square",
            "maximum",
            "minimum",
            "fmax",
            "fmin",
            "clamp",
            "clamp_min",
            "clamp_max",
            "relu",
            "threshold",
            "threshold_backward",
            "eq",
            "ne",
            "gt",
            "ge",
            "lt",
            "le",
            "logical_and",
            "logical_or",
            "logical_xor",
            "logical_not",
            "bitwise_not",
            "bitwise_and",
            "bitwise_or",
            "isnan",
            "isinf",
            "floor",
            "ceil",
            "round",
            "trunc",
            "remainder",
            "fmod",
            "floor_divide",  # ``a // b``: the div(rounding_mode="floor") kernel, charged as div
        ],
        1,
    ),
    "hardtanh": 2,  # two compares
    "hardtanh_backward": 2,
    "leaky_relu": 2,  # compare, multiply
    "leaky_relu_backward": 2,
    "hardsigmoid": 3,  # add 3, clamp, divide by 6
    "hardsigmoid_backward": 2,
    "hardswish": 4,  # x * hardsigmoid(x)
    "hardswish_backward": 4,
    "addcmul": 3,  # self + value * t1 * t2
    "addcdiv": 3,  # self + value * t1 / t2
    "lerp": 3,  # start + weight * (end - start)
    "sigmoid_backward": 3,  # g * y * (1 - y)
    "tanh_backward": 3,  # g * (1 - y * y)
    **dict.fromkeys(
        [
            "exp",
            "exp2",
            "expm1",
            "log",
            "log2",
            "log10",
            "log1p",
            "sin",
            "cos",
            "tan",
            "tanh",
            "sigmoid",
            "erf",
            "erfc",
            "erfinv",
            "pow",
            "atan",
            "atan2",
        ],
        T,
    ),
    "silu": T + 1,  # x * sigmoid(x)
    "silu_backward": T + 5,  # g * s * (1 + x * (1 - s))
    "gelu": T + 4,  # erf form 0.5 x (1 + erf(x / sqrt 2)); the tanh form is charged the same
    "gelu_backward": 2 * T + 5,  # Phi(x) + x phi(x): erf and exp
    "elu": T + 3,  # compare, exp - 1, scale
    "elu_backward": T + 3,
    "softplus": 2 * T + 2,  # log(1 + exp(beta x)) / beta
    "softplus_backward": T + 3,
    "mish": 3 * T + 3,  # x * tanh(softplus(x))
    "mish_backward": 4 * T + 8,
    "glu": T + 1,  # a * sigmoid(b), per output element
    "glu_backward": T + 4,  # per input-shaped grad element
    "native_dropout": 3,  # random draw, compare with p, scale
    "native_dropout_backward": 2,  # g * mask * scale
}

register_table(POINTWISE_FLOPS, Category.ELEMENTWISE)

#: FLOPs per element of ops that overwrite ``self`` with random values (draw, compare with p).
RANDOM_FILL_FLOPS = 2


@register_op_cost(aten.bernoulli_, category=Category.ELEMENTWISE)
def bernoulli_(call: Call) -> OpCost:
    """In-place Bernoulli sampling (dropout's mask on CPU): ``self`` is overwritten, not read."""
    read, written = inplace_bytes(call, reads_self=False)
    return OpCost(flops=RANDOM_FILL_FLOPS * self_numel(call), bytes_read=read, bytes_written=written)


register_op_cost(aten.bernoulli, category=Category.ELEMENTWISE)(per_element(RANDOM_FILL_FLOPS))


@register_op_cost(aten.isin, category=Category.ELEMENTWISE)
def isin(call: Call) -> OpCost:
    """``isin(elements, test_elements)``: one compare per (element, test element) pair.

    The naive kernel runs so for the few test elements of ``generate()``'s EOS checks; a scalar side counts as
    one element.
    """
    elements, test = call.arg(0, "elements"), call.arg(1, "test_elements")
    count = (numel(elements) if hasattr(elements, "shape") else 1) * (numel(test) if hasattr(test, "shape") else 1)
    return OpCost(flops=count)
