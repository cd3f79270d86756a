"""Recurrent layers as CUDA runs them (cuDNN), for tracing a CUDA target on CPU fake tensors.

On CPU tensors ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` run ``aten.lstm`` & co. as a per-time-step
decomposition (or oneDNN layers), thousands of small kernels a CUDA step never launches. On CUDA
``aten::lstm`` takes ``_cudnn_impl`` (``aten/src/ATen/native/cudnn/RNN.cpp``): one ``aten._cudnn_rnn``
over every step, layer and direction, and autograd's ``CudnnRnnBackward0`` runs one
``aten._cudnn_rnn_backward``. This module reproduces that path:

* :func:`flatten_rnn_weights`: what ``RNNBase.flatten_parameters`` does when a module moves to CUDA,
  once at set-up: each RNN module's weights become views into one flat buffer (not per step).
* :func:`cuda_rnn`: replaces ``torch.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu`` (``_VF``) calls on
  padded (not packed) input: ``try_get_weight_buf`` (``aten.empty`` + ``aten.set_`` over the flat
  storage), then ``aten._cudnn_rnn``. Under autocast, ``_cudnn_rnn``'s Autocast kernel
  (``aten/src/ATen/cudnn/AutocastRNN.cpp``) casts input and states to **float16 whatever the autocast
  dtype** (it hardcodes ``kHalf``) and copies the weights into a fresh fp16 flat buffer on every call
  (``aten.zeros``, then per weight tensor ``aten.empty`` + ``aten.set_`` + ``aten.copy_``, the copies
  autograd-exposed). The CUDA autocast op lists
  do not name ``lstm`` / ``gru``: nothing is cast before ``_cudnn_rnn``.
* :data:`FAKE_KERNELS`: shape functions the recorder runs for ``aten._cudnn_rnn`` (torch's meta kernel
  leaves the reserve space empty) and ``aten._cudnn_rnn_backward`` (torch has no meta kernel).

What the fake kernels assume (shape-level; cuDNN's internals are not visible):

* Reserve space (train only; kept by autograd for the backward): per layer, direction, step and
  batch row, :data:`RESERVE_UNITS` x hidden values in the compute dtype: the gate activations
  (LSTM 4, GRU 3, RNN 1) plus the layer's hidden output, plus the cell state (LSTM) or the hidden-side
  candidate term ``W_hn h + b_hn`` (GRU). Its workspace (freed inside the kernel) is not modelled.
* Outputs as the CUDA kernel allocates them: ``output`` (time-major, transposed in place to batch-major
  when ``batch_first``), ``hy``, ``cy`` (empty for GRU/RNN), the reserve (``uint8``) and the weight buffer
  it was given (a new flat copy when the weights were not flat). Backward: ``dx``, ``dhx``, ``dcx`` always
  (cuDNN's backward-data computes them together) and, when the weights need gradients, ``dw`` as views
  of one zero-filled flat buffer the size of the weight buffer (what ``param.grad`` then holds on CUDA).

Packed sequences (``PackedSequence``) and dtypes cuDNN does not take keep the decomposition.

:func:`rnn_autocast_flag` marks CUDA autocast enabled while an RNN module runs under the emulated
autocast, as a real CUDA autocast region does: ``RNNBase.check_input`` accepts an input in the autocast
dtype (the output of a lower-precision op before it) only when ``torch._C._is_any_autocast_enabled()``.
The flag changes no dispatch of the CPU fake tensors (they carry no CUDA autocast key).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from flopcast.features.formulas.rnn import GRU, LSTM, RNN_RELU, RNN_TANH

aten = torch.ops.aten
#: cuDNN RNN modes of the ``_VF`` functions an ``nn.RNNBase`` calls.
MODES = {torch.lstm: LSTM, torch.gru: GRU, torch.rnn_tanh: RNN_TANH, torch.rnn_relu: RNN_RELU}
RNN_FUNCS = frozenset(MODES)
#: dtypes ``_cudnn_rnn`` takes (bfloat16 since cuDNN 9.13, pytorch#164411).
CUDNN_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
#: The dtype ``_cudnn_rnn_cast_reflatten`` runs an autocast RNN in, for any autocast dtype.
AUTOCAST_RNN_DTYPE = torch.float16
#: Reserve-space values per hidden unit, step, batch row, layer and direction (see the module docstring).
RESERVE_UNITS = {LSTM: 6, GRU: 5, RNN_TANH: 2, RNN_RELU: 2}

Cast = Callable[[Any, torch.dtype], Any]


def flatten_rnn_weights(model: nn.Module) -> None:
    """Put each RNN module's weights into one flat buffer, as ``flatten_parameters`` does on CUDA.

    Call once at set-up, before parameters are counted for memory: each module's weights then share
    one storage (one allocation, as on the GPU) and :func:`cuda_rnn` finds them flat. Modules whose
    weights are shared among themselves or differ in dtype are left as they are (torch skips them too).
    """
    for mod in model.modules():
        if not isinstance(mod, nn.RNNBase):
            continue
        weights = [w for w in mod._flat_weights if isinstance(w, torch.Tensor)]
        if (not weights or len({id(w) for w in weights}) != len(weights)
                or len({w.dtype for w in weights}) != 1 or weights[0].dtype not in CUDNN_DTYPES):
            continue
        buf = weights[0].new_empty(sum(w.numel() for w in weights))
        offset = 0
        with torch.no_grad():
            for w in weights:
                w.set_(buf.untyped_storage(), offset, w.shape, _contiguous_strides(w.shape))
                offset += w.numel()


def _contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= max(d, 1)
    return tuple(reversed(strides))


def _flat_storage(weights: list[torch.Tensor]) -> bool:
    """Whether the weights lie back to back, contiguous and in order, from the start of one storage."""
    storage, offset = weights[0].untyped_storage()._cdata, 0
    for w in weights:
        if (w.untyped_storage()._cdata != storage or w.storage_offset() != offset
                or not w.is_contiguous() or w.dtype != weights[0].dtype):
            return False
        offset += w.numel()
    return True


def _weight_buf(weights: list[torch.Tensor]) -> torch.Tensor | None:
    """``try_get_weight_buf``: a 1-D tensor over the weights' flat storage, or ``None`` when not flat."""
    if not _flat_storage(weights):
        return None
    total = sum(w.numel() for w in weights)
    w0 = weights[0]
    return torch.empty(0, dtype=w0.dtype, device=w0.device).set_(w0.untyped_storage(), 0, (total,), (1,))


