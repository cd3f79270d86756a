"""``flopcast predict`` and ``flopcast fit``: arguments, the config records they make, and the output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from flopcast.calibration.fitted_table import Layout
from flopcast.features.cli import add_target_arguments, analysis_summary, config_from_args, run_scale
from flopcast.features.report import describe_step, si


def add_predict_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``flopcast predict`` and ``flopcast fit``."""
    p = subparsers.add_parser(
        "predict", help="predict step time, energy, memory and run CO2 on a chosen CPU or GPU",
        description="Predict, before the run, how long one training or inference step takes, how much energy it "
                    "uses and whether it fits in memory, on one or more devices, with 10-90 % intervals.",
    )
    add_target_arguments(p)
    add_prediction_arguments(p)
    p.add_argument("--max-batch", action="store_true", help="also find the largest batch size that fits in memory")
    add_plot_argument(p)
    from flopcast.predictor.parallel.cli import add_parallel_arguments

    add_parallel_arguments(p)
    p.set_defaults(func=run_predict)

    f = subparsers.add_parser("fit", help="train the cost model from measurement folders",
                              description="Fit the op and step models on calibration data and write a model dir.")
    f.add_argument("--data", type=Path, action="append", default=[], metavar="DIR",
                   help="hardware folder or folder of them (repeatable; default: the released datasets/)")
    f.add_argument("--out", type=Path, required=True, metavar="MODEL_DIR", help="directory to write the model to")
    f.add_argument("--n-estimators", type=int, default=300, help="boosting rounds of the op time model (300)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=run_fit)


def add_prediction_arguments(p: argparse.ArgumentParser, hardware: bool = True, calibration: bool = True) -> None:
    """Arguments of every command that predicts (``predict``, ``card``, ``suggest``, ``report``).

    Args:
        p: the parser.
        hardware: add ``--hardware`` (``suggest`` names its devices in a pool file instead).
        calibration: add ``--calibration`` (a campaign of this machine; ``suggest`` plans on a pool's GPUs).
    """
    from flopcast.predictor.ep import add_training_arguments

    if hardware:
        p.add_argument("--hardware", default="local", metavar="NAME|FILE|local",
                       help="catalog name or alias, descriptor JSON file (a hypothetical device: see "
                            "predictor/hypothetical/), or local; comma-separated to compare (h100,a100,cpu); "
                            "default local")
    if calibration:
        p.add_argument("--calibration", type=Path, metavar="DIR",
                       help="a `flopcast calibrate --out` folder of the device")
    p.add_argument("--model", type=Path, metavar="MODEL_DIR", help="cost model from `flopcast fit` (default: bundled)")
    p.add_argument("--country", dest="region", metavar="COUNTRY",
                   help="grid country for CO2, ISO code (FRA or FR), as calibrate --country; default: world")
    p.add_argument("--region", dest="region", action=DeprecatedAlias, help=argparse.SUPPRESS)
    p.add_argument("--pue", type=float, default=1.0, help="data-centre PUE applied to run energy for CO2 (1.0)")
    add_training_arguments(p)


def add_plot_argument(p: argparse.ArgumentParser) -> None:
    """``--plot DIR``: write the command's figures (PNG and SVG) there."""
    p.add_argument("--plot", type=Path, metavar="DIR", help="write figures (PNG and SVG) to DIR (needs matplotlib)")


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores its value and warns once on stderr (``--region`` for ``--country``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        """Store the value under the new option's name and warn."""
        print(f"flopcast: warning: {option_string} is deprecated, use --country", file=sys.stderr)
        setattr(namespace, self.dest, values)


def hardware_names(text: str) -> tuple[str, ...]:
    """The items of a comma-separated ``--hardware`` value."""
    return tuple(h.strip() for h in text.split(",") if h.strip())


def predict_config_from_args(args: argparse.Namespace) -> Any:
    """The PredictConfig of parsed ``predict`` arguments (the analysis device is set per hardware later)."""
    from flopcast.predictor.predict import PredictConfig

    dataset_size, epochs = run_scale(args)
    return PredictConfig(
        analysis=config_from_args(args, "cuda"),
        hardware=hardware_names(args.hardware),
        calibration=args.calibration, model_dir=args.model, dataset_size=dataset_size, epochs=epochs,
        region=args.region, pue=args.pue, max_batch=getattr(args, "max_batch", False),
    )


def prediction_records(config: Any, analyses: dict[str, Any], predictions: list[Any], model_version: str
                       ) -> list[dict[str, Any]]:
    """One JSON-ready record per device: analysis summary, prediction, run totals, model version."""
    from flopcast.predictor.featurize import analysis_device

    out = []
    for p in predictions:
        a = analyses[analysis_device(p.kind)]
        out.append({"target": config.analysis.target, "batch_size": config.analysis.batch_size,
                    "mode": config.analysis.mode, "precision": config.analysis.precision,
                    **analysis_summary(a), **p.to_dict(), "model_version": model_version})
    return out


def run_predict(args: argparse.Namespace) -> int:
    """Run ``flopcast predict``; returns the exit code.

    The step is analysed in a forked child while this process loads the cost model
    (:mod:`flopcast.predictor.prefetch`); the imports of the cost model come after the fork.
    """
    from flopcast.predictor.ep import training_from_args
    from flopcast.predictor.parallel.cli import parallel_config_from_args, run_parallel_predict
    from flopcast.predictor.prefetch import AnalysisPrefetch

    if args.mode == "generate":  # a request of several steps, each priced as below (predictor/generate.py)
        from flopcast.predictor.generate import run_predict_generation

        return run_predict_generation(args)
    run_scale(args)  # option errors before any work
    parallel = parallel_config_from_args(args, predict_config_from_args(args))
    if parallel is not None:  # --gpus N: one GPU's sharded step per role, communication, run (predictor/parallel/)
        return run_parallel_predict(args, parallel)
    training = training_from_args(args)
    if args.plot is not None:  # before any work: matplotlib installed, the folder writable
        from flopcast.features.plots import pyplot
        from flopcast.predictor.output import writable_folder

        pyplot()
        writable_folder(args.plot, "figures")
    with AnalysisPrefetch.for_predict(config_from_args(args, "cuda"), hardware_names(args.hardware)) as prefetch:
        from flopcast.predictor.io import load_model

        config = predict_config_from_args(args)
        model = load_model(config.model_dir)
        run = predict_records(config, model, training, prefetch.analyse)
    records = run.records
    for r in records:
        if r["extrapolated"]:
            print(f"flopcast: warning: {r['hardware']}: prediction extrapolates beyond the training data "
                  "(extrapolated: true)", file=sys.stderr)
    if args.json:
        json.dump(records, sys.stdout, indent=2, default=float)  # one shape: a list, one object per device
        sys.stdout.write("\n")
    else:
        render(records, Console())
    if args.plot is not None:
        from flopcast.predictor.plots import plot_predictions

        for path in plot_predictions(run, model, args.plot):
            print(f"wrote {path}", file=sys.stderr)
    return 0


@dataclass(frozen=True)
class PredictedRun:
    """Predictions of one configured step, per training regime and device, with what produced them.

    Attributes:
        config: the prediction's configuration.
        training: the regimes predicted.
        analyses: per regime, the analyses by device kind (``cuda``/``cpu``).
        predictions: per regime, one prediction per device, in ``config.hardware`` order.
        records: the JSON records of ``predict --json``, regime by regime.
        model_version: the cost model's version (and the calibration it was refitted on).
    """

    config: Any
    training: Any
    analyses: dict[str, dict[str, Any]]
    predictions: dict[str, list[Any]]
    records: list[dict[str, Any]]
    model_version: str


def predict_records(config: Any, model: Any, training: Any, analyse: Any = None) -> PredictedRun:
    """Run :func:`flopcast.predictor.predict.predict` for each training regime; the one cost path of every command.

    Args:
        config: a PredictConfig.
        model: the loaded cost model.
        training: the regimes (:class:`flopcast.predictor.ep.Training`).
        analyse: the analysis function (default: in-process analysis).
    """
    from flopcast.predictor.predict import _analyse_config, predict

    base = analyse or _analyse_config
    analyses, predictions, records = {}, {}, []
    for regime in training.regimes:
        analyses[regime], predictions[regime] = predict(config, model, analyse=training.analyser(regime, base))
    sources = sorted({str(p.extra["calibration"]) for ps in predictions.values() for p in ps
                      if p.extra.get("calibration")})  # --calibration DIR, or this machine's stored campaign
    version = f"{model.version}, calibrated on {', '.join(sources)}" if sources else model.version
    for regime in training.regimes:
        for r in prediction_records(config, analyses[regime], predictions[regime], version):
            r["training"] = regime
            if regime == "ep":
                r.update(ep_free_steps=training.ep_free_steps, ep_nudged_steps=training.ep_nudged_steps)
            if len(training.regimes) > 1:
                r["label"] = f"{r['hardware']} ({training.describe(regime)})"
            records.append(r)
    return PredictedRun(config, training, analyses, predictions, records, version)


def fmt_time(s: float) -> str:
    """A duration in the unit that reads best (µs to h)."""
    for limit, scale, unit in ((1e-3, 1e6, "µs"), (1.0, 1e3, "ms"), (120.0, 1.0, "s"), (7200.0, 1 / 60, "min")):
        if abs(s) < limit:
            return f"{s * scale:.3g} {unit}"
    return f"{s / 3600:.3g} h"


FORMATS = {"s": fmt_time, "J": lambda v: si(v, "J"), "kWh": lambda v: f"{v:.3g} kWh", "kg": lambda v: f"{v:.3g} kg"}


def _interval(r: dict[str, Any], key: str, unit: str) -> str:
    return interval_cell(r, key, FORMATS[unit])


def interval_cell(r: dict[str, Any], key: str, f: Callable[[float], str]) -> str:
    """``median [p10, p90]`` of ``key`` in a record (``key``, ``key_p10``, ``key_p90``), each written by ``f``."""
    return f"{f(r[key])} [{f(r[key + '_p10'])}, {f(r[key + '_p90'])}]"


def peak_memory_cell(r: dict[str, Any]) -> str:
    """The peak-memory cell of a record: ``1.2 GiB of 80 GiB``, or ``not estimated``."""
    if r["peak_memory_bytes"] is None:
        return "not estimated"
    return f"{si(r['peak_memory_bytes'], 'B', 1024)} of {si(r['memory_bytes'], 'B', 1024)}"


def fits_cell(r: dict[str, Any]) -> str:
    """The fits cell of a record: ``yes``, ``no`` (red) or ``unknown``."""
    return "unknown" if r["fits"] is None else "yes" if r["fits"] else "[red]no[/red]"


def calibrated_cell(r: dict[str, Any]) -> str:
    """Whether the model has measurements of the device, as what, and whose (the spec sheet alone: no)."""
    if not r["calibrated"]:
        return "no: physical model" if r.get("physical_model") else "no: spec sheet (wider intervals)"
    text = "yes" if r.get("calibrated_as") in (None, r["hardware"]) else f"yes, as {r['calibrated_as']}"
    by = r.get("measured_by")
    return f"{text}, measured by {by}" if by and by != "flopcast" else text


def render(records: list[dict[str, Any]], console: Console) -> None:
    """Print predictions as one table (a column per device) plus notes."""
    r0 = records[0]
    how = escape(describe_step(r0["step"]))
    console.print(f"[bold]{r0['target']}[/bold]  {r0['mode']} step, batch {r0['batch_size']}, {r0['precision']}"
                  f"{', ' + how if how else ''}: {si(r0['flops'], 'FLOP')}, {si(r0['bytes_accessed'], 'B')} "
                  f"accessed, {si(r0['params'])} params")
    headers = ("", *(r.get("label", r["hardware"]) + (" *" if r["extrapolated"] else "") for r in records))
    rows: list[tuple[str, Any]] = [("step FLOPs", lambda r: si(r["flops"], "FLOP"))] if "label" in r0 else []
    rows += [
        ("step time", lambda r: _interval(r, "step_time_s", "s")),
        ("step energy", lambda r: _interval(r, "step_energy_j", "J")),
        ("peak memory", peak_memory_cell),
        ("fits", fits_cell),
        ("calibrated", calibrated_cell),
    ]
    if "run_time_s" in r0:
        rows += [("run steps", lambda r: str(r["steps"])),
                 ("run time", lambda r: _interval(r, "run_time_s", "s")),
                 ("run energy", lambda r: _interval(r, "run_energy_kwh", "kWh")),
                 ("run CO2", lambda r: f"{_interval(r, 'run_co2_kg', 'kg')} ({r['region']}, PUE {r['pue']:g})")]
    if "max_batch_size" in r0:
        rows.append(("max batch size", lambda r: "unknown" if r["max_batch_size"] is None
                     else str(r["max_batch_size"])))
    cells = tuple((label, *(cell(r) for r in records)) for label, cell in rows)
    title = f"predicted (median [10 %, 90 %]), model {r0['model_version']}"
    table = Layout(title, None, headers, (False, *(True for _ in records)), cells).table(console)  # names never cut
    table.title_justify = "left"
    console.print(table)
    if any(r["extrapolated"] for r in records):
        console.print("* extrapolated: outside the training range")
    for r in records:
        for note in r["notes"]:
            console.print(f"[yellow]{r.get('label', r['hardware'])}:[/yellow] {note}")
    if r0["unsupported_ops"]:
        listed = ", ".join(f"{k} x{v}" for k, v in list(r0["unsupported_ops"].items())[:8])
        console.print(f"[yellow]unsupported ops (bytes only):[/yellow] {listed}")


def run_fit(args: argparse.Namespace) -> int:
    """Run ``flopcast fit``; returns the exit code."""
    from flopcast.predictor.io import save_model
    from flopcast.predictor.training import FitConfig, fit_from_paths

    config = FitConfig(data=tuple(args.data), out=args.out, n_estimators=args.n_estimators,
                       progress=not args.no_progress)
    model = fit_from_paths(config)
    save_model(model, config.out)
    rows = ", ".join(f"{k}: {e['op_rows']} ops, {e['step_rows']} steps" for k, e in model.hardware.items())
    print(f"wrote model {model.version} to {config.out} ({rows})")
    return 0
