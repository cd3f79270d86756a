"""``flopcast card``: the "Compute cost" section of a Hugging Face model card (Markdown, JSON or YAML metadata).

Every number is a ``predict`` number: the train step with its run totals, the inference step's
:func:`~flopcast.predictor.predict.run_totals` over 1000 samples (and ``--inference-samples``), and with
``--prompt-len P --new-tokens N`` the ``predict --mode generate`` request over 1000 requests (sequences).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flopcast.features.cli import add_target_arguments, run_scale
from flopcast.features.report import si
from flopcast.predictor.cli import add_prediction_arguments, fmt_time, hardware_names, predict_config_from_args

CARD_SCHEMA = "flopcast-card/1"
PER_SAMPLES = 1000
"""Inference cost is stated per this many samples (and generation per this many requests)."""
FORMATS = ("markdown", "json", "yaml")

METHOD = (
    "flopcast traced one {mode} step of the model on shape-only (fake) tensors, without data, weights or device "
    "work, recording every operator with its FLOPs (2 x MACs) and bytes moved. Each operator's time on the device "
    "was predicted by XGBoost quantile models trained on microbenchmarks of real devices (as a ratio to the "
    "roofline), summed and corrected by a per-device step model fitted on measured training steps; energy comes "
    "from a power stage fitted on measured device power (or a TDP-based prior where none was measured), CO2 from "
    "the grid's carbon intensity (CodeCarbon's data) times the PUE. Medians are given with 10-90 % intervals; a "
    "device without measurements gets wider intervals. These are predictions made before the run, not "
    "measurements."
)
PHYSICAL_METHOD = (
    " The device is hypothetical: its times and energies come from a physical model (roofline time at a stated "
    "utilisation, energy per MAC and per byte plus static power), not from measurements."
)


class CardError(ValueError):
    """``card`` options that cannot make a card (one line)."""


@dataclass(frozen=True)
class CardConfig:
    """Everything ``flopcast card`` needs.

    Attributes:
        predict: the train step's prediction config (one device, ``dataset_size`` set).
        training: the training regime (:class:`flopcast.predictor.ep.Training`, one regime).
        inference_batch_size: batch size of the inference step.
        inference_samples: also state the cost of this many inference samples (``None``: only per 1000).
        training_type: ``pre-training`` or ``fine-tuning`` for the YAML metadata (``None``: left out).
        format: markdown, json or yaml.
        out: file to write (``None``: standard output).
        generation: a generation request (``--prompt-len``, ``--new-tokens``) whose cost per 1000 requests the
            card states, at the inference batch size (``None``: none).
    """

    predict: Any
    training: Any
    inference_batch_size: int
    inference_samples: int | None = None
    training_type: str | None = None
    format: str = "markdown"
    out: Path | None = None
    generation: Any = None

    def __post_init__(self) -> None:
        if len(self.predict.hardware) != 1:
            raise CardError(f"a card states one device; --hardware names {len(self.predict.hardware)}")
        if self.predict.dataset_size is None:
            raise CardError("a card states the whole training run: give --dataset-size N (and --epochs E)")
        if len(self.training.regimes) != 1:
            raise CardError("a card states one training regime: --training bp or --training ep")
        if self.inference_batch_size < 1:
            raise CardError(f"--inference-batch-size must be >= 1, not {self.inference_batch_size}")
        if self.inference_samples is not None and self.inference_samples < 1:
            raise CardError(f"--inference-samples must be >= 1, not {self.inference_samples}")
        if self.predict.analysis.mode != "train":
            raise CardError("a card's training cost needs --mode train (the inference step is added on its own)")


def add_card_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``flopcast card``."""
    p = subparsers.add_parser(
        "card", help="the Compute cost section of a model card (Markdown, JSON or YAML metadata)",
        description="Predict a whole training run and inference cost, and write them as the 'Compute cost' "
                    "section of a Hugging Face model card.")
    add_target_arguments(p)
    add_prediction_arguments(p)
    add_card_arguments(p)
    p.set_defaults(func=run_card)


