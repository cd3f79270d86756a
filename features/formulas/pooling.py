"""Pooling (max, average, adaptive) and interpolation (upsample) ops, forward and backward."""

from __future__ import annotations

import math

from flopcast.features.formulas._common import aten, prod
from flopcast.features.records import Category, OpCost
from flopcast.features.registry import Call, Formula, register_op_cost


def _window(kernel: object, dims: int) -> int:
    """Elements of a pooling window given as an int or a list (a 1-list applies to every dim)."""
    ks = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel]
    return prod(ks * dims if len(ks) == 1 else ks)


def _pool(dims: int, kernel_index: int, on_grad: bool) -> Formula:
    """Windowed pool: one compare/add per window element of each output (or grad_output) element."""

    def formula(call: Call) -> OpCost:
        n = call.args[0].numel if on_grad else call.outputs[0].numel
        return OpCost(flops=n * _window(call.args[kernel_index], dims))

    formula.__doc__ = "Pooling: FLOPs = (grad_)output elements x window elements."
    return formula


def _scatter_back(call: Call) -> OpCost:
    """Backward that routes each grad_output element to one input position: one add per element."""
    return OpCost(flops=call.args[0].numel)


def _adaptive_window(inp: tuple[int, ...], out: tuple[int, ...]) -> int:
    """Largest adaptive window: ``ceil(in / out)`` per spatial dim (the trailing dims of ``out``)."""
    dims = len(out)
    return prod(math.ceil(i / max(o, 1)) for i, o in zip(inp[-dims:], out, strict=True))


@register_op_cost(
    aten._adaptive_avg_pool2d,
    aten._adaptive_avg_pool3d,
    aten.adaptive_max_pool2d,
    aten.adaptive_max_pool3d,
    category=Category.REDUCTION,
)
def adaptive_pool(call: Call) -> OpCost:
    """Adaptive pooling: output elements x the largest window ``ceil(in/out)`` per dim."""
    out = call.outputs[0]
    spatial = len(call.arg(1, "output_size"))
    return OpCost(flops=out.numel * _adaptive_window(call.args[0].shape, out.shape[-spatial:]))


@register_op_cost(aten._adaptive_avg_pool2d_backward, aten._adaptive_avg_pool3d_backward, category=Category.REDUCTION)
def adaptive_avg_pool_backward(call: Call) -> OpCost:
    """Adaptive average pool backward (grad_output, self): grad elements x window elements."""
    grad, x = call.args[0], call.args[1]
    spatial = len(x.shape) - 2 if len(x.shape) > 3 else len(grad.shape) - 1
    return OpCost(flops=grad.numel * _adaptive_window(x.shape, grad.shape[-spatial:]))


for _dims, _fwd, _bwd in (
    (1, [aten.max_pool1d], []),
    (2, [aten.max_pool2d_with_indices], [aten.max_pool2d_with_indices_backward]),
    (3, [aten.max_pool3d_with_indices], [aten.max_pool3d_with_indices_backward]),
    (2, [aten.avg_pool2d], []),
    (3, [aten.avg_pool3d], []),
):
    register_op_cost(*_fwd, category=Category.REDUCTION)(_pool(_dims, 1, on_grad=False))
    if _bwd:
        register_op_cost(*_bwd, category=Category.REDUCTION)(_scatter_back)
# avg_pool backward(grad_output, self, kernel_size, ...): each grad element spreads over its window
register_op_cost(aten.avg_pool2d_backward, category=Category.REDUCTION)(_pool(2, 2, on_grad=True))
register_op_cost(aten.avg_pool3d_backward, category=Category.REDUCTION)(_pool(3, 2, on_grad=True))
register_op_cost(aten.adaptive_max_pool2d_backward, aten.adaptive_max_pool3d_backward, category=Category.REDUCTION)(
    _scatter_back
)

#: Input taps blended per output element by each interpolation mode.
INTERPOLATION_TAPS = {"linear1d": 2, "bilinear2d": 4, "bicubic2d": 16, "trilinear3d": 8}


def _interpolate(taps: int, backward: bool) -> Formula:
    """Interpolation: ``2 * taps - 1`` FLOPs per output element (weighted sum); backward ``2 * taps`` per grad."""

    def formula(call: Call) -> OpCost:
        if backward:
            return OpCost(flops=2 * taps * call.args[0].numel)
        return OpCost(flops=(2 * taps - 1) * call.outputs[0].numel)

    formula.__doc__ = f"Interpolation with {taps} taps per output element."
    return formula


for _mode, _taps in INTERPOLATION_TAPS.items():
    register_op_cost(getattr(aten, f"upsample_{_mode}"), category=Category.ELEMENTWISE)(_interpolate(_taps, False))
    register_op_cost(getattr(aten, f"upsample_{_mode}_backward"), category=Category.ELEMENTWISE)(
        _interpolate(_taps, True)
    )

# Nearest-neighbour backward sums the grad of each replicated output back into its source.
register_op_cost(
    aten.upsample_nearest1d_backward,
    aten.upsample_nearest2d_backward,
    aten.upsample_nearest3d_backward,
    aten._upsample_nearest_exact2d_backward,
    category=Category.DATA_MOVEMENT,
)(_scatter_back)
