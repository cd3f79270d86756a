"""Measured training/inference steps of zoo models, next to the static analysis of the same config.

Each row holds the measured time and energy per step, the measured peak memory and ``analyze``'s
FLOPs, bytes, op count, parameters and peak-memory estimate, so the predictor learns how op costs
compose into a step.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch

from flopcast.calibration.measurement import Measurement
from flopcast.calibration.rows import failure_reason, measured_columns, missing_columns, with_problem
from flopcast.calibration.zoo import ZooModel, get
from flopcast.datasets.schema import STEP_OPTION_DEFAULTS
from flopcast.features.api import analyze
from flopcast.features.spec import parse_spec
from flopcast.features.step import make_step
from flopcast.features.step_options import StepOptions

DEFAULT_PRECISIONS = {"cpu": ("fp32", "bf16"), "gpu": ("fp32", "tf32", "bf16", "fp16")}
"""Step precisions measured by default per device kind (tf32 only means something on a GPU)."""

Measure = Callable[[Callable[[], object]], Measurement]


@dataclass(frozen=True)
class StepConfig:
    """One zoo step to measure.

    Attributes:
        model: zoo model name.
        batch_size: value of the ``B`` symbol (the micro-batch size with gradient accumulation).
        mode: ``train`` or ``infer``.
        precision: fp32, tf32, bf16 or fp16.
        optimizer: adamw for train steps, none for inference.
        loss: the train step's loss (:data:`flopcast.features.step_options.LOSSES`).
        grad_clip: max gradient norm, or ``None``.
        grad_accumulation: micro-batches per optimizer step.
        fused_optimizer: the optimizer's ``fused=True`` kernels.
        grad_scaler: a ``GradScaler`` (fp16 training).
    """

    model: str
    batch_size: int
    mode: str
    precision: str
    optimizer: str
    loss: str = "mean"
    grad_clip: float | None = None
    grad_accumulation: int = 1
    fused_optimizer: bool = False
    grad_scaler: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for keys and the task list).

        Step options at their defaults are left out: a plain step keeps the key it had before they existed.
        """
        defaults = STEP_OPTION_DEFAULTS
        return {k: v for k, v in asdict(self).items() if k not in defaults or v != defaults[k]}

    def options(self) -> StepOptions:
        """The step options of this config (the plain step for inference)."""
        if self.mode != "train":
            return StepOptions()
        return StepOptions(self.loss, self.grad_clip, self.grad_accumulation, self.fused_optimizer, self.grad_scaler)

    def option_columns(self) -> dict[str, Any]:
        """The step-option columns of this config's row."""
        return {k: getattr(self, k) for k in STEP_OPTION_DEFAULTS}

    @classmethod
    def from_row(cls, r: Any) -> StepConfig:
        """The config of a step row (a mapping with ``STEP_COLUMNS``; missing or null options: the plain step)."""
        def given(k: str) -> Any:
            v = r.get(k)
            return STEP_OPTION_DEFAULTS[k] if v is None or pd.isna(v) else v

        clip = given("grad_clip")
        return cls(str(r["model"]), int(r["batch_size"]), str(r["mode"]), str(r["precision"]), str(r["optimizer"]),
                   str(given("loss")), None if clip is None else float(clip), int(given("grad_accumulation")),
                   bool(given("fused_optimizer")), bool(given("grad_scaler")))


def step_option_kwargs(r: Any) -> dict[str, Any]:
    """The step options of a step row that differ from the plain step (empty for a plain step).

    Keyword arguments of :func:`flopcast.predictor.analysis_cache.zoo_step`.
    """
    return {k: v for k, v in StepConfig.from_row(r).as_dict().items() if k in STEP_OPTION_DEFAULTS}


def step_configs(
    models: Sequence[str],
    device_kind: str,
    *,
    batch_sizes: Sequence[int] | None = None,
    precisions: Sequence[str] | None = None,
    modes: Sequence[str] = ("train", "infer"),
    options: StepOptions | None = None,
) -> list[StepConfig]:
    """Every (model, batch size, precision, mode) to measure, model by model.

    Args:
        models: zoo names (unknown names raise with close matches, see :func:`~flopcast.calibration.zoo.get`).
        device_kind: ``cpu`` or ``gpu``: picks each model's batch sizes and the default precisions.
        batch_sizes: override of the models' own batch sizes.
        precisions: override of :data:`DEFAULT_PRECISIONS`.
        modes: train and/or infer (each model's own ``modes`` restrict them: decode steps are inference only).
        options: how train steps are written (default: the plain step, as the released steps were measured);
            a ``GradScaler`` only for fp16.
    """
    o = options or StepOptions()
    out = []
    for name in models:
        zm = get(name)
        sizes = batch_sizes or (zm.gpu_batch_sizes if device_kind == "gpu" else zm.batch_sizes)
        for bs in sizes:
            for precision in precisions or DEFAULT_PRECISIONS[device_kind]:
                if zm.precisions and precision not in zm.precisions:
                    continue
                for mode in (m for m in modes if m in zm.modes):
                    if mode != "train":
                        out.append(StepConfig(name, bs, mode, precision, "none"))
                        continue
                    r = o.resolved(mode, precision, "adamw")
                    out.append(StepConfig(name, bs, mode, precision, "adamw", r.loss, r.grad_clip,
                                          r.grad_accumulation, r.fused_optimizer, bool(r.grad_scaler)))
    return out


KINETO_SILENT = "6"
"""``KINETO_LOG_LEVEL`` above every level kineto logs at (its ``USDT`` markers are level 5, errors 4)."""


