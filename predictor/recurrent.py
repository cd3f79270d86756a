"""Fused recurrent ops as the kernels they run, so the op model can time them.

A fused RNN op (cuDNN's ``_cudnn_rnn`` on a GPU, oneDNN's ``mkldnn_rnn_layer`` on a CPU, and their
backwards) runs its time steps one after another: its time is not a roofline of its total FLOPs but
the sum of many small, dependent kernels. The op microbenchmarks time matmuls and element-wise ops,
never a whole fused RNN, so a fused op row is replaced by the kernel rows it is made of, each with a
``repeat`` count, and the op model times those. Per layer and direction, with ``T`` steps, batch ``B``,
input size ``I``, hidden size ``H`` and ``g`` gates:

* forward: one input-projection GEMM over every step (``[T*B, I] x [I, g*H]``, bias added), then per
  step one recurrent GEMM (``[B, H] x [H, g*H]``) and one fused gate kernel (``[B, g*H]`` in,
  ``[B, H]`` out);
* backward: per step one gate-gradient kernel and one recurrent GEMM (``[B, g*H] x [g*H, H]``), then
  the input-gradient GEMM (``[T*B, g*H] x [g*H, I]``) and the two weight-gradient GEMMs
  (``[I, T*B] x [T*B, g*H]``, ``[H, T*B] x [T*B, g*H]``).

A cuDNN bidirectional layer runs its two directions together (per step, one launch covers both), so
its per-step kernels are costed once per layer with twice the rows; oneDNN runs one direction per op.
Kernels inside a fused op are launched by the library, not dispatched by the framework one by one:
:func:`inner_kernel_time_s` takes the framework's per-op overhead (the device's measured tiny-op time,
which every microbenchmark row includes) off their predicted times and charges a device-side floor
instead. Element-wise FLOPs follow :mod:`flopcast.features.formulas.rnn`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flopcast.features.formulas.rnn import BACKWARD_FACTOR, GRU, LSTM, RNN_TANH, gate_flops
from flopcast.predictor.featurize import base_op_name

FUSED_RNN_OPS = frozenset({"aten._cudnn_rnn", "aten._cudnn_rnn_backward", "aten.mkldnn_rnn_layer",
                           "aten.mkldnn_rnn_layer_backward"})
"""Base names of the fused recurrent ops expanded into kernels."""

INNER_KERNEL_FLOOR_S = {"gpu": 3e-6, "cpu": 0.0}
"""Least device time of a kernel launched from C++ rather than by a Python-level call, s: a GPU kernel
launched back to back on one stream takes CUDA's launch latency (about 2-4 us) whatever its size; a CPU op
run from C++ is just its compute (its dispatch is host time, fitted by the step stage). Other kinds use the
GPU's."""

_MODE_OF_GATES = {4: LSTM, 3: GRU, 1: RNN_TANH}
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float64": 8}


@dataclass(frozen=True)
class RecurrentLayer:
    """One layer and direction of a fused RNN op.

    Attributes:
        steps: time steps T.
        batch: batch size B.
        input_size: input features I of the layer.
        hidden: hidden size H.
        gates: gates per hidden unit g (LSTM 4, GRU 3, plain RNN 1).
        directions: directions run together per step (2 for a cuDNN bidirectional layer, else 1).
    """

    steps: int
    batch: int
    input_size: int
    hidden: int
    gates: int
    directions: int = 1


