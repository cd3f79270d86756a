"""Trace one training or inference step of a PyTorch model on shape-only tensors into an Analysis."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from flopcast.features.analysis import Analysis, MemoryEstimate, StepSummary, Target
from flopcast.features.checkpointing import Recomputation
from flopcast.features.config import PURE_DTYPES, AnalyzeConfig
from flopcast.features.cuda_rnn import flatten_rnn_weights
from flopcast.features.errors import AnalysisError, ModelRaisedError, TooLargeError, first_line
from flopcast.features.hf_compat import real_run_behaviour
from flopcast.features.memory import MemoryTracker
from flopcast.features.module_path import ModulePathTracker
from flopcast.features.moe import Routing
from flopcast.features.records import OpRecord, Phase
from flopcast.features.spec import InputSpec
from flopcast.features.step import StepEvents, StepParts, make_step_parts, on_device_steps, warm_optimizer_state
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


def in_pure_precision(model: torch.nn.Module, inputs: list[torch.Tensor], precision: str
                      ) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    """The model and its floating inputs in a pure low-precision step's dtype (``bf16-pure``), else unchanged.

    As ``model.to(torch.bfloat16)`` (or ``from_pretrained(..., torch_dtype=torch.bfloat16)``) does: every floating
    parameter and buffer in that dtype, and a floating input cast as a data loader would hand it over.
    """
    if precision not in PURE_DTYPES:
        return model, inputs
    dtype = getattr(torch, PURE_DTYPES[precision])
    cast: dict[int, torch.Tensor] = {}  # tied tensors (an embedding and its LM head) stay one tensor

    def converted(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in cast:
            y = t.detach().to(dtype)
            cast[id(t)] = torch.nn.Parameter(y, t.requires_grad) if isinstance(t, torch.nn.Parameter) else y
        return cast[id(t)]

    for module in model.modules():  # fake tensors refuse ``module.to``'s in-place swap: rebind them instead
        for table in (module._parameters, module._buffers):
            for name, t in table.items():
                if t is not None and t.is_floating_point():
                    table[name] = converted(t)
    return model, [x.to(dtype) if x.is_floating_point() else x for x in inputs]


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


def _device_state(state: dict[str, object], device: str, steps_on_device: bool) -> list[torch.Tensor]:
    """Optimizer state tensors on the device: a CUDA foreach/for-loop step keeps ``step`` counters on the host."""
    host_steps = device == "cuda" and not steps_on_device
    return [v for k, v in state.items() if isinstance(v, torch.Tensor) and not (host_steps and k == "step")]


TRACED_MICRO_BATCHES = 2
"""Micro-batches traced of an accumulated step: the first (gradients created) and a steady one (gradients
accumulated), which the others repeat op for op; they are copied instead of traced."""


class _TraceEvents(StepEvents):
    """Phases of the running step -> the recorder's phase and recording switch; micro-batch boundaries."""

    def __init__(self, rec: OpRecorder, tracker: ModulePathTracker, memory: MemoryTracker) -> None:
        self.rec, self.tracker, self.memory = rec, tracker, memory
        self.micro_starts: dict[int, int] = {}
        self.optimizer_start: int | None = None
        self._at: tuple[Phase, int] | None = None

    def phase(self, phase: Phase | None, micro_batch: int = 0) -> None:
        self.rec.recording = phase is not None
        if phase is None:
            return
        self.rec.phase = phase
        if (phase, micro_batch) != self._at:
            self.tracker.reset()
            self._at = (phase, micro_batch)
        if phase is Phase.FORWARD:
            self.micro_starts.setdefault(micro_batch, len(self.rec.records))
        elif phase is Phase.OPTIMIZER and self.optimizer_start is None:
            self.optimizer_start = len(self.rec.records)

    def new_inputs(self, tensors: Sequence[torch.Tensor]) -> None:
        self.memory.track_all(tensors, "inputs")


def _repeat_micro_batches(records: list[OpRecord], memory: MemoryEstimate, events: _TraceEvents, copies: int
                          ) -> tuple[list[OpRecord], MemoryEstimate]:
    """The records (and memory timeline) with the last traced micro-batch repeated ``copies`` more times."""
    start, end = events.micro_starts[max(events.micro_starts)], events.optimizer_start
    if copies <= 0 or end is None:
        return records, memory
    block, live = records[start:end], memory.live_by_op_bytes[start:end]
    out = records[:end] + block * copies + records[end:]
    timeline = memory.live_by_op_bytes[:end] + live * copies + memory.live_by_op_bytes[end:]
    peak_index = memory.peak_op_index + (len(block) * copies if memory.peak_op_index >= end else 0)
    memory = MemoryEstimate(memory.peak_bytes, memory.breakdown_bytes, peak_index, memory.start_bytes, timeline)
    return [replace(o, index=i) for i, o in enumerate(out)], memory


