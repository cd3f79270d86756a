"""How a train step is written (loss, clipping, accumulation, fused optimizer, scaler, user step): no torch import.

The options travel in :class:`~flopcast.features.config.AnalyzeConfig`, calibration's step configs and
the measured step rows; :mod:`flopcast.features.step` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from flopcast.features.errors import AnalysisError

LOSSES = ("mean", "cross-entropy", "mse")
"""Losses of the built-in train step: ``mean`` of the output (the step measured before the others
existed), cross-entropy against integer labels, mean squared error against a target of the output's shape."""
AUTO_LOSS = "auto"
"""Loss option that picks cross-entropy for class logits and ``mean`` otherwise (:func:`choose_loss`)."""


class StepOptionError(AnalysisError):
    """A step option is invalid or contradicts another."""


@dataclass(frozen=True)
class StepOptions:
    """How the train step is written. The defaults are the step measured before these options existed.

    Attributes:
        loss: one of :data:`LOSSES`, or ``auto`` (cross-entropy for class logits, see :func:`choose_loss`).
        grad_clip: max total 2-norm of the gradients (``clip_grad_norm_``); ``None``: no clipping.
        grad_accumulation: micro-batches whose gradients one optimizer step applies; the step is all of
            them (forward and backward each) plus one optimizer step.
        fused_optimizer: build the optimizer with ``fused=True`` (one multi-tensor kernel per step).
        grad_scaler: scale the loss with ``torch.amp.GradScaler`` (fp16 training); ``None``: on for fp16
            train steps with an optimizer, off otherwise (:meth:`resolved`).
        step_fn: ``FILE.py:fn``, a user-written step called as ``fn(model, inputs, optimizer)`` instead of
            the built-in one (loss, clipping, accumulation and scaling are then its own business).
    """

    loss: str = "mean"
    grad_clip: float | None = None
    grad_accumulation: int = 1
    fused_optimizer: bool = False
    grad_scaler: bool | None = False
    step_fn: str | None = None

    def __post_init__(self) -> None:
        if self.loss not in (*LOSSES, AUTO_LOSS):
            raise StepOptionError(f"unknown loss {self.loss!r}: use {', '.join((AUTO_LOSS, *LOSSES))}")
        if self.grad_accumulation < 1:
            raise StepOptionError(f"--grad-accumulation must be >= 1 micro-batch, not {self.grad_accumulation}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise StepOptionError(f"--grad-clip must be a norm > 0, not {self.grad_clip}")
        if self.step_fn is not None:
            own = [name for name in self.written() if name not in ("--step", "--fused-optimizer")]
            if own:
                raise StepOptionError(f"{', '.join(own)} and --step: the step function writes its own loss, "
                                      "clipping, accumulation and scaling")

    def written(self) -> list[str]:
        """The options set away from the plain step (``auto`` loss and scaler count as unset), as CLI flags."""
        return [name for name, on in (("--loss", self.loss not in ("mean", AUTO_LOSS)),
                                      ("--grad-clip", self.grad_clip is not None),
                                      ("--grad-accumulation", self.grad_accumulation != 1),
                                      ("--fused-optimizer", self.fused_optimizer),
                                      ("--grad-scaler", bool(self.grad_scaler)),
                                      ("--step", self.step_fn is not None)) if on]

    def resolved(self, mode: str, precision: str, optimizer: str) -> StepOptions:
        """The options as the step runs them: ``grad_scaler`` decided, train-only options off for infer."""
        if mode != "train":
            return StepOptions(loss="mean")
        scaler = self.grad_scaler
        if scaler is None:
            scaler = precision == "fp16" and optimizer != "none" and self.step_fn is None
        return StepOptions(self.loss, self.grad_clip, self.grad_accumulation,
                           self.fused_optimizer and optimizer != "none", bool(scaler), self.step_fn)
