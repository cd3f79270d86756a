"""``flopcast predict --mode generate``: a ``model.generate()`` request priced step by step on the one cost path.

Every traced step of the request (:mod:`flopcast.features.generate`: the prefill and a few decode steps) is an
inference step priced by :func:`flopcast.predictor.predict.predict_on` (op model, compose, step stages,
energy, memory), exactly as ``predict --mode infer`` prices one forward. The decode steps between two traced
ones are interpolated linearly (time, energy, FLOPs and bytes quantiles); more decode steps are traced where
a middle step's predicted time, FLOPs or bytes leaves the line (:func:`flopcast.features.generate.adaptive_points`).
A request's intervals add the steps' quantiles (their errors are taken as fully correlated: one device, one
model). Throughput counts the generated tokens of the whole batch over the request time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rich.console import Console

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.features.analysis import Analysis
from flopcast.features.generate import GenerationTrace, adaptive_points, interpolated_sum
from flopcast.features.generate_options import GenerateError
from flopcast.features.report import si
from flopcast.predictor.analysis_cache import StepAnalysis
from flopcast.predictor.memory import fits_in_memory
from flopcast.predictor.model import CostModel
from flopcast.predictor.predict import (
    PredictConfig,
    Prediction,
    calibrated_for,
    max_batch_size,
    predict_on,
    resolve_hardware,
    traces_by_kind,
)

QUANTITIES = ("time_s_p10", "time_s", "time_s_p90", "energy_j_p10", "energy_j", "energy_j_p90", "flops", "macs",
              "bytes_accessed")
"""What each step contributes to a request, in the order of :func:`step_vector`."""

Tracer = Callable[[Any], GenerationTrace]
"""Traces a request from an AnalyzeConfig (:func:`flopcast.features.api.analyze_generation`)."""


@dataclass(frozen=True)
class RequestCost:
    """One generation request as the step of :func:`flopcast.predictor.predict.run_totals` (which reads these two).

    Attributes:
        step_time_s: the request's time quantiles (10 / 50 / 90 %), s.
        step_energy_j: its energy quantiles, J.
    """

    step_time_s: tuple[float, float, float]
    step_energy_j: tuple[float, float, float]

    @classmethod
    def of(cls, record: dict[str, Any]) -> RequestCost:
        """From a :func:`generation_records` record."""
        def q(key: str) -> tuple[float, float, float]:
            return record[key + "_p10"], record[key], record[key + "_p90"]

        return cls(q("request_time_s"), q("request_energy_j"))


def step_vector(p: Prediction, a: Analysis) -> tuple[float, ...]:
    """One priced step (its prediction and analysis) as the vector of :data:`QUANTITIES`."""
    return (*p.step_time_s, *p.step_energy_j, float(a.flops), float(a.macs), float(a.bytes_accessed))


def _named(vector: Sequence[float], prefix: str) -> dict[str, float]:
    return {f"{prefix}_{k}": v for k, v in zip(QUANTITIES, vector, strict=True)}


@dataclass
class DevicePricing:
    """A request's traced steps priced on one device, each step once.

    Attributes:
        model: the (calibrated) cost model.
        device: the device.
        precision: the request's precision.
        trace: the traced steps.
        priced: ``(prediction, vector)`` per cache length (``None``: the prefill).
    """

    model: CostModel
    device: HardwareDescriptor
    precision: str
    trace: GenerationTrace
    priced: dict[int | None, tuple[Prediction, tuple[float, ...]]] = field(default_factory=dict)

    def at(self, cache_len: int | None) -> tuple[Prediction, tuple[float, ...]]:
        """The prediction and vector of the step at ``cache_len`` (``None``: the prefill), priced once."""
        if cache_len not in self.priced:
            step = self.trace.prefill if cache_len is None else self.trace.at(cache_len)
            p = predict_on(self.model, StepAnalysis.of(step.analysis), self.device, self.precision, "infer")
            self.priced[cache_len] = (p, step_vector(p, step.analysis))
        return self.priced[cache_len]


def decode_points(pricings: Sequence[DevicePricing]) -> dict[int, list[tuple[float, ...]]]:
    """The traced decode steps of a request (cache length -> one vector per device), refined where it bends.

    Every device prices the same traced steps; a step is added where any device's predicted median time, or
    the FLOPs or bytes, leave the line (:func:`flopcast.features.generate.adaptive_points`).
    """
    options = pricings[0].trace.options

    def cost(cache_len: int) -> tuple[float, ...]:
        vectors = [p.at(cache_len)[1] for p in pricings]
        return (vectors[0][6], vectors[0][8], *(v[1] for v in vectors))

    points = adaptive_points(cost, options.first_cache_len, options.last_cache_len, options.tolerance,
                             options.max_traced)
    return {t: [p.at(t)[1] for p in pricings] for t in sorted(points)}


def _quantiles(r: dict[str, Any], key: str, lo: float, mid: float, hi: float) -> None:
    r[key], r[key + "_p10"], r[key + "_p90"] = mid, lo, hi


def request_record(pricing: DevicePricing, points: dict[int, tuple[float, ...]], batch_size: int
                   ) -> dict[str, Any]:
    """The device-dependent JSON keys of one request: prefill, decode (first, last, mean), totals, memory.

    Args:
        pricing: the request priced on the device.
        points: the traced decode steps' vectors on this device, by cache length (empty when N = 1).
        batch_size: sequences in the batch.
    """
    trace, options = pricing.trace, pricing.trace.options
    prefill_p, prefill = pricing.at(None)
    n_decode = options.decode_steps
    decode = interpolated_sum(points, options.first_cache_len, options.last_cache_len) if points else \
        (0.0,) * len(QUANTITIES)
    total = [a + b for a, b in zip(prefill, decode, strict=True)]
    tokens = batch_size * options.new_tokens
    r: dict[str, Any] = {**prefill_p.to_dict(), **_named(prefill, "prefill"), "decode_steps": n_decode,
                         "decode_traced_cache_lengths": sorted(points)}
    for key in ("step_time_s", "step_time_s_p10", "step_time_s_p90", "step_energy_j", "step_energy_j_p10",
                "step_energy_j_p90", "avg_power_w", "roofline_time_s", "ops_time_s", "predicted_ops",
                "launch_bound_share", "time_by_category_s", "roofline_fallback"):
        r.pop(key)  # a request has no one step: its steps are below
    if points:
        r.update(_named(points[options.first_cache_len], "decode_first"))
        r.update(_named(points[options.last_cache_len], "decode_last"))
        r.update(_named([x / n_decode for x in decode], "decode_mean"))
    _quantiles(r, "ttft_s", *prefill[:3])
    _quantiles(r, "time_per_output_token_s", *([x / n_decode for x in decode[:3]] if n_decode else [None] * 3))
    _quantiles(r, "request_time_s", *total[:3])
    _quantiles(r, "request_energy_j", *total[3:6])
    _quantiles(r, "tokens_per_s", tokens / total[2], tokens / total[1], tokens / total[0])
    _quantiles(r, "energy_per_token_j", *(x / tokens for x in total[3:6]))
    r.update(request_flops=total[6], request_macs=total[7], request_bytes_accessed=total[8],
             kv_cache_bytes_per_token=trace.kv_bytes_per_token(), kv_cache_bytes_final=trace.kv_bytes_final())
    last_p = pricing.at(options.last_cache_len)[0] if n_decode else prefill_p
    peaks = [p.peak_memory_bytes for p in (prefill_p, last_p)]
    peak = None if None in peaks else max(peaks)
    r.update(peak_memory_bytes=peak, fits=None if peak is None else fits_in_memory(peak, pricing.device.memory_bytes,
                                                                                    pricing.device.kind))
    r["extrapolated"] = prefill_p.extrapolated or last_p.extrapolated
    r["notes"] = sorted({*prefill_p.notes, *last_p.notes})
    return r


def request_peak(model: CostModel, d: HardwareDescriptor, trace: GenerationTrace, precision: str) -> int | None:
    """The request's predicted peak on ``d``: the larger of the prefill's and the last decode step's, B."""
    steps = [trace.prefill, trace.last]
    peaks = [predict_on(model, StepAnalysis.of(s.analysis), d, precision, "infer").peak_memory_bytes for s in steps]
    return None if None in peaks else max(peaks)


