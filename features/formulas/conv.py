"""Convolutions forward and backward: FLOPs = 2 x out_elems x (Cin / groups) x prod(kernel) (+ bias adds)."""

from __future__ import annotations

from flopcast.features.formulas._common import aten, prod
from flopcast.features.records import Category, OpCost, TensorMeta
from flopcast.features.registry import Call, Formula, register_op_cost


def conv_macs(x: TensorMeta, w: TensorMeta, out: TensorMeta, transposed: bool) -> int:
    """Multiply-accumulates of a (transposed) convolution.

    A convolution does ``Cin / groups * prod(kernel)`` MACs per output element; the weight is
    ``(Cout, Cin / groups, *kernel)``. A transposed convolution scatters each *input* element through
    ``Cout / groups * prod(kernel)`` taps; its weight is ``(Cin, Cout / groups, *kernel)``.

    Args:
        x: input metadata ``(N, Cin, *spatial)``.
        w: weight metadata.
        out: output metadata ``(N, Cout, *spatial_out)``.
        transposed: whether the convolution is transposed.
    """
    per_element = w.shape[1] * prod(w.shape[2:])
    return (x.numel if transposed else out.numel) * per_element


def _conv_forward(bias_index: int | None, transposed_index: int | None, transposed: bool = False) -> Formula:
    """Forward formula for a conv op whose bias / ``transposed`` flag sit at the given argument positions."""

    def formula(call: Call) -> OpCost:
        is_t = bool(call.args[transposed_index]) if transposed_index is not None else transposed
        macs = conv_macs(call.args[0], call.args[1], call.outputs[0], is_t)
        has_bias = bias_index is not None and call.arg(bias_index, "bias") is not None
        return OpCost(flops=2 * macs + (call.outputs[0].numel if has_bias else 0), macs=macs)

    formula.__doc__ = "Convolution forward: 2 FLOPs per MAC, plus one add per output element for the bias."
    return formula


# convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
register_op_cost(aten.convolution, aten._convolution, aten.convolution_overrideable, category=Category.CONV)(
    _conv_forward(bias_index=2, transposed_index=6)
)
register_op_cost(aten.mkldnn_convolution, category=Category.CONV)(_conv_forward(2, None))
register_op_cost(aten.cudnn_convolution, category=Category.CONV)(_conv_forward(None, None))
register_op_cost(aten.cudnn_convolution_transpose, category=Category.CONV)(_conv_forward(None, None, True))


@register_op_cost(aten.convolution_backward, category=Category.CONV)
def convolution_backward(call: Call) -> OpCost:
    """Gradients of a convolution, selected by ``output_mask`` (grad_input, grad_weight, grad_bias).

    grad_input (a transposed convolution of grad_output) and grad_weight (a convolution of the input
    with grad_output) each cost the forward's MACs; grad_bias is one add per grad_output element.
    """
    grad_out, x, w = call.args[0], call.args[1], call.args[2]
    transposed = bool(call.arg(7, "transposed"))
    mask = call.arg(10, "output_mask")
    fwd = conv_macs(x, w, grad_out, transposed)
    macs = fwd * (int(bool(mask[0])) + int(bool(mask[1])))
    return OpCost(flops=2 * macs + (grad_out.numel if mask[2] else 0), macs=macs)
