"""Build shape-only :class:`Call` s in the ATen signatures the shared cost formulas expect.

Front ends describe their operators with these helpers so NumPy ``matmul``, TF ``BatchMatMulV2`` and
ONNX ``MatMul`` all become the same ``aten.mm``/``aten.bmm`` calls, costed by one formula.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from flopcast.features.records import TensorMeta
from flopcast.features.registry import Call

_ITEMSIZE = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8, "complex64": 8, "complex128": 16,
             "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8,
             "uint64": 8, "bool": 1, "string": 8, "resource": 0, "variant": 0}

OpCall = tuple[str, Call]


def meta(shape: Sequence[int], dtype: str) -> TensorMeta:
    """Tensor metadata of ``shape`` and dtype name (``float32``); itemsize in bytes from the name."""
    return TensorMeta(tuple(int(d) for d in shape), dtype, _ITEMSIZE.get(dtype, 4))


def prod(dims: Sequence[int]) -> int:
    """Product of ``dims`` (1 for none)."""
    return math.prod(int(d) for d in dims)


def simple(op: str, inputs: Sequence[TensorMeta], outputs: Sequence[TensorMeta], **kwargs: object) -> OpCall:
    """A call passing ``inputs`` positionally (pointwise ops, copies, views)."""
    return op, Call(tuple(inputs), dict(kwargs), tuple(outputs))


def reduction(op: str, x: TensorMeta, out: TensorMeta, dims: Sequence[int] | None, keepdim: bool = False) -> OpCall:
    """``aten.sum``-style reduction ``op(x, dim, keepdim)``."""
    return op, Call((x, list(dims) if dims is not None else None, keepdim), {}, (out,))


def mm(m: int, k: int, n: int, dtype: str) -> OpCall:
    """``aten.mm`` of an ``m x k`` by ``k x n`` product (2 * m * k * n FLOPs)."""
    return "aten.mm", Call((meta((m, k), dtype), meta((k, n), dtype)), {}, (meta((m, n), dtype),))


def bmm(b: int, m: int, k: int, n: int, dtype: str) -> OpCall:
    """``aten.bmm`` of ``b`` products ``m x k`` by ``k x n``; ``aten.mm`` when ``b == 1``."""
    if b == 1:
        return mm(m, k, n, dtype)
    args = (meta((b, m, k), dtype), meta((b, k, n), dtype))
    return "aten.bmm", Call(args, {}, (meta((b, m, n), dtype),))


def broadcast(*shapes: Sequence[int]) -> tuple[int, ...]:
    """NumPy broadcast of ``shapes``.

    Raises:
        ValueError: if the shapes do not broadcast.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, d in enumerate(s, start=ndim - len(s)):
            if d != 1 and out[i] not in (1, d):
                raise ValueError(f"shapes {[tuple(x) for x in shapes]} do not broadcast")
            out[i] = d if d != 1 else out[i]
    return tuple(out)


def matmul_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """Result shape of NumPy/ONNX ``matmul`` (1-D operands promoted then squeezed).

    Raises:
        ValueError: on mismatched inner dimensions.
    """
    a2 = (1, *a) if len(a) == 1 else tuple(a)
    b2 = (*b, 1) if len(b) == 1 else tuple(b)
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul inner dimensions differ: {tuple(a)} @ {tuple(b)}")
    out = (*broadcast(a2[:-2], b2[:-2]), a2[-2], b2[-1])
    if len(b) == 1:
        out = out[:-1]
    if len(a) == 1:
        out = out[:-2] + out[-1:] if len(b) > 1 else out[:-1]
    return out


def matmul(a: Sequence[int], b: Sequence[int], dtype: str) -> OpCall:
    """Batched ``a @ b`` as PyTorch lowers it: ``aten.mm`` when ``b`` has no batch dims, else ``aten.bmm``."""
    a2 = (1, *a) if len(a) == 1 else tuple(a)
    b2 = (*b, 1) if len(b) == 1 else tuple(b)
    m, k, n = a2[-2], a2[-1], b2[-1]
    if len(b2) == 2:
        return mm(prod(a2[:-1]), k, n, dtype)
    return bmm(prod(broadcast(a2[:-2], b2[:-2])), m, k, n, dtype)


def conv(
    x: TensorMeta,
    w: TensorMeta,
    out: TensorMeta,
    *,
    bias: TensorMeta | None = None,
    stride: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0),
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
    transposed: bool = False,
) -> OpCall:
    """``aten.convolution`` with channels-first metas (N, C, *spatial), weight (O, C/groups, *k)."""
    nsp = len(x.shape) - 2
    args = (x, w, bias, list(stride), list(padding), list(dilation), transposed, [0] * nsp, groups)
    return "aten.convolution", Call(args, {}, (out,))


def conv_backward(
    grad_out: TensorMeta,
    x: TensorMeta,
    w: TensorMeta,
    *,
    grad_input: bool,
    grad_weight: bool,
    stride: Sequence[int] = (1, 1),
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
) -> OpCall:
    """``aten.convolution_backward`` computing the input and/or weight gradient (channels-first metas)."""
    nsp = len(x.shape) - 2
    mask = [grad_input, grad_weight, False]
    args = (grad_out, x, w, None, list(stride), [0] * nsp, list(dilation), False, [0] * nsp, groups, mask)
    outs = tuple(m for m, keep in ((x, grad_input), (w, grad_weight)) if keep)
    return "aten.convolution_backward", Call(args, {}, outs)


def sdpa(q: TensorMeta, k: TensorMeta, v: TensorMeta, out: TensorMeta, *, is_causal: bool = False) -> OpCall:
    """``aten._scaled_dot_product_flash_attention_for_cpu`` on (B, H, S, D) metas."""
    args = (q, k, v, 0.0, is_causal)
    return "aten._scaled_dot_product_flash_attention_for_cpu", Call(args, {}, (out,))


def softmax(x: TensorMeta, out: TensorMeta, dim: int) -> OpCall:
    """``aten._softmax(x, dim, half_to_float=False)``."""
    return "aten._softmax", Call((x, dim, False), {}, (out,))


def layer_norm(x: TensorMeta, out: TensorMeta, normalized: Sequence[int], affine: bool = True) -> OpCall:
    """``aten.native_layer_norm`` over the trailing ``normalized`` dims."""
    w = meta(normalized, x.dtype) if affine else None
    args = (x, list(normalized), w, w, 1e-5)
    stats = meta((*x.shape[: len(x.shape) - len(normalized)], 1), "float32")
    return "aten.native_layer_norm", Call(args, {}, (out, stats, stats))


def batch_norm(x: TensorMeta, out: TensorMeta, *, training: bool, channel_dim: int = 1) -> OpCall:
    """``aten.native_batch_norm`` with per-channel affine and running statistics."""
    c = meta((x.shape[channel_dim],), x.dtype)
    args = (x, c, c, c, c, training, 0.1, 1e-5)
    return "aten.native_batch_norm", Call(args, {}, (out, c, c))

__all__ = ["Call", "OpCall", "batch_norm", "bmm", "broadcast", "conv", "conv_backward", "layer_norm", "matmul",
           "matmul_shape", "meta", "mm", "prod", "reduction", "sdpa", "simple", "softmax"]
