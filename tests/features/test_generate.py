"""``--mode generate``: decode steps counted by hand, interpolation against every step, the KV-cache bytes."""

from __future__ import annotations

import json

import pytest
import torch

from flopcast.features.api import analyze_generation
from flopcast.features.config import AnalyzeConfig
from flopcast.features.generate import adaptive_points, interpolated_at, interpolated_sum
from flopcast.features.generate_options import GenerateError, GenerateOptions
from flopcast.predictor.main import main

pytest.importorskip("transformers")

B, P, N = 2, 16, 9
GPT2 = {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 1000, "n_positions": 128}
LLAMA = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 8, "num_key_value_heads": 2,
         "intermediate_size": 128, "vocab_size": 1000, "max_position_embeddings": 128}


def _config(model: str, sets: dict, options: GenerateOptions, **kw) -> AnalyzeConfig:
    return AnalyzeConfig(target=f"hf:{model}", hf_overrides=tuple(f"{k}={v}" for k, v in sets.items()),
                         batch_size=B, mode="generate", device="cpu", optimizer="none", generate=options, **kw)


@pytest.fixture(scope="module")
def gpt2():
    return analyze_generation(_config("gpt2", GPT2, GenerateOptions(P, N, max_traced=3)))


@pytest.fixture(scope="module")
def llama():
    return analyze_generation(_config("llama", LLAMA, GenerateOptions(P, N, max_traced=3)))


def _by_category(analysis, category: str) -> int:
    return sum(o.flops for o in analysis.ops if o.category.value == category)


def _attention(layers: int, heads: int, head_dim: int, keys: int) -> int:
    # per layer: Q K^T and P V over `keys` keys (2 x 2 x head_dim FLOPs a key) + 9 FLOPs a score (scale, softmax)
    return layers * B * heads * keys * (4 * head_dim + 9)


