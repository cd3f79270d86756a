"""Shared helpers of the front-end tests: run each front end on the test models, PyTorch reference counts."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig
from flopcast.features.frontends import analyze_with_frontend
from tests.features.frontends.models import sizes as Z


def config(target: str = "m.py:f", inputs: tuple[str, ...] = (), **kw) -> AnalyzeConfig:
    return AnalyzeConfig(target=target, inputs=inputs, batch_size=kw.pop("batch_size", Z.B), device="cpu", **kw)


def run(framework: str, obj, **kw) -> Analysis:
    return analyze_with_frontend(framework, config(**kw), obj)


def torch_matmul_flops(arch: str, mode: str) -> int:
    """PyTorch reference: 2 x MACs of matmul/conv/attention ops of the step (FlopCounterMode convention).

    Uses ``flopcast.features.analyze`` once it exists (its MACs), else ``torch.utils.flop_counter``.
    """
    from tests.features.frontends.models.torch_models import MODELS

    build, shape = MODELS[arch]
    torch.manual_seed(0)
    model = build()
    try:
        from flopcast.features import analyze  # the lead's tracer, when present
    except ImportError:
        analyze = None
    if analyze is not None:
        spec = f"float32[B,{','.join(str(d) for d in shape[1:])}]"
        return 2 * analyze(lambda: model, [spec], batch_size=Z.B, mode=mode, device="cpu").macs
    x = torch.randn(shape)
    with FlopCounterMode(display=False) as counter:
        if mode == "train":
            model(x).mean().backward()
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops()


def export_onnx(arch: str, path: Path) -> Path:
    """Export a PyTorch test model with the TorchScript exporter (dynamic batch dim named ``batch``)."""
    from tests.features.frontends.models.torch_models import MODELS

    build, shape = MODELS[arch]
    model = build().eval()
    torch.onnx.export(model, (torch.randn(shape),), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}})
    return path


def close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))