def add_card_arguments(p: argparse.ArgumentParser, outputs: bool = True) -> None:
    """The card's own options (``card``, and ``report`` which embeds a card).

    Args:
        p: the parser.
        outputs: add ``--format`` and ``-o`` (``report`` writes HTML to its own ``-o``).
    """
    p.add_argument("--inference-batch-size", type=int, metavar="B",
                   help="batch size of the inference step (default: --batch-size)")
    p.add_argument("--inference-samples", type=int, metavar="M", help="also state the cost of M inference samples")
    p.add_argument("--training-type", choices=("pre-training", "fine-tuning"),
                   help="training_type of the YAML co2_eq_emissions metadata")
    if outputs:
        p.add_argument("--format", choices=FORMATS, default="markdown", help="output format (markdown)")
        p.add_argument("-o", "--out", type=Path, metavar="FILE", help="write to FILE instead of standard output")


def card_config_from_args(args: argparse.Namespace) -> CardConfig:
    """The CardConfig of parsed ``card`` arguments."""
    from flopcast.features.generate_options import GenerateOptions
    from flopcast.predictor.ep import training_from_args

    run_scale(args)
    fmt = "json" if args.json else getattr(args, "format", "markdown")
    generation = None
    if args.prompt_len is not None or args.new_tokens is not None:  # the card's own: its step stays --mode train
        if args.prompt_len is None or args.new_tokens is None:
            raise CardError("a card's generation cost needs both --prompt-len P and --new-tokens N")
        generation = GenerateOptions(args.prompt_len, args.new_tokens, args.cache)
        args = argparse.Namespace(**{**vars(args), "prompt_len": None, "new_tokens": None})
    return CardConfig(predict=predict_config_from_args(args), training=training_from_args(args), generation=generation,
                      inference_batch_size=args.batch_size if args.inference_batch_size is None
                      else args.inference_batch_size,
                      inference_samples=args.inference_samples, training_type=args.training_type, format=fmt,
                      out=getattr(args, "out", None))


def run_card(args: argparse.Namespace) -> int:
    """Run ``flopcast card``; returns the exit code."""
    from flopcast.predictor.io import load_model
    from flopcast.predictor.output import writable, write_text

    hardware_names(args.hardware)
    config = card_config_from_args(args)
    if config.out is not None:
        writable(config.out, "card")
    card = build_card(config, load_model(config.predict.model_dir))
    text = render_card(card, config.format)
    if config.out is None:
        sys.stdout.write(text)
    else:
        write_text(config.out, text, "card")
        print(f"wrote {config.out}", file=sys.stderr)
    return 0


def _q(record: dict[str, Any], key: str, scale: float = 1.0) -> dict[str, float]:
    return {"median": record[key] * scale, "p10": record[key + "_p10"] * scale, "p90": record[key + "_p90"] * scale}


