"""Trace one training or inference step of a PyTorch model on shape-only tensors into an Analysis."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from flopcast.features.analysis import Analysis, Target
from flopcast.features.config import AnalyzeConfig
from flopcast.features.cuda_rnn import flatten_rnn_weights
from flopcast.features.errors import AnalysisError, ModelRaisedError, TooLargeError
from flopcast.features.hf_compat import real_run_behaviour
from flopcast.features.memory import MemoryTracker
from flopcast.features.module_path import ModulePathTracker
from flopcast.features.records import Phase
from flopcast.features.spec import InputSpec
from flopcast.features.step import make_step_parts, warm_optimizer_state
from flopcast.features.trace_torch import MAX_TENSOR_BYTES, OpRecorder, PythonCalls, shape_only_mode
from flopcast.features.version import flopcast_version


def _check_input_sizes(specs: Sequence[InputSpec], bindings: dict[str, int]) -> None:
    for s in specs:
        numel = 1
        for d in s.shape(bindings):
            numel *= d
        nbytes = numel * torch.empty((), dtype=s.torch_dtype()).element_size()
        if nbytes > MAX_TENSOR_BYTES:
            raise TooLargeError(f"input {s.text} would need {nbytes / 1e15:.1f} PB; check --batch-size and --dim")


def _build_on_meta(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    try:
        with torch.device("meta"):
            return build()
    except AnalysisError:
        raise
    except Exception as e:
        raise ModelRaisedError(f"building the model raised {type(e).__name__}: {e}") from e


def to_fake(model: torch.nn.Module) -> torch.nn.Module:
    """Move a meta-device model to fake CPU tensors, keeping tied (shared) parameters and buffers shared.

    ``to_empty`` re-creates each module's tensors separately when the tensor type changes, which would
    untie weights such as GPT-2's embedding and LM head and double their parameters, gradients and
    optimizer state.
    """
    shared: dict[int, list[tuple[torch.nn.Module, str, str]]] = {}
    for mod in model.modules():
        for kind, table in (("_parameters", mod._parameters), ("_buffers", mod._buffers)):
            for name, t in table.items():
                if t is not None:
                    shared.setdefault(id(t), []).append((mod, kind, name))
    model = model.to_empty(device="cpu")
    for places in shared.values():
        mod0, kind0, name0 = places[0]
        first = getattr(mod0, kind0)[name0]
        for mod, kind, name in places[1:]:
            getattr(mod, kind)[name] = first
    return model


def _device_state(state: dict[str, object], device: str) -> list[torch.Tensor]:
    """Optimizer state tensors on the device: a CUDA step keeps the ``step`` counters on the host."""
    return [v for k, v in state.items() if isinstance(v, torch.Tensor) and not (device == "cuda" and k == "step")]


def _run_phase(rec: OpRecorder, tracker: ModulePathTracker, phase: Phase, fn: Callable[[], object]) -> object:
    rec.phase = phase
    tracker.reset()
    try:
        return fn()
    except AnalysisError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        where = f"module '{tracker.current}'" if tracker.current else "the model"
        raise ModelRaisedError(f"{where} raised {type(e).__name__} in {phase.value}: {first}") from e


def trace_model(build: Callable[[], torch.nn.Module], specs: Sequence[InputSpec], config: AnalyzeConfig) -> Analysis:
    """Trace one step of the model made by ``build`` on inputs described by ``specs``.

    Args:
        build: returns the model; called under the meta device, so no weight memory is allocated.
        specs: one input spec per forward argument.
        config: mode, precision, device kind, optimizer, symbol bindings.

    Returns:
        The analysis of one steady-state step (optimizer state already created, as after a first step).

    Raises:
        AnalysisError: when the model cannot be traced (the message names the module and the cause).
    """
    bindings = config.bindings()
    _check_input_sizes(specs, bindings)
    model = _build_on_meta(build)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    memory = MemoryTracker()
    with shape_only_mode():
        model = to_fake(model)
        if config.device == "cuda":
            flatten_rnn_weights(model)  # as moving an RNN module to CUDA does (flatten_parameters)
        inputs = [s.materialize(bindings, "cpu") for s in specs]
        parts = make_step_parts(model, inputs, mode=config.mode, optimizer=config.optimizer,
                                precision=config.precision, device=config.device, emulate_cuda=True)
        tracker = ModulePathTracker(model)
        calls = PythonCalls() if config.mode == "train" else None  # infer: fast paths need no function mode
        rec = OpRecorder(tracker, memory, python_calls=calls)
        hooks = []
        with tracker, calls or contextlib.nullcontext(), rec, real_run_behaviour():
            rec.recording = False
            warm_optimizer_state(parts)
            memory.track_all(model.parameters(), "parameters")
            memory.track_all(model.buffers(), "buffers")
            if parts.optimizer is not None:
                for state in parts.optimizer.state.values():
                    memory.track_all(_device_state(state, config.device), "optimizer_state")
            memory.track_all(inputs, "inputs")
            if config.mode == "train":
                hooks = [p.register_post_accumulate_grad_hook(lambda p: memory.retag(p.grad, "gradients"))
                         for p in model.parameters() if p.requires_grad]
            rec.recording = True
            memory.start()
            out = _run_phase(rec, tracker, Phase.FORWARD, parts.forward)
            if config.mode == "train":
                _run_phase(rec, tracker, Phase.BACKWARD, lambda: parts.backward(out))
                del out
                _run_phase(rec, tracker, Phase.OPTIMIZER, parts.optimizer_step)
        for h in hooks:
            h.remove()
    memory.close()
    target = Target(
        target=config.target, framework="torch", batch_size=config.batch_size, mode=config.mode,
        precision=config.precision, device=config.device,
        optimizer=config.optimizer if config.mode == "train" else "none",
        inputs=tuple(s.text for s in specs), dims=dict(config.dims), flopcast_version=flopcast_version(),
    )
    return Analysis(tuple(rec.records), target, params, trainable, memory.estimate())