def _summary(parts: StepParts) -> StepSummary:
    o = parts.options
    return StepSummary(parts.loss, parts.loss_rule, o.grad_clip, o.grad_accumulation, o.fused_optimizer,
                       bool(o.grad_scaler), o.step_fn)


def _step_where(config: AnalyzeConfig, tracker: ModulePathTracker) -> str:
    if tracker.current:
        return f"module '{tracker.current}'"
    return f"the step function {config.step.step_fn}" if config.step.step_fn else "the model"


PartsFactory = Callable[[torch.nn.Module, list[torch.Tensor], AnalyzeConfig], StepParts]
"""Builds the step to trace from the fake model, its inputs and the config (default: :func:`step_parts`)."""


def step_parts(model: torch.nn.Module, inputs: list[torch.Tensor], config: AnalyzeConfig) -> StepParts:
    """The built-in train or infer step of ``config`` (:func:`flopcast.features.step.make_step_parts`)."""
    return make_step_parts(model, inputs, mode=config.mode, optimizer=config.optimizer, precision=config.precision,
                           device=config.device, emulate_cuda=True, options=config.step)


def trace_model(build: Callable[[], torch.nn.Module], specs: Sequence[InputSpec], config: AnalyzeConfig,
                make_parts: PartsFactory = step_parts) -> Analysis:
    """Trace one step of the model made by ``build`` on inputs described by ``specs``.

    Args:
        build: returns the model; called under the meta device, so no weight memory is allocated.
        specs: one input spec per forward argument.
        config: mode, precision, device kind, optimizer, symbol bindings.
        make_parts: builds the step (another one than the built-in train or infer step: a generation step,
            :mod:`flopcast.features.generate`).

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
        model, inputs = in_pure_precision(model, inputs, config.precision)
        routing = Routing(config.rules.expert_load)
        routing.apply(model)
        parts = make_parts(model, inputs, config)
        tracker = ModulePathTracker(model)
        calls = PythonCalls() if config.mode == "train" else None  # infer: fast paths need no function mode
        rec = OpRecorder(tracker, memory, python_calls=calls)
        recompute = Recomputation(rec)
        if config.mode == "train" and config.rules.checkpoint_every:
            recompute.apply(model, config.rules.checkpoint_every, config.target)
        events = _TraceEvents(rec, tracker, memory)
        hooks = []
        with tracker, calls or contextlib.nullcontext(), rec, real_run_behaviour():
            rec.recording = False
            warm_optimizer_state(parts)
            memory.track_all(model.parameters(), "parameters")
            memory.track_all(model.buffers(), "buffers")
            if parts.optimizer is not None:
                for state in parts.optimizer.state.values():
                    memory.track_all(_device_state(state, config.device, on_device_steps(parts.optimizer)),
                                     "optimizer_state")
            memory.track_all(inputs, "inputs")
            if config.mode == "train":
                hooks = [p.register_post_accumulate_grad_hook(lambda p: memory.retag(p.grad, "gradients"))
                         for p in model.parameters() if p.requires_grad]
            rec.recording = True
            memory.start()
            try:
                parts.run(events, min(parts.options.grad_accumulation, TRACED_MICRO_BATCHES))
            except AnalysisError:
                raise
            except Exception as e:
                raise ModelRaisedError(f"{_step_where(config, tracker)} raised {type(e).__name__} in "
                                       f"{rec.phase.value}: {first_line(e)}") from e
        for h in hooks:
            h.remove()
    memory.close()
    records = routing.adjusted(recompute.flagged(rec.records))
    records, estimate = _repeat_micro_batches(records, memory.estimate(), events,
                                              parts.options.grad_accumulation - TRACED_MICRO_BATCHES)
    train = config.mode == "train"
    target = Target(
        target=config.target, framework="torch", batch_size=config.batch_size, mode=config.mode,
        precision=config.precision, device=config.device,
        optimizer=config.optimizer if train else "none",
        inputs=tuple(s.text for s in specs), dims=dict(config.dims), flopcast_version=flopcast_version(),
        step=_summary(parts) if train else StepSummary(), rules=config.rules,
    )
    return Analysis(tuple(records), target, params, trainable, estimate)
