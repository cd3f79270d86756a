"""``predict --mode generate``: a request priced step by step through ``predict_on``, interpolation within 1 %."""

from __future__ import annotations

import json
import math

import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.features.api import analyze_generation
from flopcast.features.config import AnalyzeConfig
from flopcast.features.generate_options import GenerateError, GenerateOptions
from flopcast.predictor.analysis_cache import StepAnalysis
from flopcast.predictor.generate import generation_records, predict_generation, request_peak
from flopcast.predictor.main import main
from flopcast.predictor.memory import fits_in_memory
from flopcast.predictor.predict import PredictConfig, predict_on
from tests.datasets.synthetic import DEVICES

pytest.importorskip("transformers")

B, P, N = 2, 16, 17
GPT2 = {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 1000, "n_positions": 512}
SETS = tuple(f"{k}={v}" for k, v in GPT2.items())


def _config(hardware: str, options: GenerateOptions | None = None, **kw) -> PredictConfig:
    options = options or GenerateOptions(P, N)
    analysis = AnalyzeConfig(target="hf:gpt2", hf_overrides=SETS, batch_size=B, mode="generate", optimizer="none",
                             generate=options)
    return PredictConfig(analysis, hardware=(hardware,), use_store=False, **kw)


@pytest.fixture(scope="module")
def gpu(tmp_path_factory):
    path = tmp_path_factory.mktemp("hw") / "gpu.json"
    path.write_text(json.dumps(DEVICES["test-gpu"]))
    return str(path)


@pytest.fixture(scope="module")
def priced(model, gpu):
    return predict_generation(_config(gpu), model)


def _step(model, step, precision="fp32"):
    return predict_on(model, StepAnalysis.of(step.analysis), HardwareDescriptor.from_dict(DEVICES["test-gpu"]),
                      precision, "infer")


def test_every_step_is_priced_by_predict_on(model, priced):
    trace, (r,) = priced
    assert r["ttft_s"] == _step(model, trace.prefill).step_time_s[1]
    assert r["prefill_energy_j"] == _step(model, trace.prefill).step_energy_j[1]
    assert r["decode_first_time_s"] == _step(model, trace.at(P)).step_time_s[1]
    assert r["decode_last_time_s"] == _step(model, trace.at(P + N - 2)).step_time_s[1]
    assert r["decode_last_flops"] == trace.at(P + N - 2).analysis.flops


def test_request_totals_add_up(priced):
    _, (r,) = priced
    decode = r["time_per_output_token_s"] * (N - 1)
    assert r["request_time_s"] == pytest.approx(r["ttft_s"] + decode, rel=1e-12)
    assert r["decode_mean_time_s"] == pytest.approx(r["time_per_output_token_s"], rel=1e-12)
    assert r["tokens_per_s"] == pytest.approx(B * N / r["request_time_s"], rel=1e-12)
    assert r["energy_per_token_j"] == pytest.approx(r["request_energy_j"] / (B * N), rel=1e-12)
    assert r["request_time_s_p10"] <= r["request_time_s"] <= r["request_time_s_p90"]
    assert r["kv_cache_bytes_final"] == 2 * 2 * 64 * 4 * (P + N - 1) * B  # 2 x layers x (4 heads x 16) x fp32
    assert r["peak_memory_bytes"] > 0 and r["fits"] is True and r["decode_steps"] == N - 1


def test_interpolated_request_within_one_percent_of_pricing_every_decode_step(model, priced):
    trace, (r,) = priced
    every = [_step(model, trace.at(t)) for t in range(P, P + N - 1)]  # all 16 decode steps traced and priced
    assert r["time_per_output_token_s"] * (N - 1) == pytest.approx(sum(p.step_time_s[1] for p in every), rel=0.01)
    assert r["decode_mean_energy_j"] * (N - 1) == pytest.approx(sum(p.step_energy_j[1] for p in every), rel=0.01)
    assert r["decode_mean_flops"] * (N - 1) == pytest.approx(sum(trace.at(t).analysis.flops
                                                                 for t in range(P, P + N - 1)), rel=0.01)
    assert len(r["decode_traced_cache_lengths"]) < N - 1


def test_max_batch_and_context_are_the_largest_that_fit(model, tmp_path):
    small = {**DEVICES["test-gpu"], "name": "small-gpu", "memory_bytes": 512 * 2**20 + 40 * 2**20}
    path = tmp_path / "small.json"
    path.write_text(json.dumps(small))
    (r,) = generation_records(_config(str(path), GenerateOptions(P, 4), max_batch=True), model)
    d = HardwareDescriptor.from_dict(small)

    def fits(batch: int, prompt: int = P) -> bool:
        c = _config(str(path), GenerateOptions(prompt, 4)).analysis
        from dataclasses import replace

        peak = request_peak(model, d, analyze_generation(replace(c, batch_size=batch, device="cuda")), "fp32")
        return fits_in_memory(peak, d.memory_bytes, d.kind)

    b = r["max_batch_size"]
    assert b >= 1 and fits(b) and not fits(b + 1)
    tokens = r["max_context_tokens"]
    assert tokens == GPT2["n_positions"] or (fits(B, tokens - 4) and not fits(B, tokens + 1 - 4))


def test_nothing_fits_is_one_line(model_dir, tmp_path, capsys):
    tiny = {**DEVICES["test-gpu"], "name": "tiny-gpu", "memory_bytes": 512 * 2**20 + 2**20}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny))
    code = main(["predict", "hf:gpt2", *[x for s in SETS for x in ("--set", s)], "--mode", "generate",
                 "--prompt-len", "8", "--new-tokens", "4", "--model", str(model_dir), "--hardware", str(path),
                 "--max-batch"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "batch 1 x 12 tokens of hf:gpt2 fits none of tiny-gpu" in err[0], err


def _predict(capsys, model_dir, gpu, *extra):
    args = ["predict", "hf:gpt2", *[x for s in SETS for x in ("--set", s)], "--mode", "generate", "--prompt-len",
            str(P), "--new-tokens", "5", "--batch-size", str(B), "--model", str(model_dir), "--hardware", gpu, *extra]
    code = main(args)
    out = capsys.readouterr()
    return code, out


def test_cli_json_and_table(model_dir, gpu, capsys):
    code, out = _predict(capsys, model_dir, gpu, "--json")
    assert code == 0, out.err
    (r,) = json.loads(out.out)
    assert (r["mode"], r["prompt_len"], r["new_tokens"], r["hardware"]) == ("generate", P, 5, "test-gpu")
    assert r["rules"]["causal_attention"] == "full" and not math.isnan(r["request_energy_j"])
    code, out = _predict(capsys, model_dir, gpu)
    assert code == 0 and "time to first token" in out.out and "KV cache per token" in out.out


@pytest.mark.parametrize(("extra", "message"), [
    (["--training", "ep"], "--mode generate predicts one request"),
    (["--dataset-size", "100"], "--mode generate predicts one request"),
])
def test_bad_options_are_one_line(model_dir, gpu, capsys, extra, message):
    code, out = _predict(capsys, model_dir, gpu, *extra)
    err = out.err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_zero_new_tokens_is_refused(model):
    with pytest.raises(GenerateError):
        predict_generation(_config("h100", GenerateOptions(P, 0)), model)
