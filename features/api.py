"""The Python API of the analyser: ``analyze(model_fn, inputs, ...)`` mirrors ``flopcast analyze``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from flopcast.features.analysis import Analysis
from flopcast.features.config import DEVICES, MODES, OPTIMIZERS, PRECISIONS, AnalyzeConfig
from flopcast.features.errors import AnalysisError, TargetError
from flopcast.features.generate import GenerationTrace, trace_generation
from flopcast.features.layer_repeat import MIN_LAYERS, PROBE_LAYERS, compose_layers
from flopcast.features.spec import parse_spec
from flopcast.features.step_options import StepOptions
from flopcast.features.targets import LoadedTarget, load_target
from flopcast.features.trace_model import PartsFactory, step_parts, trace_model

log = logging.getLogger(__name__)


def _check_choices(config: AnalyzeConfig) -> None:
    for name, value, allowed in (("mode", config.mode, MODES), ("precision", config.precision, PRECISIONS),
                                 ("device", config.device, DEVICES), ("optimizer", config.optimizer, OPTIMIZERS)):
        if value not in allowed:
            raise AnalysisError(f"unknown {name} {value!r}: use one of {', '.join(allowed)}")
    if config.batch_size < 1:
        raise AnalysisError(f"--batch-size must be >= 1, not {config.batch_size}")
    if config.mode != "train" and config.step.written():
        raise AnalysisError(f"{', '.join(config.step.written())}: options of a train step, not of --mode {config.mode}")
    if config.mode != "train" and config.rules.checkpoint_every:
        raise AnalysisError(f"--activation-checkpointing recomputes a train step's forward, not --mode {config.mode}'s")
    if (config.mode == "generate") != (config.generate is not None):
        raise AnalysisError("--prompt-len and --new-tokens go with --mode generate, and --mode generate needs both")


def analyze(
    model_fn: Callable[[], torch.nn.Module] | torch.nn.Module,
    inputs: Sequence[str],
    *,
    batch_size: int = 1,
    mode: str = "train",
    precision: str = "fp32",
    device: str = "cuda",
    optimizer: str = "adamw",
    dims: dict[str, int] | None = None,
    target: str = "<python>",
    step: StepOptions | None = None,
) -> Analysis:
    """Analyse one step of a PyTorch model from its code, on shape-only tensors.

    Args:
        model_fn: a callable returning the model (called under the meta device), or a model instance.
        inputs: one spec per forward argument, e.g. ``["float32[B,3,224,224]"]``.
        batch_size: value of the ``B`` symbol.
        mode: train or infer.
        precision: fp32, tf32, bf16 or fp16.
        device: device kind the step is meant for (cuda or cpu).
        optimizer: adamw, adam, sgd or none.
        dims: bindings of other symbols.
        target: label stored in the analysis.
        step: how the train step is written (default :class:`StepOptions`: mean of the output, no
            clipping, accumulation, fused kernels or scaler).

    Raises:
        AnalysisError: bad specs or a model that cannot be traced (one clear message).
    """
    config = AnalyzeConfig(target=target, inputs=tuple(inputs), batch_size=batch_size, dims=dict(dims or {}),
                           mode=mode, precision=precision, device=device, optimizer=optimizer, framework="torch",
                           step=step or StepOptions())
    _check_choices(config)
    build = (lambda: model_fn) if isinstance(model_fn, torch.nn.Module) else model_fn
    return trace_model(build, [parse_spec(s) for s in inputs], config)


def analyze_config(config: AnalyzeConfig,
                   transform: Callable[[Callable[[], torch.nn.Module]], Callable[[], torch.nn.Module]] | None = None
                   ) -> Analysis:
    """Analyse the target named in ``config`` with the front end its kind calls for (the CLI's path).

    Args:
        config: what to analyse.
        transform: for a PyTorch target, wraps its builder (one GPU's shard of a parallel run,
            :mod:`flopcast.predictor.parallel.shard`); the model is then traced whole, layer by layer.

    Raises:
        AnalysisError: target, spec or tracing problems (one clear message); ``--mode generate`` (a request of
            several steps: :func:`analyze_generation`).
    """
    _check_choices(config)
    if config.mode == "generate":
        raise AnalysisError("--mode generate is a request of several steps: use analyze_generation")
    loaded, config = _loaded(config)
    framework = config.framework
    if framework == "auto":
        framework = "onnx" if loaded.kind == "onnx" else "torch" if loaded.kind == "hf" else _detect(loaded)
    if framework != "torch":
        from flopcast.features.frontends import analyze_with_frontend

        if config.step.written():
            raise TargetError(f"{', '.join(config.step.written())} describe a PyTorch train step; {config.target} "
                              f"is analysed with the {framework} front end")
        return analyze_with_frontend(framework, config, loaded.obj)
    analysis = trace_target(loaded, config, transform=transform)
    if config.rules.checkpoint_every:  # the memory it saves: the same step without it
        plain = trace_target(loaded, replace(config, rules=replace(config.rules, activation_checkpointing="none")),
                             transform=transform)
        analysis = replace(analysis, peak_without_checkpointing_bytes=plain.peak_memory_bytes)
    return analysis


def _loaded(config: AnalyzeConfig) -> tuple[LoadedTarget, AnalyzeConfig]:
    loaded = load_target(config)
    return loaded, replace(config, inputs=tuple(config.inputs or loaded.default_inputs))


def trace_target(loaded: LoadedTarget, config: AnalyzeConfig, make_parts: PartsFactory = step_parts,
                 transform: Callable[[Callable[[], torch.nn.Module]], Callable[[], torch.nn.Module]] | None = None
                 ) -> Analysis:
    """Trace one step of a loaded PyTorch target: a deep stack composed from 3-, 4- and 5-layer traces where exact.

    Args:
        loaded: the target.
        config: the analysis config (its ``inputs`` resolved).
        make_parts: builds the step to trace (default: the train or infer step).
        transform: wraps the builder (one GPU's shard of a parallel run); the model is then traced whole.

    Raises:
        AnalysisError: not a PyTorch model, no inputs, or tracing problems.
    """
    if loaded.builder is None:
        raise TargetError(f"{config.target} is not a PyTorch model")
    if not config.inputs:
        raise TargetError(f"{config.target}: no inputs: pass --input SPEC per forward argument or define INPUTS")
    specs = [parse_spec(s) for s in config.inputs]
    # an accumulated step repeats the stack once per micro-batch: its probes never compose, trace it whole
    composable = not config.trace_all_layers and config.step.grad_accumulation == 1 and transform is None
    if loaded.with_layers is not None and loaded.n_layers >= MIN_LAYERS and composable:
        probes = {n: trace_model(loaded.with_layers(n), specs, config, make_parts) for n in PROBE_LAYERS}
        composed = compose_layers(probes, loaded.n_layers)
        if composed is not None:
            return composed
        log.info("%s: the %s-layer probes do not compose exactly; tracing all %d layers", config.target,
                 "/".join(map(str, PROBE_LAYERS)), loaded.n_layers)
    build = loaded.builder if transform is None else transform(loaded.builder)
    return trace_model(build, specs, config, make_parts)


def analyze_generation(config: AnalyzeConfig) -> GenerationTrace:
    """Trace a ``--mode generate`` request of a PyTorch causal LM: its prefill and a few decode steps.

    Raises:
        AnalysisError: target problems, a model without a KV-cache forward, N = 0, a prompt too long.
    """
    _check_choices(config)
    if config.generate is None:
        raise AnalysisError("--mode generate needs --prompt-len P and --new-tokens N")
    loaded, config = _loaded(replace(config, seq_len=config.generate.prompt_len))
    if loaded.kind == "onnx" or (loaded.kind == "file" and config.framework not in ("auto", "torch")):
        raise TargetError(f"--mode generate traces a PyTorch causal LM; {config.target} is not one")
    return trace_generation(config, lambda c, parts: trace_target(loaded, c, parts), loaded.n_layers)


def _detect(loaded) -> str:
    try:
        from flopcast.features.frontends import detect_framework
    except ImportError:
        return "torch"
    return detect_framework(loaded.path, loaded.obj)