@pytest.mark.parametrize("cache_len", [P, P + N - 2])
def test_gpt2_decode_step_is_two_flops_per_parameter_plus_attention_over_the_cache(gpt2, cache_len):
    h, layers, v = GPT2["n_embd"], GPT2["n_layer"], GPT2["vocab_size"]
    step = gpt2.at(cache_len).analysis
    # per layer c_attn (h -> 3h), attn c_proj (h -> h), c_fc (h -> 4h), mlp c_proj (4h -> h), each + its bias;
    # the tied LM head (h -> v) once: 2 x B x the matrices' parameters (+ B x the biases)
    matrices = layers * (3 * h * h + h * h + 4 * h * h + 4 * h * h) + h * v
    biases = layers * (3 * h + h + 4 * h + h)
    assert _by_category(step, "matmul") == 2 * B * matrices + B * biases
    assert _by_category(step, "attention") == _attention(layers, GPT2["n_head"], h // GPT2["n_head"], cache_len + 1)


@pytest.mark.parametrize("cache_len", [P, P + N - 2])
def test_gqa_llama_decode_step_uses_query_heads_for_attention_and_kv_heads_for_projections(llama, cache_len):
    h, layers, v, inter = LLAMA["hidden_size"], LLAMA["num_hidden_layers"], LLAMA["vocab_size"], 128
    heads, kv = LLAMA["num_attention_heads"], LLAMA["num_key_value_heads"]
    head_dim = h // heads
    step = llama.at(cache_len).analysis
    # q and o (h x h), k and v (h x kv x head_dim), gate / up / down (h x inter), the untied LM head (h x v)
    matrices = layers * (2 * h * h + 2 * h * kv * head_dim + 3 * h * inter) + h * v
    assert _by_category(step, "matmul") == 2 * B * matrices
    assert _by_category(step, "attention") == _attention(layers, heads, head_dim, cache_len + 1)


@pytest.mark.parametrize(("fixture", "layers", "kv_heads", "head_dim"), [("gpt2", 2, 4, 16), ("llama", 2, 2, 8)])
def test_kv_cache_bytes_are_two_x_layers_x_kv_heads_x_head_dim_x_bytes_x_tokens(request, fixture, layers, kv_heads,
                                                                              head_dim):
    trace = request.getfixturevalue(fixture)
    per_token = 2 * layers * kv_heads * head_dim * 4  # keys and values, fp32
    assert trace.kv_bytes_per_token() == per_token
    assert trace.kv_bytes_final() == per_token * (P + N - 1) * B
    assert trace.at(P).cache.bytes == per_token * (P + 1) * B  # after the first decode step


def test_a_deep_stack_composed_from_a_few_traced_layers_reports_the_kv_cache_of_all_its_layers():
    deep = {**LLAMA, "num_hidden_layers": 20}  # >= MIN_LAYERS: traced as 3-, 4- and 5-layer probes, composed
    trace = analyze_generation(_config("llama", deep, GenerateOptions(P, 3, max_traced=2)))
    assert trace.last.cache.layers < 20  # the cache the probe held
    per_token = 2 * 20 * LLAMA["num_key_value_heads"] * 8 * 4  # keys and values of 20 layers, fp32
    assert trace.kv_bytes_per_token() == per_token
    assert trace.kv_bytes_final() == per_token * (P + 3 - 1) * B


def test_interpolated_decode_equals_tracing_every_step(gpt2):
    s = gpt2.summary()
    every = [gpt2.at(t).analysis for t in range(P, P + N - 1)]  # all 8 decode steps traced
    for key in ("flops", "bytes_accessed"):
        assert s["decode_total"][key] == pytest.approx(sum(getattr(a, key) for a in every), rel=0.01)
    assert len(s["decode_traced_cache_lengths"]) == 3  # first, middle, last: linear, nothing more to trace
    assert s["request"]["flops"] == pytest.approx(s["prefill"]["flops"] + sum(a.flops for a in every), rel=0.01)


def test_prefill_keeps_only_the_last_logits_and_the_cache_grows_the_peak(gpt2):
    lm_head = [o for o in gpt2.prefill.analysis.ops if o.category.value == "matmul"][-1]
    assert lm_head.outputs[0].numel == B * GPT2["vocab_size"]  # logits_to_keep=1, as generate() passes it
    assert gpt2.at(P + N - 2).analysis.peak_memory_bytes > gpt2.at(P).analysis.peak_memory_bytes


def test_static_cache_attends_over_its_whole_allocation():
    trace = analyze_generation(_config("llama", LLAMA, GenerateOptions(P, N, cache="static", max_traced=2)))
    first, last = trace.at(P).analysis, trace.at(P + N - 2).analysis
    assert _by_category(first, "attention") == _by_category(last, "attention") == _attention(2, 8, 8, P + N - 1)
    assert trace.kv_bytes_final() == 2 * 2 * 2 * 8 * 4 * (P + N - 1) * B


def test_causal_attention_rule_halves_the_prefill_attention_only():
    full = analyze_generation(_config("gpt2", GPT2, GenerateOptions(P, 2))).summary()
    from flopcast.features.rules import CountingRules

    halved = analyze_generation(_config("gpt2", GPT2, GenerateOptions(P, 2),
                                        rules=CountingRules(causal_attention="halved"))).summary()
    assert halved["rules"]["causal_attention"] == "halved"
    assert halved["prefill"]["flops"] < full["prefill"]["flops"]
    assert halved["decode_first"]["flops"] == full["decode_first"]["flops"]  # one query: nothing masked


@pytest.mark.parametrize(("points", "expected"), [({0: (1.0,), 4: (5.0,)}, 15.0), ({0: (0.0,), 2: (2.0,), 3: (9.0,)},
                                                                                  0 + 1 + 2 + 9)])
def test_interpolated_sum_counts_every_position_once(points, expected):
    assert interpolated_sum(points, 0, max(points))[0] == expected


def test_adaptive_points_trace_more_where_the_curve_bends():
    calls = []

    def linear(x):
        calls.append(x)
        return (3.0 * x + 7.0,)

    assert sorted(adaptive_points(linear, 10, 200, 0.002, 9)) == [10, 105, 200]

    def bent(x):
        return (100.0 + max(0, x - 150) * 10.0,)

    points = adaptive_points(bent, 10, 200, 0.002, 9)
    assert len(points) == 9 and sum(p > 105 for p in points) > sum(p < 105 for p in points)
    exact = sum(bent(x)[0] for x in range(10, 201))
    assert interpolated_sum(points, 10, 200)[0] == pytest.approx(exact, rel=0.01)
    assert interpolated_at({0: (0.0, 5.0), 10: (10.0, 5.0)}, 3) == (3.0, 5.0)


def _one_line_error(capsys, args):
    code = main(["analyze", *args, "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--prompt-len", "8", "--new-tokens", "0"], "--new-tokens must be >= 1"),
    (["--prompt-len", "120", "--new-tokens", "9"], "129 positions, but hf:gpt2 has 128"),
    (["--prompt-len", "8"], "--mode generate needs --prompt-len P and --new-tokens N"),
])
def test_bad_requests_are_one_line(capsys, args, message):
    sets = [x for k, v in GPT2.items() for x in ("--set", f"{k}={v}")]
    assert message in _one_line_error(capsys, ["hf:gpt2", *sets, "--mode", "generate", *args])


