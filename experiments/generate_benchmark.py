"""``model.generate()`` on this CPU, measured, beside ``flopcast predict --mode generate`` for this machine.

``python experiments/generate_benchmark.py --calibration DIR [--repeats 5]`` (DIR: a ``flopcast calibrate
--quick --out DIR`` folder of this machine; without it only the bundled model's prediction is scored). For GPT-2
small (124 M) and a small grouped-query Llama (6 x 768, 12 query heads, 4 KV heads, 87 M), each at several prompt
lengths P, new tokens N and batch sizes B: real ``model.generate()`` (random weights from the config, greedy,
``min_new_tokens = max_new_tokens = N``, fp32, this process's torch threads), timed ``--repeats`` times after a
warm-up, the median kept: the whole request, and a request of one new token (the prefill and its token choice:
the time to first token); time per output token = (request - first token) / (N - 1). Beside it the prediction
for ``--hardware local`` through :func:`flopcast.predictor.generate.generation_records` (the function behind
``flopcast predict --mode generate --json``), calibrated with DIR and, for comparison, with the bundled model
alone (``use_store=False``: this machine's store entry is not read). Prints the table and the median absolute
errors and writes ``experiments/results/generate_benchmark.{md,csv}``. Energy is predicted but not scored:
these VMs have no energy counter.

On a VM whose cores other jobs share, run both ``calibrate`` and this script with ``OMP_NUM_THREADS=1``: a
2-thread torch on 2 vCPUs with another busy process ran GPT-2's generate() 10-16x slower than one thread
(2026-12-04: 700 against 44 ms per token), which times the contention, not the model. The probe and the
campaign then describe the one core torch uses, and the prediction is for that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
from host_load import load
from result_tables import write_result

from flopcast.calibration.probe import probe_cpu
from flopcast.features.api import analyze_generation
from flopcast.features.config import AnalyzeConfig
from flopcast.features.generate import GenerationTrace
from flopcast.features.generate_options import GenerateOptions
from flopcast.features.targets import load_hf_target
from flopcast.predictor.generate import generation_records
from flopcast.predictor.io import load_model
from flopcast.predictor.model import CostModel
from flopcast.predictor.predict import PredictConfig

RESULTS = Path(__file__).resolve().parent / "results"

MODELS = {
    "gpt2": ("hf:gpt2", ()),
    "llama-gqa": ("hf:llama", ("num_hidden_layers=6", "hidden_size=768", "num_attention_heads=12",
                               "num_key_value_heads=4", "intermediate_size=2048", "vocab_size=32000",
                               "max_position_embeddings=2048")),
}
"""Benchmark models: target and ``--set`` overrides (not the zoo's decode models, which calibrate)."""


class Request(NamedTuple):
    """One benchmarked request.

    Attributes:
        model: a key of :data:`MODELS`.
        prompt_len: P.
        new_tokens: N.
        batch_size: B.
        cache: ``dynamic`` or ``static``.
    """

    model: str
    prompt_len: int
    new_tokens: int
    batch_size: int
    cache: str = "dynamic"

    def analysis(self) -> AnalyzeConfig:
        """The request as ``flopcast predict --mode generate`` analyses it."""
        target, sets = MODELS[self.model]
        return AnalyzeConfig(target=target, hf_overrides=sets, batch_size=self.batch_size, mode="generate",
                             optimizer="none", precision="fp32",
                             generate=GenerateOptions(self.prompt_len, self.new_tokens, self.cache))


REQUESTS = tuple(Request(m, p, n, b, c) for m in MODELS for p, n, b, c in (
    (16, 32, 1, "dynamic"), (128, 32, 1, "dynamic"), (512, 32, 1, "dynamic"), (128, 64, 4, "dynamic"),
    (64, 32, 16, "dynamic"), (128, 32, 1, "static")))
"""P, N, B and cache of each model's requests: short to long prompts, batch 1 to 16, one static cache."""


def generate_s(model: torch.nn.Module, ids: torch.Tensor, new_tokens: int, cache: str) -> float:
    """Wall time of one greedy ``model.generate()`` of exactly ``new_tokens`` tokens after ``ids``, s."""
    kwargs: dict[str, Any] = {"attention_mask": torch.ones_like(ids), "do_sample": False,
                              "max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "use_cache": True,
                              "pad_token_id": 0}
    if cache == "static":
        kwargs["cache_implementation"] = "static"
    start = time.perf_counter()
    out = model.generate(ids, **kwargs)
    elapsed = time.perf_counter() - start
    if out.shape[1] != ids.shape[1] + new_tokens:
        raise RuntimeError(f"generate() made {out.shape[1] - ids.shape[1]} tokens, not {new_tokens}")
    return elapsed


def measured(r: Request, model: torch.nn.Module, repeats: int) -> dict[str, float]:
    """Median request time and time to first token of ``r`` over ``repeats`` runs, interleaved, after a warm-up."""
    vocab = model.config.vocab_size
    ids = torch.randint(1, vocab, (r.batch_size, r.prompt_len), generator=torch.Generator().manual_seed(0))
    generate_s(model, ids, r.new_tokens, r.cache)  # warm-up: allocator, kernels, static cache compile paths
    full, first = [], []
    for _ in range(repeats):
        full.append(generate_s(model, ids, r.new_tokens, r.cache))
        first.append(generate_s(model, ids, 1, r.cache))
    request, ttft = statistics.median(full), statistics.median(first)
    return {"measured_request_s": request, "measured_ttft_s": ttft,
            "measured_tpot_ms": (request - ttft) / (r.new_tokens - 1) * 1e3, "spread": max(full) / min(full)}


class Predictor:
    """Predictions of requests on ``local``, each request traced once for every way of pricing it.

    Args:
        model: the bundled cost model.
    """

    def __init__(self, model: CostModel) -> None:
        self.model = model
        self.traces: dict[str, GenerationTrace] = {}

    def trace(self, config: AnalyzeConfig) -> GenerationTrace:
        """The request's trace (decode steps traced on demand and kept)."""
        key = repr(config)
        if key not in self.traces:
            self.traces[key] = analyze_generation(config)
        return self.traces[key]

    def __call__(self, r: Request, calibration: Path | None) -> dict[str, Any]:
        """``predict --mode generate --hardware local --json``'s record of ``r``."""
        config = PredictConfig(r.analysis(), hardware=("local",), calibration=calibration, use_store=False)
        return generation_records(config, self.model, self.trace)[0]


def predicted_columns(record: dict[str, Any], way: str) -> dict[str, Any]:
    """The predicted columns of one way of pricing (``cal``, ``bundled``)."""
    return {f"{way}_request_s": record["request_time_s"], f"{way}_ttft_s": record["ttft_s"],
            f"{way}_tpot_ms": record["time_per_output_token_s"] * 1e3,
            f"{way}_j_per_token": record["energy_per_token_j"],
            f"{way}_calibrated": record["calibrated"], f"{way}_traced": len(record["decode_traced_cache_lengths"])}


def error(table: pd.DataFrame, way: str, what: str) -> pd.Series:
    """Absolute relative error of ``way``'s ``what`` (``request_s``, ``ttft_s``, ``tpot_ms``)."""
    return (table[f"{way}_{what}"] / table[f"measured_{what}"] - 1).abs()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=Path, help="this machine's `flopcast calibrate --out` folder")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per request, median kept (5)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    args = parser.parse_args()
    import transformers

    transformers.logging.set_verbosity_error()
    names = args.models.split(",")
    requests = [r for r in REQUESTS if r.model in names]
    cpu = probe_cpu().name
    start = f"{cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads; start: {load()}"
    print(start)
    rows = []
    for name in names:
        target, sets = MODELS[name]
        model = load_hf_target(AnalyzeConfig(target=target, hf_overrides=sets)).builder().eval()
        for r in (r for r in requests if r.model == name):
            rows.append({**r._asdict(), **measured(r, model, args.repeats)})
            print(f"measured {r}: {rows[-1]['measured_request_s']:.3f} s", flush=True)
        del model
    measured_load = load()
    predict = Predictor(load_model(None))
    ways = {"bundled": None, **({"cal": args.calibration} if args.calibration else {})}
    for row, r in zip(rows, requests, strict=True):
        for way, calibration in ways.items():
            row.update(predicted_columns(predict(r, calibration), way))
    table = pd.DataFrame(rows)
    summary = []
    for way in ways:
        for what in ("request_s", "tpot_ms", "ttft_s"):
            table[f"{way}_{what}_err"] = error(table, way, what)
        summary.append(f"{way} ({'calibrated' if table[f'{way}_calibrated'].all() else 'not calibrated'}): median "
                       f"|error| request time {table[f'{way}_request_s_err'].median():.1%}, time per output token "
                       f"{table[f'{way}_tpot_ms_err'].median():.1%}, time to first token "
                       f"{table[f'{way}_ttft_s_err'].median():.1%} over {len(table)} requests")
    command = "python experiments/generate_benchmark.py" + (" --calibration DIR" if args.calibration else "") + \
        f" --repeats {args.repeats}"
    notes = [start + f"; after measuring: {measured_load}; end: {load()}.",
             *summary, "Columns: measured medians; `bundled_*` the shipped model alone, `cal_*` refitted with this "
             "CPU's `flopcast calibrate --quick` campaign; `*_err` |predicted / measured - 1|; `*_traced` decode "
             "steps traced (the rest interpolated); `spread` max / min of the timed requests."]
    write_result(RESULTS, "generate_benchmark", f"model.generate() on this CPU: measured vs predicted (`{command}`)",
                 "\n\n".join(notes), table, lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
    print(f"wrote {RESULTS / 'generate_benchmark'}.md and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
