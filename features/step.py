"""One training or inference step, defined once for both tracing (fake tensors) and measuring (real).

Train step, as a training loop writes it: ``zero_grad``; then per micro-batch (``grad_accumulation``
of them) the forward under autocast, the loss (:data:`LOSSES`; divided by the number of micro-batches
when there are several) and its backward (through a ``GradScaler`` when asked: fp16); then gradient
clipping (after ``unscale_`` with a scaler), the optimizer step (``scaler.step``) and ``scaler.update()``.
A user-written step function (``--step FILE.py:fn``, :mod:`flopcast.features.user_step`) replaces all
of that. Infer step: forward under ``inference_mode``. bf16/fp16 run under autocast with the target
device's policy; on CUDA, fp32 runs PyTorch's defaults (TF32 convolutions, fp32 matmuls), fp32-strict
switches TF32 off for both, tf32 on for both. The optimizer is built as torch builds it on the target:
foreach kernels on CUDA, a for-loop on CPU, or ``fused=True`` kernels when asked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from flopcast.features.amp_emulation import AssumeFiniteGradients
from flopcast.features.autocast_policy import CudaTargetEmulation
from flopcast.features.records import Phase
from flopcast.features.step_options import AUTO_LOSS, StepOptions

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
class StepEvents:
    """What a running step tells its observer (the tracer); the base class ignores everything."""

    def phase(self, phase: Phase | None, micro_batch: int = 0) -> None:
        """The step enters ``phase`` of micro-batch ``micro_batch``; ``None``: set-up work, not part of the step."""

    def new_inputs(self, tensors: Sequence[torch.Tensor]) -> None:
        """The step created input-like tensors once (labels, targets) that it keeps for later steps."""


NO_EVENTS = StepEvents()


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


def _label_input(y: torch.Tensor, inputs: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """An integer input with one id per row of the logits ``y`` (an LM's input ids), if any."""
    return next((x for x in inputs if isinstance(x, torch.Tensor) and not x.is_floating_point()
                 and not x.is_complex() and x.dtype is not torch.bool and tuple(x.shape) == tuple(y.shape[:-1])),
                None)


def choose_loss(out: Any, inputs: Sequence[torch.Tensor]) -> tuple[str, str]:
    """The loss ``auto`` picks for a model output, and why (one phrase).

    Cross-entropy where the output holds class logits: an output with ``logits`` (Hugging Face LM and
    classifier heads), a ``[batch, classes]`` tensor with two or more classes, or a ``[..., classes]``
    tensor whose leading dims are those of an integer input (token logits over input ids). ``mean``
    otherwise (a regression head ``[batch, 1]``, features, images).
    """
    y = first_tensor(out)
    if not y.is_floating_point() or y.dim() < 2 or y.shape[-1] < 2:
        return "mean", f"output {list(y.shape)} is not class logits"
    if isinstance(getattr(out, "logits", None), torch.Tensor):
        return "cross-entropy", f"the model returns logits {list(y.shape)}"
    if y.dim() == 2:
        return "cross-entropy", f"output {list(y.shape)} looks like [batch, classes]"
    if _label_input(y, inputs) is not None:
        return "cross-entropy", f"output {list(y.shape)} looks like class logits over an integer input"
    return "mean", f"output {list(y.shape)} is not class logits"


def loss_labels(y: torch.Tensor, inputs: Sequence[torch.Tensor], loss: str) -> torch.Tensor | None:
    """The labels a loss compares ``y`` with, derived from the input spec.

    Cross-entropy: an integer input with one id per row of logits whose ids are valid classes (the input
    ids of a language model), else random class ids in ``[0, classes)`` of shape ``y.shape[:-1]``; mse: a
    random target of ``y``'s shape and dtype; mean: none.
    """
    if loss == "cross-entropy":
        ids = _label_input(y, inputs)
        if ids is not None and _fits_classes(ids, y.shape[-1]):
            return ids
        return torch.randint(0, y.shape[-1], tuple(y.shape[:-1]), device=y.device)
    if loss == "mse":
        return torch.randn(tuple(y.shape), dtype=torch.float32, device=y.device)
    return None


def _fits_classes(ids: torch.Tensor, classes: int) -> bool:
    """Whether integer ``ids`` are valid class indices (fake tensors hold no values: taken as valid)."""
    from torch._subclasses.fake_tensor import is_fake

    return is_fake(ids) or bool(ids.numel() == 0 or (ids.min() >= 0 and ids.max() < classes))


def compute_loss(y: torch.Tensor, labels: torch.Tensor | None, loss: str) -> torch.Tensor:
    """``loss`` of the output tensor ``y`` against ``labels`` (see :func:`loss_labels`)."""
    if loss == "cross-entropy":
        return torch.nn.functional.cross_entropy(y.reshape(-1, y.shape[-1]), labels.reshape(-1))
    if loss == "mse":
        return torch.nn.functional.mse_loss(y, labels)
    return y.mean()


def build_optimizer(params: Sequence[torch.nn.Parameter], name: str, device: str, fused: bool = False
                    ) -> torch.optim.Optimizer | None:
    """The optimizer as torch runs it on ``device`` (foreach on CUDA, for-loop on CPU, or fused kernels).

    Args:
        params: trainable parameters.
        name: adamw, adam, sgd or none.
        device: cuda or cpu.
        fused: ``fused=True``: one ``_fused_adamw_`` / ``_fused_adam_`` / ``_fused_sgd_`` kernel per step.
    """
    if name == "none" or not params:
        return None
    impl = {"fused": True} if fused else {"foreach": device == "cuda"}
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-4, **impl)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-4, **impl)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-2, momentum=0.9, **impl)
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
    """One step, ready to run, with what a tracer needs to see of it.

    Attributes:
        run: runs the step; ``run(events, micro_batches)`` reports phases to ``events`` and runs
            ``micro_batches`` micro-batches instead of all (a tracer replicates the steady ones).
        model: the model.
        optimizer: the optimizer, or ``None``.
        options: the resolved step options.
        scaler: the gradient scaler, or ``None``.
        loss: the loss the step computes (``auto`` resolved at the first run), ``""`` for infer steps.
        loss_rule: why ``auto`` chose that loss (empty when the loss was given).
    """

    run: Callable[..., None]
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer | None
    options: StepOptions = field(default_factory=StepOptions)
    scaler: Any = None
    loss: str = ""
    loss_rule: str = ""