def largest_fitting(model: CostModel, d: HardwareDescriptor, config: PredictConfig, tracer: Tracer,
                    vary: str) -> int:
    """The largest batch size (``vary="batch"``) or tokens per sequence (``"context"``) whose request fits ``d``.

    ``context`` keeps the new tokens and lengthens the prompt, up to the model's positions (a longer prompt
    raises and counts as not fitting). Each try traces the request's prefill and last decode step.
    """
    a, g = config.analysis, config.analysis.generate

    def fits(n: int) -> bool:
        if vary == "batch":
            c = replace(a, batch_size=n)
        elif n <= g.new_tokens:
            return True  # no shorter prompt than one token is asked about: the smallest request
        else:
            c = replace(a, generate=replace(g, prompt_len=n - g.new_tokens))
        try:
            peak = request_peak(model, d, tracer(c), a.precision)
        except GenerateError:
            return False
        return peak is not None and fits_in_memory(peak, d.memory_bytes, d.kind)

    start = a.batch_size if vary == "batch" else g.total_len
    return max_batch_size(fits, start)


def predict_generation(config: PredictConfig, model: CostModel, tracer: Tracer | None = None
                       ) -> tuple[GenerationTrace, list[dict[str, Any]]]:
    """Predict a ``--mode generate`` request on every configured device.

    Args:
        config: the prediction config (``analysis.generate`` set).
        model: the loaded cost model (calibrated here as ``predict`` calibrates it).
        tracer: traces a request (default: :func:`flopcast.features.api.analyze_generation`).

    Returns:
        The traces of the first device kind and one JSON-ready record per device, in order.

    Raises:
        GenerateError: a bad request (see :func:`flopcast.features.api.analyze_generation`), or a request that
            fits none of the named devices even at batch 1 (with ``--max-batch``).
    """
    if tracer is None:
        from flopcast.features.api import analyze_generation

        tracer = analyze_generation
    from flopcast.predictor.featurize import analysis_device

    model, calibration, source = calibrated_for(config, model)
    devices = [resolve_hardware(h, calibration) for h in config.hardware]
    traces = traces_by_kind(devices, tracer, config.analysis)
    pricings = [DevicePricing(model, d, config.analysis.precision, traces[analysis_device(d.kind)]) for d in devices]
    options = config.analysis.generate
    per_device: list[dict[int, tuple[float, ...]]] = [{} for _ in pricings]
    for kind in traces:  # refine each device kind's trace on its own devices
        group = [i for i, p in enumerate(pricings) if p.trace is traces[kind]]
        if options.decode_steps:
            for t, vectors in decode_points([pricings[i] for i in group]).items():
                for i, v in zip(group, vectors, strict=True):
                    per_device[i][t] = v
    records = []
    for pricing, points in zip(pricings, per_device, strict=True):
        r = request_record(pricing, points, config.analysis.batch_size)
        if config.max_batch:
            r["max_batch_size"] = largest_fitting(model, pricing.device, config, tracer, "batch")
            r["max_context_tokens"] = largest_fitting(model, pricing.device, config, tracer, "context")
        if calibration is not None and pricing.device is calibration:
            r["calibration"] = str(source)
        records.append(r)
    if config.max_batch and all(r["max_batch_size"] == 0 for r in records):
        names = ", ".join(r["hardware"] for r in records)
        raise GenerateError(f"--mode generate: batch 1 x {options.total_len} tokens of {config.analysis.target} fits "
                            f"none of {names}: shorten --prompt-len / --new-tokens or name a larger device")
    return next(iter(traces.values())), records