def recurrent_layers(op: str, input_shapes: list[list[int]], output_shapes: list[list[int]] | None = None
                     ) -> list[RecurrentLayer]:
    """The layers (and directions) of a fused RNN op, from its shapes.

    Args:
        op: base op name (one of :data:`FUSED_RNN_OPS`).
        input_shapes: the op's input shapes, lists flattened in argument order (input, weights, ..., hx, ...).
        output_shapes: its output shapes (a cuDNN forward's output ``[..., D*H]`` tells the directions D).

    Returns:
        One entry per layer (cuDNN: both directions in one entry) or per direction (oneDNN); empty when the
        shapes do not read as an RNN call.
    """
    if not input_shapes or not input_shapes[0]:
        return []
    x = input_shapes[0]
    if op.startswith("aten.mkldnn_rnn_layer"):  # input, w_ih, w_hh, b_ih, b_hh, hx [B, H], ...
        mats, hx = [s for s in input_shapes[1:3] if len(s) == 2], input_shapes[5] if len(input_shapes) > 5 else []
        batch = hx[0] if len(hx) == 2 else 0
    else:  # input, weights..., weight_buf, hx [L*D, B, H], ...
        rest = input_shapes[1:]
        end = next((i for i, s in enumerate(rest) if len(s) == 3), len(rest))
        mats, hx = [s for s in rest[:end] if len(s) == 2], rest[end] if end < len(rest) else []
        batch = hx[1] if len(hx) == 3 else 0
    if batch <= 0 or len(mats) < 2:
        return []
    tokens = int(np.prod(x[:-1]))
    steps = max(tokens // batch, 1)
    layers = []
    for w_ih, w_hh in zip(mats[0::2], mats[1::2], strict=False):
        hidden = w_hh[1]
        gates = max(w_ih[0] // max(hidden, 1), 1)
        layers.append(RecurrentLayer(steps, batch, w_ih[1], hidden, gates))
    dirs = _cudnn_directions(input_shapes, output_shapes or [], layers[0].hidden) if op.startswith("aten._cudnn") else 1
    if dirs == 2 and len(layers) % 2 == 0:  # [layer 0 fwd, layer 0 bwd, layer 1 fwd, ...]: one entry per layer
        return [RecurrentLayer(a.steps, a.batch, a.input_size, a.hidden, a.gates, 2) for a in layers[0::2]]
    return layers


def _cudnn_directions(input_shapes: list[list[int]], output_shapes: list[list[int]], hidden: int) -> int:
    """Directions D of a cuDNN RNN call: its output (forward) or the output it reads (backward) is ``[..., D*H]``."""
    hx = next((i for i, s in enumerate(input_shapes[1:], 1) if len(s) == 3), len(input_shapes))
    widths = [s[-1] for s in (*input_shapes[hx + 1:], *output_shapes[:1]) if len(s) == 3]
    return 2 if any(w == 2 * hidden for w in widths) else 1


def _row(base: pd.Series, op: str, category: str, inputs: list[list[int]], output: list[int], flops: float,
         read: int, written: int, repeat: int) -> dict:
    return {**base.to_dict(), "op": op, "category": category, "input_shapes": json.dumps(inputs),
            "output_shapes": json.dumps([output]), "flops": float(flops), "bytes_read": float(read),
            "bytes_written": float(written), "repeat": int(repeat)}


def _gemm(base: pd.Series, m: int, k: int, n: int, size: int, repeat: int = 1, bias: bool = False) -> dict:
    inputs = [[n], [m, k], [k, n]] if bias else [[m, k], [k, n]]
    read = (m * k + k * n + (n if bias else 0)) * size
    return _row(base, "aten.addmm" if bias else "aten.mm", "matmul", inputs, [m, n], 2 * m * k * n, read,
                m * n * size, repeat)


def layer_kernels(base: pd.Series, layer: RecurrentLayer, backward: bool) -> list[dict]:
    """Kernel rows (with ``repeat``) of one layer and direction of a fused RNN op row ``base``."""
    t, b, i, h, g, d = layer.steps, layer.batch, layer.input_size, layer.hidden, layer.gates, layer.directions
    size = _ITEMSIZE.get(str(base["dtype"]), 4)
    gh, mode, rows = g * h, _MODE_OF_GATES.get(g, LSTM), d * layer.batch  # per-step kernels cover every direction
    gate = gate_flops(mode, rows * h, True)
    if not backward:
        return [_gemm(base, t * b, i, d * gh, size, bias=True),
                _gemm(base, rows, h, gh, size, repeat=t),
                _row(base, "aten.mul", "elementwise", [[rows, gh], [rows, gh]], [rows, h], gate,
                     (2 * rows * gh + rows * h) * size, 2 * rows * h * size, t)]
    return [_row(base, "aten.mul", "elementwise", [[rows, gh], [rows, h]], [rows, gh], BACKWARD_FACTOR * gate,
                 (rows * gh + 3 * rows * h) * size, (rows * gh + rows * h) * size, t),
            _gemm(base, rows, gh, h, size, repeat=t),
            _gemm(base, t * b, d * gh, i, size),
            _gemm(base, i, t * b, d * gh, size),
            _gemm(base, d * h, t * b, gh, size)]


def expand_recurrent(work: pd.DataFrame) -> pd.DataFrame:
    """``work`` with every fused RNN op row replaced by its kernel rows.

    Every row gets a ``repeat`` count and an ``inner`` flag (a kernel launched inside a fused op); rows whose
    shapes do not read as an RNN call stay as they are (``repeat`` 1, not inner).
    """
    names = work["op"].astype(str).map(base_op_name)
    fused = names.isin(FUSED_RNN_OPS).to_numpy()
    if not fused.any():
        return work.assign(repeat=1, inner=False)
    rows = []
    for (_, r), is_fused, name in zip(work.iterrows(), fused, names, strict=True):
        layers = recurrent_layers(name, json.loads(str(r["input_shapes"])),
                                  json.loads(str(r["output_shapes"]))) if is_fused else []
        if not layers:
            rows.append({**r.to_dict(), "repeat": 1, "inner": False})
            continue
        for layer in layers:
            rows.extend({**k, "inner": True} for k in layer_kernels(r, layer, backward=name.endswith("backward")))
    return pd.DataFrame(rows)


def inner_kernel_time_s(q: np.ndarray, roofline_s: np.ndarray, overhead_s: float | np.ndarray, kind: str
                        ) -> np.ndarray:
    """Time of kernels launched inside a fused op, s: predicted time less the framework's per-op overhead.

    Args:
        q: predicted time quantiles of the kernels, s, shape ``(n, 3)``.
        roofline_s: their roofline times, s.
        overhead_s: the device's per-op (tiny-op) overhead the op model's predictions include, s (one value
            or one per row).
        kind: device kind (``gpu``, ``cpu``, ...), for :data:`INNER_KERNEL_FLOOR_S`.

    Returns:
        ``max(q - overhead, roofline) + floor``, never above ``q``; same shape as ``q``.
    """
    floor = INNER_KERNEL_FLOOR_S.get(kind, INNER_KERNEL_FLOOR_S["gpu"])
    overhead = np.broadcast_to(np.asarray(overhead_s, float), (len(q),))[:, None]
    device = np.maximum(q - overhead, np.asarray(roofline_s, float)[:, None]) + floor
    return np.minimum(q, device)
