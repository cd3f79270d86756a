"""A user-written train step (``--step FILE.py:fn``), called as ``fn(model, inputs, optimizer)``.

The function is the whole step (loss, backward, clipping, scaler, optimizer, its own accumulation loop);
flopcast builds the model, the inputs (a list, one tensor per ``--input``) and the optimizer
(``--optimizer``, ``--fused-optimizer``; ``None`` for ``--optimizer none``) and runs it under the autocast
of ``--precision`` (so it should open no autocast region of its own). Phases are told apart from the
calls it makes: a forward of the model starts a forward phase, ``backward()`` is the backward phase, and
what follows a backward (clipping, unscaling) and ``optimizer.step()`` are the optimizer phase.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from flopcast.features.amp_emulation import AssumeFiniteGradients
from flopcast.features.errors import TargetError
from flopcast.features.records import Phase
from flopcast.features.step import NO_EVENTS, StepEvents, StepParts
from flopcast.features.step_options import StepOptionError, StepOptions

_BACKWARDS = {torch.Tensor.backward, torch.autograd.backward}


def load_step_function(spec: str) -> Callable[..., Any]:
    """The function named by ``FILE.py:fn``.

    Raises:
        StepOptionError: no such file, no such name, an import error or not a callable (one line).
    """
    from flopcast.features.targets import load_file_target

    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise StepOptionError(f"--step {spec!r}: expected FILE.py:fn")
    try:
        fn = load_file_target(spec).obj
    except TargetError as e:
        raise StepOptionError(f"--step: {e}") from None
    if not callable(fn) or isinstance(fn, (torch.nn.Module, type)):
        raise StepOptionError(f"--step {spec}: {name} is not a function of (model, inputs, optimizer)")
    return fn


class _PhaseFromCalls(TorchFunctionMode):
    """``backward()`` calls -> the backward phase, then the optimizer phase once they return."""

    def __init__(self, events: StepEvents) -> None:
        super().__init__()
        self.events = events

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func not in _BACKWARDS:
            return func(*args, **(kwargs or {}))
        self.events.phase(Phase.BACKWARD)
        out = func(*args, **(kwargs or {}))
        self.events.phase(Phase.OPTIMIZER)
        return out


def user_step_parts(model: torch.nn.Module, inputs: Sequence[torch.Tensor], optimizer: torch.optim.Optimizer | None,
                    options: StepOptions, autocast: Callable[[], contextlib.AbstractContextManager],
                    tracing: bool) -> StepParts:
    """The step of ``options.step_fn`` on ``model`` (see the module docstring).

    Args:
        model: the model (train mode).
        inputs: forward arguments, passed as a list.
        optimizer: the optimizer built for the step, or ``None``.
        options: the resolved step options (``step_fn`` set).
        autocast: factory of the step's autocast region.
        tracing: running on fake tensors (a gradient scaler's overflow flags read as finite).

    Raises:
        StepOptionError: when the function cannot be loaded.
    """
    fn = load_step_function(str(options.step_fn))
    finite = AssumeFiniteGradients if tracing else contextlib.nullcontext

    def run_user(events: StepEvents = NO_EVENTS, micro_batches: int | None = None) -> None:
        forwards = [0]

        def on_forward(*_: object) -> None:
            events.phase(Phase.FORWARD, forwards[0])
            forwards[0] += 1

        events.phase(Phase.FORWARD, 0)
        handles = [model.register_forward_pre_hook(on_forward)]
        if optimizer is not None:
            handles.append(optimizer.register_step_pre_hook(lambda *_: events.phase(Phase.OPTIMIZER)))
        try:
            with _PhaseFromCalls(events), autocast(), finite():
                fn(model, list(inputs), optimizer)
        finally:
            for h in handles:
                h.remove()

    return StepParts(run_user, model, optimizer, options, loss="")
