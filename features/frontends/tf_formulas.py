"""Cost formulas of TensorFlow kernels that have no ATen counterpart (fused optimizers, a few gradients).

Counted per parameter element from the update rule (FLOPs of the arithmetic, reads and writes of
the variable, gradient and slot tensors). Keras 3 optimizers do not use these kernels (they emit
plain arithmetic plus ``AssignVariableOp``), but TF1-style and ``tf.compat.v1`` optimizers do.
"""

from __future__ import annotations

from flopcast.features.records import Category, OpCost
from flopcast.features.registry import Call, register_op_cost


def _update(call: Call, flops_per_element: int, slots: int) -> OpCost:
    var = call.outputs[0]
    # reads: var, grad and each slot; writes: var and each slot
    return OpCost(flops=flops_per_element * var.numel, bytes_read=(2 + slots) * var.nbytes,
                  bytes_written=(1 + slots) * var.nbytes)


@register_op_cost("tf.ResourceApplyAdam", category=Category.OPTIMIZER)
def apply_adam_cost(call: Call) -> OpCost:
    """Adam: m (3 FLOPs), v (4), var -= lr * m / (sqrt(v) + eps) (5): 12 FLOPs per element, 2 slots."""
    return _update(call, 12, 2)


@register_op_cost("tf.ResourceApplyGradientDescent", category=Category.OPTIMIZER)
def apply_sgd_cost(call: Call) -> OpCost:
    """SGD: var -= lr * grad, 2 FLOPs per element."""
    return _update(call, 2, 0)


@register_op_cost("tf.ResourceApplyKerasMomentum", "tf.ResourceApplyMomentum", category=Category.OPTIMIZER)
def apply_momentum_cost(call: Call) -> OpCost:
    """Momentum: accum = momentum * accum + grad (2), var -= lr * accum (2): 4 FLOPs per element, 1 slot."""
    return _update(call, 4, 1)


@register_op_cost("tf.RsqrtGrad", category=Category.ELEMENTWISE)
def rsqrt_grad_cost(call: Call) -> OpCost:
    """Gradient of rsqrt, ``-0.5 * g * y^3``: 4 FLOPs per element."""
    return OpCost(flops=4 * call.outputs[0].numel)


@register_op_cost("tf.SqrtGrad", category=Category.ELEMENTWISE)
def sqrt_grad_cost(call: Call) -> OpCost:
    """Gradient of sqrt, ``0.5 * g / y``: 2 FLOPs per element."""
    return OpCost(flops=2 * call.outputs[0].numel)