def test_a_model_without_a_kv_cache_forward_is_one_line(capsys, tmp_path):
    (tmp_path / "mlp.py").write_text("import torch\nINPUTS = ['int64[B,8]<100']\n\n\ndef build():\n    return "
                                     "torch.nn.Sequential(torch.nn.Embedding(100, 8), torch.nn.Linear(8, 100))\n")
    line = _one_line_error(capsys, [f"{tmp_path / 'mlp.py'}:build", "--mode", "generate", "--prompt-len", "4",
                                    "--new-tokens", "2"])
    assert "has no KV-cache forward" in line


def test_analyze_json_states_the_request_and_its_rules(capsys):
    sets = [x for k, v in GPT2.items() for x in ("--set", f"{k}={v}")]
    assert main(["analyze", "hf:gpt2", *sets, "--mode", "generate", "--prompt-len", str(P), "--new-tokens", str(N),
                 "--batch-size", str(B), "--device", "cpu", "--count", "macs", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["mode"], s["prompt_len"], s["new_tokens"], s["decode_steps"]) == ("generate", P, N, N - 1)
    assert s["rules"]["count"] == "macs" and s["work_unit"] == "MAC"
    assert s["request"]["work"] == s["request"]["macs"] < s["request"]["flops"]


def test_generate_options_refuse_nonsense():
    with pytest.raises(GenerateError, match="--cache must be"):
        GenerateOptions(4, 4, cache="paged")
    with pytest.raises(GenerateError, match="--prompt-len must be"):
        GenerateOptions(0, 4)
    assert GenerateOptions(10, 5).final_cache_len == 14 and GenerateOptions(10, 5).decode_steps == 4


def test_tracing_keeps_torch_grad_mode():
    assert torch.is_grad_enabled()


def test_unsupported_ops_of_every_traced_step_are_reported():
    from types import SimpleNamespace

    from flopcast.features.generate import GenerationTrace

    def step(ops):
        return SimpleNamespace(analysis=SimpleNamespace(unsupported_ops=ops))

    trace = GenerationTrace(GenerateOptions(P, N), None, step({"aten.foo": 1}),
                            {P: step({"aten.foo": 2, "aten.bar": 1}), P + 7: step({})})
    assert trace.unsupported_ops() == {"aten.foo": 3, "aten.bar": 1}


WORK_OPS = ("aten.mm", "aten.addmm", "aten.bmm", "aten.cat", "aten.index_copy_", "aten.isin", "aten.where",
            "aten.argmax", "aten._scaled_dot_product_flash_attention_for_cpu")
"""Kernels that do work in a decode step, counted in the real ``generate()`` and in the traced step."""


class _OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = f"aten.{func.overloadpacket.__name__}" if func.namespace == "aten" else str(func)
        self.counts[name] = self.counts.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def _real_generate_ops(model: torch.nn.Module, cache: str, new_tokens: int) -> dict[str, int]:
    ids = torch.ones((B, P), dtype=torch.long)
    kwargs = {"attention_mask": torch.ones_like(ids), "do_sample": False, "max_new_tokens": new_tokens,
              "min_new_tokens": new_tokens, "pad_token_id": 0, **({"cache_implementation": "static"}
                                                                   if cache == "static" else {})}
    with _OpCounter() as counter:
        model.generate(ids, **kwargs)
    return counter.counts


@pytest.mark.parametrize("cache", ["dynamic", "static"])
@pytest.mark.parametrize(("name", "sets"), [("gpt2", GPT2), ("llama", LLAMA)])
def test_a_traced_decode_step_runs_the_kernels_of_a_real_generate_step(name, sets, cache):
    # one decode step of the real generate(): a request of 3 new tokens less one of 2 (the prefill, the first
    # token's choice and the first decode step cancel); the dynamic cache concatenates each layer's keys and
    # values (cat), the static one writes them in place (index_copy_); two EOS masks (isin + where over the
    # vocabulary) as min_new_tokens sets min_length too, and the EOS stopping check (isin)
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(name, **sets)).eval()
    three, two = _real_generate_ops(model, cache, 3), _real_generate_ops(model, cache, 2)
    real = {op: three.get(op, 0) - two.get(op, 0) for op in WORK_OPS}
    trace = analyze_generation(_config(name, sets, GenerateOptions(P, N, cache=cache, max_traced=2)))
    traced = {op: sum(o.op == op for o in trace.at(P + 1).analysis.ops) for op in WORK_OPS}
    assert traced == real
    layers = sets.get("n_layer", sets.get("num_hidden_layers"))
    assert traced["aten.index_copy_" if cache == "static" else "aten.cat"] >= 2 * layers
    assert traced["aten.isin"] == 3