def build_card(config: CardConfig, model: Any, analyse: Any = None) -> dict[str, Any]:
    """The card's fields (the JSON form), from ``predict`` on the train step and on the inference step.

    Args:
        config: the card's configuration.
        model: the loaded cost model.
        analyse: analysis function (default: in-process), as :func:`flopcast.predictor.cli.predict_records`.
    """
    from flopcast.features.version import flopcast_version
    from flopcast.predictor.cli import predict_records
    from flopcast.predictor.ep import Training
    from flopcast.predictor.predict import run_totals

    train_run = predict_records(config.predict, model, config.training, analyse)
    train = train_run.records[0]
    infer_config = replace(config.predict, dataset_size=None, max_batch=False,
                           analysis=replace(config.predict.analysis, mode="infer",
                                            batch_size=config.inference_batch_size))
    infer_run = predict_records(infer_config, model, Training(), analyse)
    infer, p = infer_run.records[0], infer_run.predictions["bp"][0]

    def per(samples: int) -> dict[str, Any]:
        t = run_totals(p, config.inference_batch_size, samples, 1, config.predict.region, config.predict.pue)
        return {"samples": samples, "steps": t["steps"], "time_s": _q(t, "run_time_s"),
                "energy_j": _q(t, "run_energy_kwh", 3.6e6), "co2_g": _q(t, "run_co2_kg", 1000.0)}

    generation = _generation(config, model) if config.generation is not None else None
    physical = bool(train.get("physical_model"))
    basis = "physical model (hypothetical device)" if physical else "measured" if train["calibrated"] else "spec-only"
    return {
        "schema": CARD_SCHEMA,
        "target": train["target"], "precision": train["precision"], "parameters": train["params"],
        "training": {
            "regime": train["training"], "batch_size": train["batch_size"],
            "samples_per_step": train["step"]["samples_per_step"], "flops_per_step": train["flops"],
            "dataset_size": config.predict.dataset_size, "epochs": config.predict.epochs, "steps": train["steps"],
            "peak_memory_bytes": train["peak_memory_bytes"], "fits": train["fits"],
            "step_time_s": _q(train, "step_time_s"), "time_s": _q(train, "run_time_s"),
            "energy_kwh": _q(train, "run_energy_kwh"), "co2_kg": _q(train, "run_co2_kg"),
            "region": train["region"], "carbon_intensity_g_per_kwh": train["carbon_intensity_g_per_kwh"],
            "pue": train["pue"], **({"ep_free_steps": train["ep_free_steps"], "ep_nudged_steps": train[
                "ep_nudged_steps"]} if train["training"] == "ep" else {}),
        },
        "inference": {
            "batch_size": config.inference_batch_size, "flops_per_sample": infer["flops"] / config.inference_batch_size,
            "per_1000_samples": per(PER_SAMPLES),
            **({"total": per(config.inference_samples)} if config.inference_samples else {}),
        },
        **({"generation": generation} if generation else {}),
        "hardware": {"name": train["hardware"], "calibrated": train["calibrated"],
                     "calibrated_as": train["calibrated_as"], "measured_by": train.get("measured_by"),
                     "basis": basis, "notes": train["notes"]},
        "training_type": config.training_type,
        "flopcast_version": flopcast_version(), "model_version": train["model_version"],
        "method": METHOD.format(mode="training") + (PHYSICAL_METHOD if physical else ""),
    }


def _generation(config: CardConfig, model: Any) -> dict[str, Any]:
    """The card's generation section: ``predict --mode generate`` of the request, per 1000 requests."""
    from flopcast.predictor.generate import RequestCost, generation_records
    from flopcast.predictor.predict import run_totals

    a = replace(config.predict.analysis, mode="generate", batch_size=config.inference_batch_size,
                generate=config.generation)
    r = generation_records(replace(config.predict, analysis=a, dataset_size=None, max_batch=False), model)[0]
    t = run_totals(RequestCost.of(r), config.inference_batch_size, PER_SAMPLES, 1, config.predict.region,
                   config.predict.pue)
    return {"prompt_len": r["prompt_len"], "new_tokens": r["new_tokens"], "batch_size": r["batch_size"],
            "cache": r["cache"], "time_to_first_token_s": _q(r, "ttft_s"),
            "time_per_output_token_s": _q(r, "time_per_output_token_s") if r["new_tokens"] > 1 else None,
            "energy_per_token_j": _q(r, "energy_per_token_j"), "kv_cache_bytes_final": r["kv_cache_bytes_final"],
            "peak_memory_bytes": r["peak_memory_bytes"], "fits": r["fits"],
            "per_1000_requests": {"requests": PER_SAMPLES, "calls": t["steps"], "time_s": _q(t, "run_time_s"),
                                  "energy_j": _q(t, "run_energy_kwh", 3.6e6), "co2_g": _q(t, "run_co2_kg", 1000.0)}}


def render_card(card: dict[str, Any], fmt: str) -> str:
    """The card as Markdown, JSON or YAML metadata text (ends with a newline)."""
    if fmt == "json":
        return json.dumps(card, indent=2) + "\n"
    if fmt == "yaml":
        return card_yaml(card)
    return card_markdown(card)


def _interval(q: dict[str, float], f: Any) -> tuple[str, str]:
    return f(q["median"]), f"{f(q['p10'])} – {f(q['p90'])}"


def _kwh(v: float) -> str:
    return f"{v:.3g} kWh"


def _kg(v: float) -> str:
    return f"{v:.3g} kg"


def _g(v: float) -> str:
    return f"{v:.3g} g"