def quiet_profiler() -> None:
    """Keep torch's profiler (kineto) from printing ``USDT: ... profiler_start`` / ``profiler_stop`` per window.

    Kineto writes those markers to stderr at every profile's start and stop, between the campaign's progress
    bar updates; its ``KINETO_LOG_LEVEL`` is read once, when the profiler first starts in the process, so this
    runs before every profile. The profile here only counts allocations (one that records none gives a zero
    peak, which the memory fit skips), so kineto's messages say nothing the campaign needs. A level the user
    set is kept.
    """
    os.environ.setdefault("KINETO_LOG_LEVEL", KINETO_SILENT)


def cpu_peak_memory_bytes(fn: Callable[[], object]) -> int:
    """Peak of host memory allocated while ``fn`` runs, from ``torch.profiler`` memory events, bytes.

    Sums the allocation deltas (frees negative) in time order and returns the running sum's maximum, so
    memory allocated before ``fn`` does not count: build the model and inputs inside ``fn`` to include
    parameters, gradients, optimizer state, inputs and activations.

    The profiler reports the free of a block allocated under an *earlier* profile (the previous step of a
    campaign) as a negative delta in this one: garbage of earlier windows is collected before the window and
    Python's cycle collector is paused during it, so that such frees cannot cut the running sum (a vit-tiny
    train step measured 5.2 MiB instead of 34.4 MiB when a collection fell inside its window).
    """
    quiet_profiler()
    activities = [torch.profiler.ProfilerActivity.CPU]
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with torch.profiler.profile(activities=activities, profile_memory=True, record_shapes=False) as prof:
            fn()
    finally:
        if was_enabled:
            gc.enable()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def gpu_peak_memory_bytes(fn: Callable[[], object], device: str = "cuda") -> int:
    """Peak of ``torch.cuda.max_memory_allocated`` while ``fn`` runs, above what was allocated before, bytes."""
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def _inputs(zm: ZooModel, batch_size: int, device: str) -> list[torch.Tensor]:
    return [parse_spec(s).materialize({"B": batch_size}, device) for s in zm.inputs]


def build_step(config: StepConfig, device: str) -> Callable[[], None]:
    """A fresh model on ``device`` and the step closure of ``config`` (the same step ``analyze`` traces)."""
    zm = get(config.model)
    model = zm.build().to(device)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return make_step(model, _inputs(zm, config.batch_size, device), mode=config.mode, optimizer=config.optimizer,
                     precision=config.precision, device=kind, options=config.options())


def steady_peak_memory_bytes(config: StepConfig, device: str) -> tuple[int, Callable[[], None]]:
    """Peak memory of building ``config`` and running two steps, with the built step for timing.

    Returns:
        The peak (bytes: parameters, gradients, optimizer state, inputs, activations) and the step.
    """
    held: dict[str, Callable[[], None]] = {}

    def build_and_run() -> None:
        step = build_step(config, device)
        step()  # first step: lazily created optimizer state
        step()
        held["step"] = step

    if device.startswith("cuda"):
        peak = gpu_peak_memory_bytes(build_and_run, device)
    else:
        peak = cpu_peak_memory_bytes(build_and_run)
    return peak, held["step"]


STATIC_COLUMNS = ("est_peak_memory_bytes", "flops", "bytes_accessed", "op_count", "params")
"""Step columns that come from ``analyze`` of the step's config, not from the measurement."""


def static_columns(config: StepConfig, device_kind: str) -> tuple[dict[str, Any], str]:
    """``analyze`` features of a step config, and a problem note ("" when the analysis worked).

    With the features comes ``loss``: the loss the step computes (``auto`` resolved for the model).

    A model the zoo does not know (a released row of a model since removed) is a problem too, not an error.
    """
    try:
        zm = get(config.model)
        a = analyze(zm.build, zm.inputs, batch_size=config.batch_size, mode=config.mode,
                    precision=config.precision, device="cuda" if device_kind == "gpu" else "cpu",
                    optimizer=config.optimizer, target=f"zoo:{config.model}", step=config.options())
    except Exception as e:
        return dict.fromkeys(STATIC_COLUMNS), f"analyze failed: {type(e).__name__}: {e}"
    return {"est_peak_memory_bytes": a.peak_memory_bytes, "flops": a.flops, "bytes_accessed": a.bytes_accessed,
            "op_count": a.op_count, "params": a.params, "loss": a.target.step.loss if config.mode == "train"
            else config.loss}, ""


def measure_step(config: StepConfig, device: str, measure: Measure) -> dict[str, Any]:
    """One ``STEP_COLUMNS`` row (without provenance) of a zoo step.

    An out-of-memory error or any failure to build or run the step becomes a row with NaN times,
    ``trusted=False`` and the reason; the campaign goes on.

    Args:
        config: the step.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        measure: the campaign's measuring function (windows, energy meter).
    """
    device_kind = "gpu" if device.startswith("cuda") else "cpu"
    zm = get(config.model)
    static, problem = static_columns(config, device_kind)
    row: dict[str, Any] = {"model": config.model, "family": zm.family, "batch_size": config.batch_size,
                           "mode": config.mode, "precision": config.precision, "optimizer": config.optimizer,
                           **config.option_columns(), "measured_peak_memory_bytes": None, **static}
    step = None
    try:
        row["measured_peak_memory_bytes"], step = steady_peak_memory_bytes(config, device)
        measured = measured_columns(measure(step))
    except (RuntimeError, MemoryError) as e:
        measured = missing_columns(failure_reason(e))
    finally:
        del step
        release_memory(device, collect=True)
    return {**row, **(with_problem(measured, problem) if problem else measured)}


def release_memory(device: str, collect: bool = False) -> None:
    """Free what a finished or failed measurement left.

    Args:
        device: the measured device; a GPU also returns its cached blocks.
        collect: also run the cycle collector (~0.1 s with torch and mlflow loaded: after models and
            failures, not after every op).
    """
    if collect:
        gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