def generation_records(config: PredictConfig, model: CostModel, tracer: Tracer | None = None
                       ) -> list[dict[str, Any]]:
    """The ``predict --json`` records of a request: its settings, rules and static totals, then per device."""
    trace, records = predict_generation(config, model, tracer)
    a, g = config.analysis, config.analysis.generate
    prefill = trace.prefill.analysis
    common = {"target": a.target, "mode": "generate", "batch_size": a.batch_size, "precision": a.precision,
              "prompt_len": g.prompt_len, "new_tokens": g.new_tokens, "cache": g.cache,
              "rules": prefill.rules_dict(), "work_unit": "MAC" if a.rules.count == "macs" else "FLOP",
              "params": prefill.params, "unsupported_ops": trace.unsupported_ops(), "model_version": model.version}
    return [{**common, **r} for r in records]


def render_generation(records: list[dict[str, Any]], console: Console) -> None:
    """Print a request's predictions: one column per device."""
    from flopcast.calibration.fitted_table import Layout
    from flopcast.predictor.cli import FORMATS, calibrated_cell, fits_cell, fmt_time, interval_cell, peak_memory_cell

    r0 = records[0]
    unit = r0["work_unit"]
    work = "macs" if unit == "MAC" else "flops"
    console.print(f"[bold]{r0['target']}[/bold]  generate: batch {r0['batch_size']}, prompt {r0['prompt_len']} + "
                  f"{r0['new_tokens']} new tokens (greedy), {r0['cache']} KV cache, {r0['precision']}, "
                  f"{si(r0['params'])} params")

    def q(key: str, f: Callable[[float], str]) -> Callable[[dict[str, Any]], str]:
        return lambda r: "-" if r.get(key) is None else interval_cell(r, key, f)

    joule = FORMATS["J"]

    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        (f"prefill {unit}", lambda r: si(r[f"prefill_{work}"], unit)),
        ("prefill bytes", lambda r: si(r["prefill_bytes_accessed"], "B")),
        ("time to first token", q("ttft_s", fmt_time)),
        (f"decode {unit} (first, last)", lambda r: "-" if "decode_first_flops" not in r else
         f"{si(r[f'decode_first_{work}'], unit)}, {si(r[f'decode_last_{work}'], unit)}"),
        ("decode time (first, last)", lambda r: "-" if "decode_first_time_s" not in r else
         f"{fmt_time(r['decode_first_time_s'])}, {fmt_time(r['decode_last_time_s'])}"),
        ("time per output token", q("time_per_output_token_s", fmt_time)),
        ("tokens per second", q("tokens_per_s", lambda v: f"{v:.3g}")),
        ("request time", q("request_time_s", fmt_time)),
        ("request energy", q("request_energy_j", joule)),
        ("energy per token", q("energy_per_token_j", joule)),
        ("KV cache per token", lambda r: si(r["kv_cache_bytes_per_token"], "B", 1024)),
        ("KV cache at the end", lambda r: si(r["kv_cache_bytes_final"], "B", 1024)),
        ("peak memory", peak_memory_cell),
        ("fits", fits_cell),
        ("calibrated", calibrated_cell),
    ]
    if "max_batch_size" in r0:
        rows += [("max batch at this context", lambda r: str(r["max_batch_size"])),
                 ("max tokens per sequence at this batch", lambda r: str(r["max_context_tokens"]))]
    headers = ("", *(r["hardware"] + (" *" if r["extrapolated"] else "") for r in records))
    cells = tuple((label, *(cell(r) for r in records)) for label, cell in rows)
    title = f"predicted (median [10 %, 90 %]), model {r0['model_version']}"
    table = Layout(title, None, headers, (False, *(True for _ in records)), cells).table(console)
    table.title_justify = "left"
    console.print(table)
    traced = r0["decode_traced_cache_lengths"]
    console.print(f"decode steps: {r0['decode_steps']}, traced at cache lengths {', '.join(map(str, traced)) or '-'}"
                  f" (the others interpolated); rules: " + ", ".join(f"{k} {v}" for k, v in r0["rules"].items()
                                                                     if v is not None))
    for r in records:
        for note in r["notes"]:
            console.print(f"[yellow]{r['hardware']}:[/yellow] {note}")


def run_predict_generation(args: argparse.Namespace) -> int:
    """``flopcast predict --mode generate``: predict the request on every ``--hardware`` device and print it."""
    from flopcast.predictor.cli import predict_config_from_args
    from flopcast.predictor.ep import training_from_args
    from flopcast.predictor.io import load_model

    if training_from_args(args).regimes != ("bp",) or args.plot is not None or args.dataset_size is not None:
        raise GenerateError("--mode generate predicts one request: --training, --plot and --dataset-size do not "
                            "apply (flopcast card --prompt-len P --new-tokens N states it per 1000 requests)")
    config = predict_config_from_args(args)
    records = generation_records(config, load_model(config.model_dir))
    if args.json:
        json.dump(records, sys.stdout, indent=2, default=_json_default)
        sys.stdout.write("\n")
    else:
        render_generation(records, Console())
    return 0


def _json_default(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else float(value)
