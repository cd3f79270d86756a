"""One training or inference step, defined once for both tracing (fake tensors) and measuring (real).

Train step: ``zero_grad``, forward, loss = mean of the output (the first tensor, or ``logits`` of a
model output), backward, optimizer step. Infer step: forward under ``inference_mode``. bf16/fp16 run
under autocast with the target device's policy; on CUDA, fp32 runs PyTorch's defaults (TF32 convolutions,
fp32 matmuls), fp32-strict switches TF32 off for both, tf32 on for both.
The optimizer is built as torch builds it on the target: foreach kernels on CUDA, a for-loop on CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from flopcast.features.autocast_policy import CudaTargetEmulation

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def first_tensor(out: Any) -> torch.Tensor:
    """The tensor a loss is taken from: the output itself, ``logits``, or the first tensor inside.

    Raises:
        TypeError: if the output holds no tensor.
    """
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    values = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else ()
    for v in values:
        if isinstance(v, torch.Tensor):
            return v
    if hasattr(out, "to_tuple"):
        return first_tensor(out.to_tuple())
    raise TypeError(f"the model returned {type(out).__name__}, which holds no tensor to take a loss from")


def build_optimizer(params: Sequence[torch.nn.Parameter], name: str, device: str) -> torch.optim.Optimizer | None:
    """The optimizer as torch runs it on ``device`` (foreach on CUDA, for-loop on CPU).

    Args:
        params: trainable parameters.
        name: adamw, adam, sgd or none.
        device: cuda or cpu.
    """
    if name == "none" or not params:
        return None
    foreach = device == "cuda"
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-4, foreach=foreach)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-4, foreach=foreach)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-2, momentum=0.9, foreach=foreach)
    raise ValueError(f"unknown optimizer {name!r}: use adamw, adam, sgd or none")


def autocast_context(
    precision: str, device: str, emulate_cuda: bool
) -> Callable[[], contextlib.AbstractContextManager]:
    """Factory of the autocast region of a step.

    Args:
        precision: fp32, tf32, bf16 or fp16.
        device: cuda or cpu (whose autocast policy applies).
        emulate_cuda: trace a CUDA target on CPU tensors: :class:`CudaTargetEmulation` applies CUDA's
            autocast policy and attention kernel choice (also at fp32).
    """
    dtype = AUTOCAST_DTYPES.get(precision)
    if device == "cuda" and emulate_cuda:
        return lambda: CudaTargetEmulation(dtype)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device, dtype=dtype)


@dataclass
class StepParts:
    """The phases of one step, callable separately so a tracer can label them.

    Attributes:
        forward: runs the forward (and the loss in train mode); returns the loss or the output.
        backward: backpropagates the loss returned by ``forward``.
        optimizer_step: applies the optimizer (no-op without one).
        model: the model.
        optimizer: the optimizer, or ``None``.
    """

    forward: Callable[[], Any]
    backward: Callable[[Any], None]
    optimizer_step: Callable[[], None]
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer | None


def make_step_parts(
    model: torch.nn.Module,
    inputs: Sequence[torch.Tensor],
    *,
    mode: str,
    optimizer: str = "adamw",
    precision: str = "fp32",
    device: str = "cuda",
    emulate_cuda: bool = False,
) -> StepParts:
    """Build the phases of one step of ``model`` on ``inputs``.

    Args:
        model: the model (already on its device).
        inputs: forward arguments.
        mode: train or infer.
        optimizer: adamw, adam, sgd or none (train only).
        precision: fp32, tf32, bf16 or fp16.
        device: cuda or cpu: selects the autocast policy and the optimizer implementation.
        emulate_cuda: tracing on CPU fake tensors for a CUDA target (see :func:`autocast_context`).
    """
    autocast = autocast_context(precision, device, emulate_cuda)
    if mode == "infer":
        model.eval()

        def forward_infer() -> Any:
            with torch.inference_mode(), autocast():
                return model(*inputs)

        return StepParts(forward_infer, lambda _: None, lambda: None, model, None)
    if mode != "train":
        raise ValueError(f"unknown mode {mode!r}: use train or infer")
    model.train()
    opt = build_optimizer([p for p in model.parameters() if p.requires_grad], optimizer, device)

    def forward_train() -> torch.Tensor:
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        else:
            model.zero_grad(set_to_none=True)
        with autocast():
            return first_tensor(model(*inputs)).mean()

    def backward(loss: torch.Tensor) -> None:
        loss.backward()

    def optimizer_step() -> None:
        if opt is not None:
            opt.step()

    return StepParts(forward_train, backward, optimizer_step, model, opt)


def make_step(model: torch.nn.Module, inputs: Sequence[torch.Tensor], **kwargs: Any) -> Callable[[], None]:
    """One callable running a whole step (for measuring real steps); see :func:`make_step_parts`."""
    parts = make_step_parts(model, inputs, **kwargs)
    precision = kwargs.get("precision", "fp32")

    def step() -> None:
        with tf32_math(precision):
            parts.backward(parts.forward())
            parts.optimizer_step()

    return step


TF32_FLAGS = {"tf32": (True, True), "fp32-strict": (False, False)}
"""``(torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)`` of a precision; the others run
PyTorch's defaults, ``(False, True)``: fp32 matmuls, TF32 convolutions where the GPU has TF32."""


@contextlib.contextmanager
def tf32_math(precision: str):
    """Set CUDA's TF32 switches for matmuls and convolutions as ``precision`` means them (restored after)."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = TF32_FLAGS.get(precision, (False, True))
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def warm_optimizer_state(parts: StepParts) -> None:
    """Create the optimizer's state as after a first step, so the traced step is a steady-state one.

    Gives every trainable parameter a zero gradient, runs one optimizer step, then drops the gradients.
    """
    if parts.optimizer is None:
        return
    params = [p for g in parts.optimizer.param_groups for p in g["params"]]
    for p in params:
        p.grad = torch.zeros_like(p)
    parts.optimizer.step()
    parts.optimizer.zero_grad(set_to_none=True)
