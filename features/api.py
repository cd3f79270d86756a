"""The Python API of the analyser: ``analyze(model_fn, inputs, ...)`` mirrors ``flopcast analyze``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from flopcast.features.analysis import Analysis
from flopcast.features.config import DEVICES, MODES, OPTIMIZERS, PRECISIONS, AnalyzeConfig
from flopcast.features.errors import AnalysisError, TargetError
from flopcast.features.layer_repeat import MIN_LAYERS, PROBE_LAYERS, compose_layers
from flopcast.features.spec import parse_spec
from flopcast.features.step_options import StepOptions
from flopcast.features.targets import load_target
from flopcast.features.trace_model import trace_model

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
        AnalysisError: target, spec or tracing problems (one clear message).
    """
    _check_choices(config)
    loaded = load_target(config)
    inputs = config.inputs or loaded.default_inputs
    config = replace(config, inputs=tuple(inputs))
    framework = config.framework
    if framework == "auto":
        framework = "onnx" if loaded.kind == "onnx" else "torch" if loaded.kind == "hf" else _detect(loaded)
    if framework != "torch":
        from flopcast.features.frontends import analyze_with_frontend

        if config.step.written():
            raise TargetError(f"{', '.join(config.step.written())} describe a PyTorch train step; {config.target} "
                              f"is analysed with the {framework} front end")
        return analyze_with_frontend(framework, config, loaded.obj)
    if loaded.builder is None:
        raise TargetError(f"{config.target} is not a PyTorch model")
    if not inputs:
        raise TargetError(f"{config.target}: no inputs: pass --input SPEC per forward argument or define INPUTS")
    specs = [parse_spec(s) for s in inputs]
    # an accumulated step repeats the stack once per micro-batch: its probes never compose, trace it whole
    composable = not config.trace_all_layers and config.step.grad_accumulation == 1 and transform is None
    if loaded.with_layers is not None and loaded.n_layers >= MIN_LAYERS and composable:
        probes = {n: trace_model(loaded.with_layers(n), specs, config) for n in PROBE_LAYERS}
        composed = compose_layers(probes, loaded.n_layers)
        if composed is not None:
            return composed
        log.info("%s: the %s-layer probes do not compose exactly; tracing all %d layers", config.target,
                 "/".join(map(str, PROBE_LAYERS)), loaded.n_layers)
    return trace_model(loaded.builder if transform is None else transform(loaded.builder), specs, config)


def _detect(loaded) -> str:
    try:
        from flopcast.features.frontends import detect_framework
    except ImportError:
        return "torch"
    return detect_framework(loaded.path, loaded.obj)
