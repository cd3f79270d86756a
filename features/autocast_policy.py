"""A CUDA target emulated while tracing on CPU fake tensors: its autocast policy and attention kernels.

CUDA's autocast kernels cannot run on this CPU-only tracing path (autograd refuses CUDA fake tensors
without a CUDA build), so this TorchFunctionMode applies CUDA's published op lists above autograd:
lower-precision ops cast their floating inputs to the autocast dtype, fp32 ops to float32,
``fp32_set_opt_dtype`` ops get ``dtype=float32`` and promote ops run in the widest input dtype.
Float32 -> autocast-dtype casts of leaf tensors that require grad (the weights) are cached within the
region, as autocast does, except under ``torch.inference_mode``, where torch no longer caches since
pytorch#165068 (the installed torch is probed, see :data:`CACHES_UNDER_INFERENCE_MODE`). Lists follow
``aten/src/ATen/autocast_mode.cpp`` (CUDA section); float64 tensors are never cast.
Attention goes through :func:`flopcast.features.cuda_sdpa.cuda_sdpa`, which picks CUDA's fused kernel;
recurrent layers through :func:`flopcast.features.cuda_rnn.cuda_rnn`, one fused cuDNN call per layer stack;
dropout through :func:`flopcast.features.cuda_dropout.cuda_dropout`, CUDA's fused kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from flopcast.features.cuda_dropout import DROPOUT_FUNCS, cuda_dropout
from flopcast.features.cuda_rnn import RNN_FUNCS, cuda_rnn, rnn_autocast_flag
from flopcast.features.cuda_sdpa import cuda_sdpa

_LOWER = (
    "torch._C._nn.linear", "torch.matmul", "torch.Tensor.matmul", "torch.Tensor.__matmul__",
    "torch.Tensor.__rmatmul__", "torch.mm", "torch.Tensor.mm", "torch.bmm", "torch.Tensor.bmm",
    "torch.addmm", "torch.Tensor.addmm", "torch.baddbmm", "torch.Tensor.baddbmm", "torch.addbmm",
    "torch.addmv", "torch.addr", "torch.mv", "torch.einsum", "torch.conv1d", "torch.conv2d",
    "torch.conv3d", "torch.conv_transpose1d", "torch.conv_transpose2d", "torch.conv_transpose3d",
    "torch.conv_tbc", "torch.prelu", "torch._C._nn.scaled_dot_product_attention",
    "torch.nn.functional.scaled_dot_product_attention", "torch.chain_matmul", "torch.linalg.multi_dot",
    "torch.lstm_cell", "torch.gru_cell", "torch.rnn_tanh_cell", "torch.rnn_relu_cell", "torch.lstm",
    "torch.gru", "torch.linalg.vecdot",
)
_FP32 = (
    "torch.acos", "torch.asin", "torch.cosh", "torch.erfinv", "torch.exp", "torch.Tensor.exp",
    "torch.expm1", "torch.log", "torch.Tensor.log", "torch.log10", "torch.log2", "torch.log1p",
    "torch.reciprocal", "torch.rsqrt", "torch.Tensor.rsqrt", "torch.sinh", "torch.tan", "torch.pow",
    "torch.Tensor.pow", "torch.Tensor.__pow__", "torch._C._nn.softplus", "torch.layer_norm",
    "torch.group_norm", "torch.norm", "torch.cosine_similarity", "torch.poisson_nll_loss",
    "torch.cosine_embedding_loss", "torch._C._nn.nll_loss", "torch._C._nn.nll_loss_nd",
    "torch._C._nn.nll_loss2d", "torch.hinge_embedding_loss", "torch.kl_div", "torch._C._nn.l1_loss",
    "torch._C._nn.smooth_l1_loss", "torch._C._nn.huber_loss", "torch._C._nn.mse_loss",
    "torch.margin_ranking_loss", "torch._C._nn.multilabel_margin_loss", "torch._C._nn.soft_margin_loss",
    "torch.triplet_margin_loss", "torch._C._nn.multi_margin_loss",
    "torch.binary_cross_entropy_with_logits", "torch.dist", "torch.pdist", "torch.cdist", "torch.renorm",
    "torch.logsumexp", "torch._C._nn.cross_entropy_loss", "torch._C._nn.upsample_nearest1d",
    "torch._C._nn.upsample_nearest2d", "torch._C._nn.upsample_nearest3d", "torch._C._nn.upsample_linear1d",
    "torch._C._nn.upsample_bilinear2d", "torch._C._nn.upsample_trilinear3d", "torch._C._nn.upsample_bicubic2d",
)
# Ops with an optional dtype argument: autocast sets dtype=float32 when the caller gave none.
_FP32_SET_DTYPE = (
    "torch.prod", "torch.Tensor.prod", "torch.softmax", "torch.Tensor.softmax", "torch._C._nn.softmax",
    "torch.nn.functional.softmax", "torch.log_softmax", "torch.Tensor.log_softmax",
    "torch.nn.functional.log_softmax", "torch.cumprod", "torch.cumsum", "torch.Tensor.cumsum",
    "torch.linalg.vector_norm", "torch.linalg.matrix_norm", "torch.sum", "torch.Tensor.sum",
)
_PROMOTE = (
    "torch.addcdiv", "torch.addcmul", "torch.atan2", "torch.bilinear", "torch.cross", "torch.dot",
    "torch.grid_sampler", "torch.index_put", "torch.scatter_add", "torch.tensordot", "torch.cat",
    "torch.stack", "torch.index_copy",
)


_FUNCTIONAL_NAMES = {"cross_entropy_loss": "cross_entropy"}
"""``torch.nn.functional`` wrappers named otherwise than the op they call."""


def _resolve(names: Iterable[str]) -> set[Callable[..., Any]]:
    """The functions named, with their ``torch.nn.functional`` wrapper where one exists.

    A torch-function mode sees the Python-level call only (``F.cross_entropy``, ``F.layer_norm``, ``F.mse_loss``
    dispatch to ``torch._C._nn.cross_entropy_loss``, ``torch.layer_norm``, ... with the mode switched off),
    while CUDA's autocast acts on the op underneath: both names must carry the policy.
    """
    found: set[Callable[..., Any]] = set()
    for name in names:
        obj: Any = torch
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            found.add(obj)
        last = name.rsplit(".", 1)[-1]
        wrapper = getattr(torch.nn.functional, _FUNCTIONAL_NAMES.get(last, last), None)
        if callable(wrapper):
            found.add(wrapper)
    return found


LOWER_PRECISION_FUNCS = _resolve(_LOWER)
FP32_FUNCS = _resolve(_FP32)
FP32_SET_DTYPE_FUNCS = _resolve(_FP32_SET_DTYPE)
PROMOTE_FUNCS = _resolve(_PROMOTE)


def _caches_under_inference_mode() -> bool:
    """Whether the installed torch's autocast caches weight casts inside ``torch.inference_mode``.

    ``cached_cast`` in ``aten/src/ATen/autocast_mode.cpp`` is shared by every device type; since
    pytorch#165068 (merged December 2025; torch 2.11 measured on a GPU) it skips the cache when
    inference mode is on, so an inference step holds no bf16/fp16 copy of a weight beyond the op using
    it. Probed on CPU autocast: two bf16 linears on one fp32 weight cast it once when the cast is
    cached, twice when it is not.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    weight = torch.ones(3, 2, requires_grad=True)
    casts = []

    class CountCasts(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._to_copy.default and tuple(args[0].shape) == (3, 2):
                casts.append(func)
            return func(*args, **(kwargs or {}))

    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16), CountCasts():
            x = torch.ones(1, 2)
            torch.nn.functional.linear(x, weight)
            torch.nn.functional.linear(x, weight)
    except Exception:  # pragma: no cover - a torch without CPU bf16 autocast: assume the current rule
        return False
    return len(casts) == 1


