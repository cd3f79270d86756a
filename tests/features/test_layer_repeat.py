"""A deep stack composed from 3-, 4- and 5-layer traces equals the trace of every layer, or is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import AutoConfig

from flopcast.features.analysis import Analysis
from flopcast.features.api import analyze_config
from flopcast.features.cli import config_from_args
from flopcast.features.config import AnalyzeConfig
from flopcast.features.layer_repeat import MIN_LAYERS, PROBE_LAYERS, compose_layers, find_stack
from flopcast.features.records import Phase
from flopcast.features.spec import parse_spec
from flopcast.features.targets import _stack_depth, load_target
from flopcast.features.trace_model import trace_model
from flopcast.predictor.main import build_parser

LLAMA = ("hidden_size=64", "intermediate_size=128", "vocab_size=300", "num_attention_heads=4", "num_key_value_heads=2")


def _probes_and_full(config: AnalyzeConfig, n_layers: int) -> tuple[dict[int, Analysis], Analysis]:
    loaded = load_target(config)
    specs = [parse_spec(s) for s in loaded.default_inputs]
    probes = {n: trace_model(loaded.with_layers(n), specs, config) for n in PROBE_LAYERS}
    return probes, trace_model(loaded.with_layers(n_layers), specs, config)


def _same_step(a: Analysis, b: Analysis) -> None:
    assert len(a.ops) == len(b.ops)
    for x, y in zip(a.ops, b.ops, strict=True):
        assert (x.index, x.op, x.phase, x.module, x.inputs, x.outputs, x.flops, x.bytes_read, x.bytes_written,
                x.python_call) == (y.index, y.op, y.phase, y.module, y.inputs, y.outputs, y.flops, y.bytes_read,
                                   y.bytes_written, y.python_call)
    assert a.memory == b.memory  # peak, breakdown by kind and the op at the peak
    assert (a.params, a.trainable_params) == (b.params, b.trainable_params)


@pytest.mark.parametrize(("device", "mode", "precision"), [("cuda", "train", "bf16"), ("cpu", "infer", "fp32")])
def test_llama_stack_composed_equals_full_trace(device, mode, precision):
    config = AnalyzeConfig(target="hf:llama", batch_size=2, seq_len=16, mode=mode, precision=precision,
                           device=device, hf_overrides=(*LLAMA, "num_hidden_layers=9"))
    probes, full = _probes_and_full(config, 9)
    composed = compose_layers(probes, 9)
    assert composed is not None and composed.target.layers_traced == PROBE_LAYERS
    _same_step(composed, full)
    if mode == "train":  # the foreach optimizer ops took the 4 extra layers' tensors
        foreach = [o for o in composed.ops if o.op.startswith("aten._foreach_")]
        assert foreach and len(foreach[0].inputs) > len(next(o for o in probes[5].ops if o.op == foreach[0].op).inputs)


def test_peak_that_moves_to_another_phase_with_depth_is_followed():
    # GPT-2 bf16 on a CPU: with 3-5 layers the peak is in the optimizer step; with 16 it is at the start of
    # backward (activations). A peak extrapolated linearly from the probes' peaks would be wrong.
    config = AnalyzeConfig(target="hf:gpt2", batch_size=2, seq_len=32, precision="bf16", device="cpu",
                           hf_overrides=("n_embd=128", "n_head=4", "vocab_size=1000", "n_layer=16"))
    probes, full = _probes_and_full(config, 16)
    composed = compose_layers(probes, 16)
    assert composed is not None
    _same_step(composed, full)
    probe_peak = probes[5].ops[probes[5].memory.peak_op_index].phase
    assert probe_peak is Phase.OPTIMIZER and composed.ops[composed.memory.peak_op_index].phase is not probe_peak
    # per-parameter (for-loop) optimizer ops grew with the layers
    def lerps(a: Analysis) -> int:
        return sum(o.op == "aten.lerp_" for o in a.ops)

    assert lerps(composed) == len([p for p in full.ops if p.op == "aten.lerp_"]) > lerps(probes[5])


class Stack(torch.nn.Module):
    """Linear layers; with ``alternate`` every other layer adds a GELU, so layers are not all alike."""

    def __init__(self, n: int, alternate: bool) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(16, 16) for _ in range(n))
        self.alternate = alternate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.alternate and i % 2:
                x = torch.nn.functional.gelu(x)
        return x.sum()


@pytest.mark.parametrize("alternate", [False, True])
def test_layers_that_differ_are_refused(alternate):
    config = AnalyzeConfig(target="<python>", batch_size=4, device="cpu", inputs=("float32[B,16]",))
    specs = [parse_spec("float32[B,16]")]
    probes = {n: trace_model(lambda n=n: Stack(n, alternate), specs, config) for n in PROBE_LAYERS}
    assert find_stack(probes) == "layers"
    composed = compose_layers(probes, 8)
    if alternate:
        assert composed is None
    else:
        _same_step(composed, trace_model(lambda: Stack(8, False), specs, config))


def test_probe_counts_must_be_consecutive_and_cover_the_target():
    config = AnalyzeConfig(target="<python>", batch_size=4, device="cpu", inputs=("float32[B,16]",))
    specs = [parse_spec("float32[B,16]")]
    probes = {n: trace_model(lambda n=n: Stack(n, False), specs, config) for n in (3, 4, 6)}
    assert compose_layers(probes, 8) is None
    assert compose_layers({n: probes[n] for n in (3, 4)}, 8) is None


def test_analyze_config_composes_deep_hf_stacks_unless_told_not_to():
    config = AnalyzeConfig(target="hf:llama", batch_size=1, seq_len=16, device="cuda",
                           hf_overrides=(*LLAMA, f"num_hidden_layers={MIN_LAYERS}"))
    composed = analyze_config(config)
    full = analyze_config(replace(config, trace_all_layers=True))
    assert composed.to_dict()["layers_traced"] == list(PROBE_LAYERS) and full.to_dict()["layers_traced"] == []
    assert composed.flops == full.flops and composed.peak_memory_bytes == full.peak_memory_bytes
    shallow = analyze_config(replace(config, hf_overrides=(*LLAMA, f"num_hidden_layers={MIN_LAYERS - 1}")))
    assert shallow.target.layers_traced == ()


def test_trace_all_layers_flag_reaches_the_config():
    args = build_parser().parse_args(["predict", "hf:llama", "--trace-all-layers"])
    assert config_from_args(args, "cuda").trace_all_layers
    assert not config_from_args(build_parser().parse_args(["analyze", "hf:llama"]), "cuda").trace_all_layers


@pytest.mark.parametrize(("model_type", "overrides", "depth"), [
    ("llama", {"num_hidden_layers": 20}, 20),
    ("qwen2", {"num_hidden_layers": 20}, 20),  # uniform layer_types: resized with the stack
    ("gemma2", {}, 0),  # alternating sliding / full attention layers
    ("t5", {}, 0),  # encoder-decoder: two stacks
])
def test_stack_depth_only_for_uniform_single_stacks(model_type, overrides, depth):
    assert _stack_depth(AutoConfig.for_model(model_type, **overrides)) == depth
