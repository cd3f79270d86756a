"""ONNX node types mapped to the shared ATen vocabulary: each builder returns the calls of one node.

Builders take a :class:`Node` view (input/output metas, attributes) and return ``[(aten_name, Call)]``;
node types absent from :data:`BUILDERS` and :data:`SIMPLE` are recorded as unsupported ``onnx.<Type>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flopcast.features.frontends import calls as C
from flopcast.features.frontends.einsum import einsum_calls
from flopcast.features.records import TensorMeta


@dataclass
class Node:
    """Shape-only view of one ONNX node.

    Attributes:
        op_type: ONNX operator type (``Gemm``).
        inputs: metas of the tensor inputs (``None`` for an omitted optional input).
        outputs: metas of the outputs.
        attrs: node attributes as Python values.
    """

    op_type: str
    inputs: list[TensorMeta | None]
    outputs: list[TensorMeta]
    attrs: dict[str, Any] = field(default_factory=dict)

    def x(self, i: int) -> TensorMeta | None:
        """Input ``i`` if present."""
        return self.inputs[i] if i < len(self.inputs) else None


def _gemm(n: Node) -> list[C.OpCall]:
    a, b = n.x(0), n.x(1)
    m, k = a.shape[::-1] if n.attrs.get("transA") else a.shape
    nn = b.shape[0] if n.attrs.get("transB") else b.shape[1]
    op, call = C.mm(m, k, nn, a.dtype)
    if n.x(2) is not None:  # bias: aten.addmm(bias, a, b)
        return [("aten.addmm", type(call)((n.x(2), *call.args), {}, call.outputs))]
    return [(op, call)]


def _matmul(n: Node) -> list[C.OpCall]:
    return [C.matmul(n.x(0).shape, n.x(1).shape, n.x(0).dtype)]


def _conv(n: Node, transposed: bool = False) -> list[C.OpCall]:
    x, w, out = n.x(0), n.x(1), n.outputs[0]
    nsp = len(x.shape) - 2
    return [C.conv(x, w, out, bias=n.x(2), stride=n.attrs.get("strides", [1] * nsp),
                   dilation=n.attrs.get("dilations", [1] * nsp), groups=n.attrs.get("group", 1),
                   transposed=transposed)]


def _einsum(n: Node) -> list[C.OpCall]:
    return einsum_calls(n.attrs["equation"], [m.shape for m in n.inputs], n.inputs[0].dtype)[0]


def _softmax(n: Node) -> list[C.OpCall]:
    return [C.softmax(n.x(0), n.outputs[0], n.attrs.get("axis", -1))]


def _layer_norm(n: Node) -> list[C.OpCall]:
    x = n.x(0)
    axis = n.attrs.get("axis", -1) % len(x.shape)
    return [C.layer_norm(x, n.outputs[0], x.shape[axis:], affine=n.x(1) is not None)]


def _batch_norm(n: Node) -> list[C.OpCall]:
    return [C.batch_norm(n.x(0), n.outputs[0], training=bool(n.attrs.get("training_mode", 0)))]


def _reduce(op: str) -> Callable[[Node], list[C.OpCall]]:
    def build(n: Node) -> list[C.OpCall]:
        return [C.reduction(op, n.x(0), n.outputs[0], n.attrs.get("axes"), bool(n.attrs.get("keepdims", 1)))]

    return build


def _attention(n: Node) -> list[C.OpCall]:
    """``com.microsoft.MultiHeadAttention`` / opset-23 ``Attention``: (B, S, H*D) or (B, H, S, D) inputs."""
    q, k, v, out = n.x(0), n.x(1), n.x(2), n.outputs[0]
    heads = n.attrs.get("num_heads") or n.attrs.get("q_num_heads") or 1
    if len(q.shape) == 3:
        b, s, hd = q.shape
        q = C.meta((b, heads, s, hd // heads), q.dtype)
        k = C.meta((b, heads, k.shape[1], k.shape[2] // heads), k.dtype)
        v = C.meta((b, heads, v.shape[1], v.shape[2] // heads), v.dtype)
    return [C.sdpa(q, k, v, out, is_causal=bool(n.attrs.get("is_causal", 0)))]


def _gather(n: Node) -> list[C.OpCall]:
    data, idx = n.x(0), n.x(1)
    if data.dtype.startswith("float") and len(data.shape) == 2 and n.attrs.get("axis", 0) == 0:
        return [C.simple("aten.embedding", [data, idx], n.outputs)]
    return [C.simple("aten.index_select", [data, n.attrs.get("axis", 0), idx], n.outputs)]


def _resize(n: Node) -> list[C.OpCall]:
    mode = n.attrs.get("mode", "nearest")
    nd = len(n.outputs[0].shape) - 2
    if mode == "nearest":
        op = f"aten.upsample_nearest{nd}d"
    else:
        op = {1: "aten.upsample_linear1d", 2: "aten.upsample_bilinear2d", 3: "aten.upsample_trilinear3d"}[nd]
        if mode == "cubic":
            op = "aten.upsample_bicubic2d"
    return [C.simple(op, [n.x(0)], n.outputs)]


def _pool(op: str) -> Callable[[Node], list[C.OpCall]]:
    def build(n: Node) -> list[C.OpCall]:
        kernel = list(n.attrs["kernel_shape"])
        return [(op, C.Call((n.x(0), kernel, list(n.attrs.get("strides", kernel))), {}, tuple(n.outputs)))]

    return build


BUILDERS: dict[str, Callable[[Node], list[C.OpCall]]] = {
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Conv": _conv,
    "ConvTranspose": lambda n: _conv(n, transposed=True),
    "Einsum": _einsum,
    "Softmax": _softmax,
    "LayerNormalization": _layer_norm,
    "BatchNormalization": _batch_norm,
    "ReduceSum": _reduce("aten.sum"),
    "ReduceMean": _reduce("aten.mean"),
    "ReduceMax": _reduce("aten.amax"),
    "ReduceMin": _reduce("aten.amin"),
    "ReduceProd": _reduce("aten.prod"),
    "ArgMax": _reduce("aten.argmax"),
    "ArgMin": _reduce("aten.argmin"),
    "MultiHeadAttention": _attention,
    "Attention": _attention,
    "Gather": _gather,
    "Resize": _resize,
    "Upsample": _resize,
    "MaxPool": _pool("aten.max_pool2d_with_indices"),
    "AveragePool": _pool("aten.avg_pool2d"),
}

#: Node types whose call passes the data inputs positionally to one ATen op.
SIMPLE: dict[str, str] = {
    "Add": "aten.add", "Sub": "aten.sub", "Mul": "aten.mul", "Div": "aten.div", "Pow": "aten.pow",
    "Neg": "aten.neg", "Abs": "aten.abs", "Sqrt": "aten.sqrt", "Reciprocal": "aten.reciprocal",
    "Exp": "aten.exp", "Log": "aten.log", "Tanh": "aten.tanh", "Sigmoid": "aten.sigmoid", "Erf": "aten.erf",
    "Relu": "aten.relu", "LeakyRelu": "aten.leaky_relu", "Gelu": "aten.gelu", "Sin": "aten.sin",
    "Cos": "aten.cos", "Max": "aten.maximum", "Min": "aten.minimum", "Clip": "aten.clamp",
    "Equal": "aten.eq", "Less": "aten.lt", "Greater": "aten.gt", "LessOrEqual": "aten.le",
    "GreaterOrEqual": "aten.ge", "Not": "aten.logical_not", "And": "aten.logical_and", "Or": "aten.logical_or",
    "Where": "aten.where", "Floor": "aten.floor", "Ceil": "aten.ceil", "Round": "aten.round",
    "Sign": "aten.sign", "HardSigmoid": "aten.hardsigmoid", "HardSwish": "aten.hardswish",
    "Softplus": "aten.softplus", "Elu": "aten.elu", "Mod": "aten.remainder",
    "GlobalAveragePool": "aten.mean", "GlobalMaxPool": "aten.amax",
    # data movement
    "Reshape": "aten.view", "Flatten": "aten.view", "Squeeze": "aten.view", "Unsqueeze": "aten.view",
    "Identity": "aten.alias", "Transpose": "aten.permute", "Expand": "aten.expand", "Concat": "aten.cat",
    "Split": "aten.split", "Slice": "aten.slice", "Cast": "aten._to_copy", "Tile": "aten.repeat",
    "Pad": "aten.constant_pad_nd", "Dropout": "aten.alias", "ConstantOfShape": "aten.full",
    "Shape": "onnx.Shape", "Size": "onnx.Size", "Constant": "aten.lift_fresh", "Range": "aten.arange",
    "ScatterND": "aten.index_put", "GatherElements": "aten.gather", "Trilu": "aten.triu", "CumSum": "aten.cumsum",
}