def make_step_parts(
    model: torch.nn.Module,
    inputs: Sequence[torch.Tensor],
    *,
    mode: str,
    optimizer: str = "adamw",
    precision: str = "fp32",
    device: str = "cuda",
    emulate_cuda: bool = False,
    options: StepOptions | None = None,
) -> StepParts:
    """Build one step of ``model`` on ``inputs``.

    Args:
        model: the model (already on its device).
        inputs: forward arguments.
        mode: train or infer.
        optimizer: adamw, adam, sgd or none (train only).
        precision: fp32, tf32, bf16 or fp16.
        device: cuda or cpu: selects the autocast policy and the optimizer implementation.
        emulate_cuda: tracing on CPU fake tensors (for a CUDA target: see :func:`autocast_context`; the
            gradient scaler's overflow checks read as finite, :class:`AssumeFiniteGradients`).
        options: how the train step is written (default: :class:`StepOptions`).

    Raises:
        StepOptionError: contradictory options, or a ``step_fn`` that cannot be loaded.
    """
    autocast = autocast_context(precision, device, emulate_cuda)
    if mode == "infer":
        model.eval()

        def run_infer(events: StepEvents = NO_EVENTS, micro_batches: int | None = None) -> None:
            events.phase(Phase.FORWARD)
            with torch.inference_mode(), autocast():
                model(*inputs)

        return StepParts(run_infer, model, None, StepOptions())
    if mode != "train":
        raise ValueError(f"unknown mode {mode!r}: use train or infer")
    opts = (options or StepOptions()).resolved(mode, precision, optimizer)
    model.train()
    opt = build_optimizer([p for p in model.parameters() if p.requires_grad], optimizer, device,
                          opts.fused_optimizer)
    if opts.step_fn is not None:
        from flopcast.features.user_step import user_step_parts

        return user_step_parts(model, inputs, opt, opts, autocast, emulate_cuda)
    scaler = torch.amp.GradScaler("cpu" if emulate_cuda else device) if opts.grad_scaler and opt else None
    parts = StepParts(lambda *a, **k: None, model, opt, opts, scaler)
    finite = AssumeFiniteGradients if emulate_cuda else contextlib.nullcontext
    params = [p for p in model.parameters() if p.requires_grad]
    labels: list[torch.Tensor | None] = []

    def micro_batch_loss(events: StepEvents) -> torch.Tensor:
        with autocast():
            out = model(*inputs)
            if not parts.loss:
                parts.loss, parts.loss_rule = (choose_loss(out, inputs) if opts.loss == AUTO_LOSS
                                               else (opts.loss, ""))
            y = first_tensor(out)
            if not labels:  # created once, like a batch of labels the data loader hands over
                events.phase(None)
                labels.append(loss_labels(y.detach(), inputs, parts.loss))
                if labels[0] is not None:
                    events.new_inputs([labels[0]])
                events.phase(Phase.FORWARD)
            loss = compute_loss(y, labels[0], parts.loss)
        return loss / opts.grad_accumulation if opts.grad_accumulation > 1 else loss

    def run_train(events: StepEvents = NO_EVENTS, micro_batches: int | None = None) -> None:
        events.phase(Phase.FORWARD, 0)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        else:
            model.zero_grad(set_to_none=True)
        for k in range(opts.grad_accumulation if micro_batches is None else micro_batches):
            events.phase(Phase.FORWARD, k)
            loss = micro_batch_loss(events)
            events.phase(Phase.BACKWARD, k)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            del loss
        events.phase(Phase.OPTIMIZER)
        with finite():
            if scaler is not None and opts.grad_clip is not None:
                scaler.unscale_(opt)
            if opts.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, opts.grad_clip, foreach=True)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            elif opt is not None:
                opt.step()

    parts.run = run_train
    return parts


def make_step(model: torch.nn.Module, inputs: Sequence[torch.Tensor], **kwargs: Any) -> Callable[[], None]:
    """One callable running a whole step (for measuring real steps); see :func:`make_step_parts`."""
    parts = make_step_parts(model, inputs, **kwargs)
    precision = kwargs.get("precision", "fp32")

    def step() -> None:
        with tf32_math(precision):
            parts.run()

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
    """Create the optimizer's (and gradient scaler's) state as after a first step: the traced step is a steady one.

    Gives every trainable parameter a zero gradient, runs one optimizer step, then drops the gradients;
    a gradient scaler creates its scale and growth tracker.
    """
    if parts.scaler is not None:
        parts.scaler.scale(torch.zeros(()))
    if parts.optimizer is None:
        return
    params = [p for g in parts.optimizer.param_groups for p in g["params"]]
    for p in params:
        p.grad = torch.zeros_like(p)
    parts.optimizer.step()
    parts.optimizer.zero_grad(set_to_none=True)


def on_device_steps(optimizer: torch.optim.Optimizer | None) -> bool:
    """Whether the optimizer keeps its ``step`` counters on the device (fused or capturable kernels)."""
    if optimizer is None:
        return False
    return bool(optimizer.defaults.get("fused") or optimizer.defaults.get("capturable"))