def card_markdown(card: dict[str, Any]) -> str:
    """The Markdown "Compute cost" section."""
    t, i, h = card["training"], card["inference"], card["hardware"]
    regime = "backpropagation" if t["regime"] == "bp" else (
        f"Equilibrium Propagation ({t['ep_free_steps']} free + {t['ep_nudged_steps']} nudged iterations)")
    where = f"{t['region']}, {t['carbon_intensity_g_per_kwh']:.0f} gCO2eq/kWh, PUE {t['pue']:g}"
    rows = [
        ("Parameters", si(card["parameters"]), ""),
        (f"FLOPs per training step (batch {t['samples_per_step']}, {card['precision']}, {regime})",
         si(t["flops_per_step"], "FLOP"), ""),
        (f"FLOPs per inference sample (batch {i['batch_size']})", si(i["flops_per_sample"], "FLOP"), ""),
        (f"Training time ({t['steps']} steps: {t['epochs']} epoch(s) of {t['dataset_size']} samples)",
         *_interval(t["time_s"], fmt_time)),
        ("Training energy (device)", *_interval(t["energy_kwh"], _kwh)),
        (f"Training CO2eq ({where})", *_interval(t["co2_kg"], _kg)),
    ]
    for key, label in (("per_1000_samples", "per 1000 samples"), ("total", "for {samples} samples")):
        if key in i:
            q = i[key]
            what = label.format(samples=q["samples"])
            rows += [(f"Inference time {what}", *_interval(q["time_s"], fmt_time)),
                     (f"Inference energy {what}", *_interval(q["energy_j"], lambda v: si(v, "J"))),
                     (f"Inference CO2eq {what}", *_interval(q["co2_g"], _g))]
    g = card.get("generation")
    if g:
        what = f"per 1000 requests of {g['prompt_len']} prompt + {g['new_tokens']} new tokens (batch {g['batch_size']})"
        q = g["per_1000_requests"]
        rows += [("Generation: time to first token", *_interval(g["time_to_first_token_s"], fmt_time)),
                 *([("Generation: time per output token", *_interval(g["time_per_output_token_s"], fmt_time))]
                   if g["time_per_output_token_s"] else []),
                 (f"Generation time {what}", *_interval(q["time_s"], fmt_time)),
                 (f"Generation energy {what}", *_interval(q["energy_j"], lambda v: si(v, "J"))),
                 (f"Generation CO2eq {what}", *_interval(q["co2_g"], _g))]
    lines = ["## Compute cost", "",
             f"Predicted by flopcast before the run for `{card['target']}` on **{h['name']}**; median with the "
             "10-90 % interval.", "", "| | median | 10-90 % interval |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    by = h.get("measured_by")
    whose = f"{by}'s measurements of this device" if by and by != "flopcast" else "this device's own measurements"
    basis = {"measured": f"measured: the cost model was fitted on {whose}",
             "spec-only": "spec-only: no measurements of this device, predicted from its spec sheet (wider "
                          "intervals)"}.get(h["basis"], h["basis"])
    fits = {True: "fits", False: "does **not** fit", None: "memory not estimated"}[t["fits"]]
    peak = "" if t["peak_memory_bytes"] is None else f" (peak {si(t['peak_memory_bytes'], 'B', 1024)}, {fits})"
    lines += ["", f"**Hardware assumed:** one {h['name']}{peak}; {basis}.", "",
              f"**Versions:** flopcast {card['flopcast_version']}, cost model {card['model_version']}.", "",
              f"**Method.** {card['method']}", ""]
    return "\n".join(lines)


def card_yaml(card: dict[str, Any]) -> str:
    """A YAML block for the model card's metadata: Hugging Face's ``co2_eq_emissions`` plus a ``flopcast`` map."""
    try:
        import yaml
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("PyYAML is needed for --format yaml", name="yaml") from e
    t = card["training"]
    co2 = {"emissions": float(f"{t['co2_kg']['median'] * 1000.0:.4g}"),  # grams, as Hugging Face states it
           "source": f"flopcast {card['flopcast_version']} prediction before the run (cost model "
                     f"{card['model_version']}), not a measurement",
           "geographical_location": t["region"], "hardware_used": f"1 x {card['hardware']['name']}"}
    if card["training_type"]:
        co2["training_type"] = card["training_type"]
    return yaml.safe_dump({"co2_eq_emissions": co2, "flopcast": card}, sort_keys=False, allow_unicode=True)
