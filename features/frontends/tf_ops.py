"""TensorFlow graph op types mapped to the shared ATen vocabulary.

Each builder takes a :class:`TfOp` (metas of the data inputs and outputs, an attribute getter) and
returns the ``[(aten_name, Call)]`` it lowers to; NHWC convolutions are handed to the formulas in
channels-first layout. Op types absent here are recorded as unsupported ``tf.<Type>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flopcast.features.frontends import calls as C
from flopcast.features.frontends.einsum import einsum_calls
from flopcast.features.records import TensorMeta


@dataclass
class TfOp:
    """Shape-only view of one graph op.

    Attributes:
        type: TF op type (``MatMul``).
        inputs: metas of the data inputs (resource handles dropped).
        outputs: metas of the outputs.
        attr: ``attr(name, default)`` reads an op attribute.
    """

    type: str
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    attr: Callable[[str, Any], Any]


def _nchw(m: TensorMeta, layout: str) -> TensorMeta:
    if layout.startswith("NC"):
        return m
    n, *sp, c = m.shape
    return C.meta((n, c, *sp), m.dtype)


def _hwio_to_oihw(m: TensorMeta) -> TensorMeta:
    *k, i, o = m.shape
    return C.meta((o, i, *k), m.dtype)


def _strides(op: TfOp) -> list[int]:
    s = list(op.attr("strides", [1, 1, 1, 1]))
    return s[2:] if op.attr("data_format", "NHWC").startswith("NC") else s[1:-1]


def _conv_args(op: TfOp, x: TensorMeta, w: TensorMeta, depthwise: bool) -> tuple[TensorMeta, TensorMeta, int]:
    """Channels-first input and weight metas and the group count of a TF convolution."""
    layout = op.attr("data_format", "NHWC")
    xc = _nchw(x, layout)
    if depthwise:  # filter (kh, kw, C, multiplier)
        *k, c, mult = w.shape
        return xc, C.meta((c * mult, 1, *k), w.dtype), c
    wc = _hwio_to_oihw(w)
    return xc, wc, max(xc.shape[1] // max(wc.shape[1], 1), 1)


def _conv(depthwise: bool) -> Callable[[TfOp], list[C.OpCall]]:
    def build(op: TfOp) -> list[C.OpCall]:
        x, w = op.inputs[0], op.inputs[1]
        xc, wc, groups = _conv_args(op, x, w, depthwise)
        out = _nchw(op.outputs[0], op.attr("data_format", "NHWC"))
        return [C.conv(xc, wc, out, stride=_strides(op), groups=groups)]

    return build


def _conv_backprop_input(depthwise: bool) -> Callable[[TfOp], list[C.OpCall]]:
    def build(op: TfOp) -> list[C.OpCall]:
        w, grad = op.inputs[1], op.inputs[2]  # (input_sizes, filter, out_backprop)
        xc, wc, groups = _conv_args(op, op.outputs[0], w, depthwise)
        g = _nchw(grad, op.attr("data_format", "NHWC"))
        return [C.conv_backward(g, xc, wc, grad_input=True, grad_weight=False, stride=_strides(op), groups=groups)]

    return build


def _conv_backprop_filter(depthwise: bool) -> Callable[[TfOp], list[C.OpCall]]:
    def build(op: TfOp) -> list[C.OpCall]:
        x, grad = op.inputs[0], op.inputs[2]  # (input, filter_sizes, out_backprop)
        xc, wc, groups = _conv_args(op, x, op.outputs[0], depthwise)
        g = _nchw(grad, op.attr("data_format", "NHWC"))
        return [C.conv_backward(g, xc, wc, grad_input=False, grad_weight=True, stride=_strides(op), groups=groups)]

    return build


def _t(shape: tuple[int, ...], flag: bool) -> tuple[int, ...]:
    return (*shape[:-2], shape[-1], shape[-2]) if flag else shape


def _matmul(op: TfOp) -> list[C.OpCall]:
    a, b = op.inputs[0], op.inputs[1]
    ta = op.attr("transpose_a", False) or op.attr("adj_x", False)
    tb = op.attr("transpose_b", False) or op.attr("adj_y", False)
    return [C.matmul(_t(a.shape, ta), _t(b.shape, tb), a.dtype)]


def _einsum(op: TfOp) -> list[C.OpCall]:
    eq = op.attr("equation", "")
    eq = eq.decode() if isinstance(eq, bytes) else eq
    return einsum_calls(eq, [m.shape for m in op.inputs], op.inputs[0].dtype)[0]


def _reduce(name: str) -> Callable[[TfOp], list[C.OpCall]]:
    def build(op: TfOp) -> list[C.OpCall]:
        return [C.reduction(name, op.inputs[0], op.outputs[0], None, bool(op.attr("keep_dims", False)))]

    return build


def _bias_add_grad(op: TfOp) -> list[C.OpCall]:
    return [C.reduction("aten.sum", op.inputs[0], op.outputs[0], None)]


def _batch_norm(op: TfOp) -> list[C.OpCall]:
    x = _nchw(op.inputs[0], op.attr("data_format", "NHWC"))
    return [C.batch_norm(x, x, training=bool(op.attr("is_training", True)))]


def _batch_norm_grad(op: TfOp) -> list[C.OpCall]:
    g, x = op.inputs[0], op.inputs[1]
    return [C.simple("aten.native_batch_norm_backward", [g, x], op.outputs[:1])]


def _softmax(name: str) -> Callable[[TfOp], list[C.OpCall]]:
    def build(op: TfOp) -> list[C.OpCall]:
        return [(name, C.Call((op.inputs[0], -1, False), {}, tuple(op.outputs[:1])))]

    return build


def _pool(name: str) -> Callable[[TfOp], list[C.OpCall]]:
    def build(op: TfOp) -> list[C.OpCall]:
        k = list(op.attr("ksize", [1, 1, 1, 1]))[1:-1]
        x = _nchw(op.inputs[0], op.attr("data_format", "NHWC"))
        out = _nchw(op.outputs[0], op.attr("data_format", "NHWC"))
        return [(name, C.Call((x, k, _strides(op)), {}, (out,)))]

    return build


def _add_n(op: TfOp) -> list[C.OpCall]:
    return [C.simple("aten.add", op.inputs[:2], op.outputs) for _ in range(len(op.inputs) - 1)]


def _squared_difference(op: TfOp) -> list[C.OpCall]:
    return [C.simple("aten.sub", op.inputs, op.outputs), C.simple("aten.mul", [op.outputs[0]] * 2, op.outputs)]


def _assign(name: str) -> Callable[[TfOp], list[C.OpCall]]:
    def build(op: TfOp) -> list[C.OpCall]:
        value = op.inputs[-1]
        return [(name, C.Call((value, value), {}, (value,)))]

    return build


def _gather(op: TfOp) -> list[C.OpCall]:
    params, idx = op.inputs[0], op.inputs[1]
    return [C.simple("aten.embedding", [params, idx], op.outputs)]


BUILDERS: dict[str, Callable[[TfOp], list[C.OpCall]]] = {
    "MatMul": _matmul, "BatchMatMul": _matmul, "BatchMatMulV2": _matmul, "BatchMatMulV3": _matmul,
    "Einsum": _einsum,
    "Conv2D": _conv(False), "Conv3D": _conv(False), "DepthwiseConv2dNative": _conv(True),
    "Conv2DBackpropInput": _conv_backprop_input(False), "Conv2DBackpropInputV2": _conv_backprop_input(False),
    "Conv2DBackpropFilter": _conv_backprop_filter(False), "Conv2DBackpropFilterV2": _conv_backprop_filter(False),
    "DepthwiseConv2dNativeBackpropInput": _conv_backprop_input(True),
    "DepthwiseConv2dNativeBackpropFilter": _conv_backprop_filter(True),
    "Sum": _reduce("aten.sum"), "Mean": _reduce("aten.mean"), "Max": _reduce("aten.amax"),
    "Min": _reduce("aten.amin"), "Prod": _reduce("aten.prod"), "ArgMax": _reduce("aten.argmax"),
    "ArgMin": _reduce("aten.argmin"), "All": _reduce("aten.all"), "Any": _reduce("aten.any"),
    "BiasAddGrad": _bias_add_grad,
    "FusedBatchNorm": _batch_norm, "FusedBatchNormV2": _batch_norm, "FusedBatchNormV3": _batch_norm,
    "FusedBatchNormGrad": _batch_norm_grad, "FusedBatchNormGradV2": _batch_norm_grad,
    "FusedBatchNormGradV3": _batch_norm_grad,
    "Softmax": _softmax("aten._softmax"), "LogSoftmax": _softmax("aten._log_softmax"),
    "MaxPool": _pool("aten.max_pool2d_with_indices"), "AvgPool": _pool("aten.avg_pool2d"),
    "AddN": _add_n, "SquaredDifference": _squared_difference,
    "AssignAddVariableOp": _assign("aten.add_"), "AssignSubVariableOp": _assign("aten.sub_"),
    "AssignVariableOp": _assign("aten.copy_"),
    "GatherV2": _gather, "ResourceGather": _gather,
}

#: Op types passing their data inputs positionally to one ATen op.
SIMPLE: dict[str, str] = {
    "AddV2": "aten.add", "Add": "aten.add", "BiasAdd": "aten.add", "Sub": "aten.sub", "Mul": "aten.mul",
    "RealDiv": "aten.div", "Div": "aten.div", "DivNoNan": "aten.div", "FloorDiv": "aten.floor_divide",
    "Neg": "aten.neg", "Abs": "aten.abs", "Sqrt": "aten.sqrt", "Rsqrt": "aten.rsqrt", "Square": "aten.square",
    "Reciprocal": "aten.reciprocal", "Exp": "aten.exp", "Log": "aten.log", "Log1p": "aten.log1p",
    "Tanh": "aten.tanh", "Sigmoid": "aten.sigmoid", "Erf": "aten.erf", "Relu": "aten.relu",
    "Relu6": "aten.hardtanh", "Elu": "aten.elu", "Softplus": "aten.softplus", "LeakyRelu": "aten.leaky_relu",
    "Maximum": "aten.maximum", "Minimum": "aten.minimum", "Pow": "aten.pow", "Sin": "aten.sin",
    "Cos": "aten.cos", "Sign": "aten.sign", "Floor": "aten.floor", "Ceil": "aten.ceil", "Round": "aten.round",
    "Equal": "aten.eq", "NotEqual": "aten.ne", "Greater": "aten.gt", "GreaterEqual": "aten.ge",
    "Less": "aten.lt", "LessEqual": "aten.le", "LogicalAnd": "aten.logical_and", "LogicalOr": "aten.logical_or",
    "LogicalNot": "aten.logical_not", "Select": "aten.where", "SelectV2": "aten.where",
    "ReluGrad": "aten.threshold_backward", "SigmoidGrad": "aten.sigmoid_backward",
    "TanhGrad": "aten.tanh_backward", "EluGrad": "aten.elu_backward", "Relu6Grad": "aten.hardtanh_backward",
    "LeakyReluGrad": "aten.leaky_relu_backward", "MaxPoolGrad": "aten.max_pool2d_with_indices_backward",
    "AvgPoolGrad": "aten.avg_pool2d_backward", "Cast": "aten._to_copy", "ClipByValue": "aten.clamp",
    # data movement
    "Reshape": "aten.view", "ExpandDims": "aten.view", "Squeeze": "aten.view", "Transpose": "aten.permute_copy",
    "ConcatV2": "aten.cat", "Pack": "aten.stack", "Unpack": "aten.unbind", "Split": "aten.split",
    "SplitV": "aten.split", "Tile": "aten.repeat", "StridedSlice": "aten.slice", "Slice": "aten.slice",
    "StridedSliceGrad": "aten.slice_backward", "BroadcastTo": "aten.expand", "Fill": "aten.full",
    "ZerosLike": "aten.zeros_like", "OnesLike": "aten.ones_like", "Pad": "aten.constant_pad_nd",
    "PadV2": "aten.constant_pad_nd", "MirrorPad": "aten.reflection_pad2d", "Snapshot": "aten.clone",
    "StatelessRandomUniformV2": "aten.bernoulli", "RandomUniform": "aten.bernoulli",
}

#: Op types whose ``tf.<Type>`` name is a documented zero in the front ends' vocabulary.
ZERO = {"Shape", "ShapeN", "Size", "Rank", "BroadcastGradientArgs", "NoOp", "Placeholder", "Const",
        "VarHandleOp", "ReadVariableOp", "Identity", "IdentityN", "StopGradient"}