CACHES_UNDER_INFERENCE_MODE = _caches_under_inference_mode()
"""Whether autocast keeps weight casts cached under ``torch.inference_mode`` (older torch does)."""


def _eligible(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype is not torch.float64


SDPA_FUNCS = _resolve(("torch._C._nn.scaled_dot_product_attention", "torch.nn.functional.scaled_dot_product_attention"))


class CudaTargetEmulation(TorchFunctionMode):
    """Apply CUDA's autocast casting policy, attention kernel choice, cuDNN RNNs and fused dropout to torch calls.

    Args:
        dtype: the autocast dtype (``torch.bfloat16`` or ``torch.float16``), or ``None`` without autocast.
    """

    def __init__(self, dtype: torch.dtype | None) -> None:
        super().__init__()
        self.dtype = dtype
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._rnn_flag: contextlib.AbstractContextManager | None = None

    def _cast(self, x: Any, dtype: torch.dtype) -> Any:
        if isinstance(x, (list, tuple)):
            return type(x)(self._cast(v, dtype) for v in x)
        if not _eligible(x) or x.dtype is dtype:
            return x
        # as ``cached_cast``: fp32 leaves that require grad, not views, cast to the autocast dtype
        cacheable = (x.is_leaf and x.requires_grad and not x._is_view() and x.dtype is torch.float32
                     and dtype is self.dtype
                     and (CACHES_UNDER_INFERENCE_MODE or not torch.is_inference_mode_enabled()))
        if cacheable and id(x) in self._cache and self._cache[id(x)][0] is x:
            return self._cache[id(x)][1]
        y = x.to(dtype)
        if cacheable:
            self._cache[id(x)] = (x, y)  # keep x alive so its id stays unique while cached
        return y

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in RNN_FUNCS:  # before the casts: CUDA autocast casts inside _cudnn_rnn, to float16
            out = cuda_rnn(func, args, kwargs, None if self.dtype is None else self._cast)
            if out is not NotImplemented:
                return out
        if self.dtype is None:
            pass
        elif func in LOWER_PRECISION_FUNCS:
            args, kwargs = self._cast(args, self.dtype), {k: self._cast(v, self.dtype) for k, v in kwargs.items()}
        elif func in FP32_FUNCS:
            args = self._cast(args, torch.float32)
            kwargs = {k: self._cast(v, torch.float32) for k, v in kwargs.items()}
        elif func in FP32_SET_DTYPE_FUNCS:
            if kwargs.get("dtype") is None and any(_eligible(a) for a in args[:1]):
                kwargs["dtype"] = torch.float32
        elif func in PROMOTE_FUNCS:
            flat = [a for a in args if isinstance(a, torch.Tensor)] + [
                t for a in args if isinstance(a, (list, tuple)) for t in a if isinstance(t, torch.Tensor)
            ]
            floats = [t.dtype for t in flat if _eligible(t)]
            if len(set(floats)) > 1:
                widest = torch.float32 if torch.float32 in floats else floats[0]
                args = self._cast(args, widest)
        if func in SDPA_FUNCS:
            return cuda_sdpa(func, *args, **kwargs)
        if func in DROPOUT_FUNCS:
            out = cuda_dropout(func, args, kwargs)
            if out is not NotImplemented:
                return out
        return func(*args, **kwargs)

    def __enter__(self) -> CudaTargetEmulation:
        if self.dtype is not None:  # RNN modules check that autocast is on before taking a lower-precision input
            self._rnn_flag = rnn_autocast_flag(self.dtype)
            self._rnn_flag.__enter__()
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        self._cache.clear()
        if self._rnn_flag is not None:
            self._rnn_flag.__exit__(None, None, None)
            self._rnn_flag = None
        return super().__exit__(*exc)