def _eligible(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype is not torch.float64


def _cast_and_reflatten(weights: list[torch.Tensor], weight_buf: torch.Tensor | None
                        ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Autocast's fp16 copy of the weights into a new flat buffer (``copy_weights_to_flat_buf_views``)."""
    probe = weight_buf if weight_buf is not None else weights[0]
    if not _eligible(probe) or probe.dtype is AUTOCAST_RNN_DTYPE:
        return weights, weight_buf
    buf = torch.zeros(sum(w.numel() for w in weights), dtype=AUTOCAST_RNN_DTYPE, device=probe.device)
    params, offset = [], 0
    for w in weights:
        # get_parameters: a tensor over the buffer's storage (set_, not an autograd view), so the copies
        # carry the gradient to the fp32 weights while the buffer itself needs none
        param = torch.empty(0, dtype=buf.dtype, device=buf.device).set_(
            buf.untyped_storage(), offset, w.shape, _contiguous_strides(w.shape))
        param.copy_(w)
        params.append(param)
        offset += w.numel()
    return params, buf


def _parse(func: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The arguments of a padded-input ``_VF`` call in one layout, ``None`` for the packed overload.

    Returns:
        (input, hx, cx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first).
    """
    if func is torch.lstm:
        if len(args) != 9 or not isinstance(args[1], (list, tuple)):
            return None
        inp, (hx, cx), params, *rest = args
    else:
        if len(args) != 9 or not isinstance(args[2], (list, tuple)):
            return None
        inp, hx, params, *rest = args
        cx = None
    return (inp, hx, cx, list(params), *rest)


def cuda_rnn(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], cast: Cast | None) -> Any:
    """``func`` (``torch.lstm``, ``gru``, ``rnn_tanh`` or ``rnn_relu``) as CUDA runs it: one ``_cudnn_rnn``.

    Args:
        func: the ``_VF`` function called.
        args: its positional arguments.
        kwargs: its keyword arguments (``nn.RNNBase`` passes none; with any, CUDA's path is not taken).
        cast: the autocast cast of the CUDA emulation (``cast(tensor, dtype)``, caching as autocast
            does), or ``None`` outside autocast.

    Returns:
        What ``func`` returns (``(output, hy, cy)`` for LSTM, ``(output, hy)`` otherwise), or
        ``NotImplemented`` when CUDA would not take cuDNN here (packed input, unsupported dtype).
    """
    parsed = None if kwargs else _parse(func, args)
    if parsed is None:
        return NotImplemented
    inp, hx, cx, weights, has_biases, num_layers, dropout, train, bidirectional, batch_first = parsed
    if (not isinstance(inp, torch.Tensor) or inp.dtype not in CUDNN_DTYPES or inp.numel() == 0 or not weights
            or any(not isinstance(w, torch.Tensor) for w in weights)):
        return NotImplemented
    mode = MODES[func]
    hidden_size, proj_size = hx.shape[2], 0
    if cx is not None and cx.shape[2] != hx.shape[2]:  # LSTM with projections
        hidden_size, proj_size = cx.shape[2], hx.shape[2]
    stride0 = (4 if has_biases else 2) + (1 if proj_size else 0)
    weight_buf = _weight_buf(weights)
    if cast is not None:
        weights, weight_buf = _cast_and_reflatten(weights, weight_buf)
        inp, hx = cast(inp, AUTOCAST_RNN_DTYPE), cast(hx, AUTOCAST_RNN_DTYPE)
        cx = None if cx is None else cast(cx, AUTOCAST_RNN_DTYPE)
    output, hy, cy, _, _ = torch._cudnn_rnn(
        inp, weights, stride0, weight_buf, hx, cx, mode, hidden_size, proj_size, num_layers, batch_first,
        float(dropout), bool(train), bool(bidirectional), [], None,
    )
    return (output, hy, cy) if func is torch.lstm else (output, hy)


@contextlib.contextmanager
def rnn_autocast_flag(dtype: torch.dtype) -> Iterator[None]:
    """While active, ``nn.RNNBase`` forwards run with CUDA autocast marked enabled in ``dtype``."""
    saved: list[tuple[bool, torch.dtype]] = []

    def enter(mod: nn.Module, _args: object) -> None:
        if isinstance(mod, nn.RNNBase):
            saved.append((torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")))
            torch.set_autocast_enabled("cuda", True)
            torch.set_autocast_dtype("cuda", dtype)

    def leave(mod: nn.Module, _args: object, _out: object) -> None:
        if isinstance(mod, nn.RNNBase) and saved:
            enabled, old = saved.pop()
            torch.set_autocast_enabled("cuda", enabled)
            torch.set_autocast_dtype("cuda", old)

    state = (torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"))
    handles = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave, always_call=True)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        torch.set_autocast_enabled("cuda", state[0])
        torch.set_autocast_dtype("cuda", state[1])


def reserve_bytes(mode: int, steps: int, batch: int, hidden: int, layers_dirs: int, itemsize: int) -> int:
    """Bytes of the training reserve space (see the module docstring)."""
    return RESERVE_UNITS[mode] * layers_dirs * steps * batch * hidden * itemsize


def _time_major(x: torch.Tensor, batch_first: bool) -> tuple[int, int]:
    return (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])


def _like_input(x: torch.Tensor, width: int, batch_first: bool) -> torch.Tensor:
    """A new ``(T, B, width)`` tensor, transposed in place to ``(B, T, width)`` when ``batch_first``."""
    steps, batch = _time_major(x, batch_first)
    out = x.new_empty((steps, batch, width))
    if batch_first:
        out.transpose_(0, 1)
    return out


def fake_cudnn_rnn(input, weight, weight_stride0, weight_buf, hx, cx, mode, hidden_size, proj_size, num_layers,
                   batch_first, dropout, train, bidirectional, batch_sizes, dropout_state):
    """The outputs of ``aten._cudnn_rnn`` (output, hy, cy, reserve, weight buffer), shapes only."""
    if len(batch_sizes):
        return NotImplemented  # packed input: torch's meta kernel
    steps, batch = _time_major(input, batch_first)
    dirs = 2 if bidirectional else 1
    out_size = proj_size or hidden_size
    output = _like_input(input, out_size * dirs, batch_first)
    hy = hx.new_empty((num_layers * dirs, batch, out_size))
    cy = hx.new_empty(0) if cx is None else cx.new_empty((num_layers * dirs, batch, hidden_size))
    size = reserve_bytes(mode, steps, batch, hidden_size, num_layers * dirs, input.element_size()) if train else 0
    reserve = input.new_empty(size, dtype=torch.uint8)
    if weight_buf is None:  # the weights were not flat: cuDNN copies them into a new buffer
        weight_buf = weight[0].new_empty(sum(w.numel() for w in weight))
    return output, hy, cy, reserve, weight_buf


def fake_cudnn_rnn_backward(input, weight, weight_stride0, weight_buf, hx, cx, output, grad_output, grad_hy,
                            grad_cy, mode, hidden_size, proj_size, num_layers, batch_first, dropout, train,
                            bidirectional, batch_sizes, dropout_state, reserve, output_mask):
    """The outputs of ``aten._cudnn_rnn_backward`` (dx, dhx, dcx, dw), shapes only."""
    if len(batch_sizes):
        raise NotImplementedError("flopcast emulates cuDNN RNNs on padded input only")
    dx = _like_input(input, input.shape[2], batch_first)
    dhx = hx.new_empty(hx.shape)
    dcx = None if cx is None else cx.new_empty(cx.shape)
    dw = []
    if output_mask[3]:
        flat = weight_buf.new_empty(weight_buf.shape)
        offset = 0
        for w in weight:
            dw.append(flat.narrow(0, offset, w.numel()).view(w.shape))
            offset += w.numel()
    return dx, dhx, dcx, dw


#: Shape functions the recorder runs in place of these ops' fake kernels (``NotImplemented``: use torch's).
FAKE_KERNELS: dict[Any, Callable[..., Any]] = {
    aten._cudnn_rnn.default: fake_cudnn_rnn,
    aten._cudnn_rnn_backward.default: fake_cudnn_rnn_backward,
}
