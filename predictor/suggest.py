"""``flopcast suggest``: which GPU type of a lab's pool, at which batch size, and a ready ``#SBATCH`` header.

For each GPU type of the pool: the largest batch that fits and a recommended one below it (a memory margin), both
by :func:`~flopcast.predictor.predict.predict_max_batch`; the step and the whole run at the recommended batch by
:func:`~flopcast.predictor.predict.predict`; a ranking by time, energy, CO2 or cost, optionally within a deadline.
One GPU per job by default; ``--max-gpus N`` also chooses how many GPUs of a node to run data-parallel
(:mod:`~flopcast.predictor.suggest_gpus`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flopcast.features.cli import add_target_arguments, run_scale
from flopcast.features.report import si
from flopcast.predictor.cli import (
    add_plot_argument,
    add_prediction_arguments,
    fmt_time,
    predict_config_from_args,
)
from flopcast.predictor.suggest_gpus import choose, data_parallel_records, gpu_counts, priced

OBJECTIVES = {"time": "run_time_s", "energy": "run_energy_kwh", "co2": "run_co2_kg", "cost": "run_cost"}
"""Objective -> the record key it ranks by (lowest first)."""
MEMORY_MARGIN = 0.1
"""Default share of device memory the recommended batch leaves free (fragmentation, a longer sequence, a spike)."""
TIME_MARGIN = 0.2
"""Default margin on the p90 run time for ``#SBATCH --time``."""
BATCH_MULTIPLE = 8
"""The recommended batch is rounded down to a multiple of this where it is at least this (tensor-core tiles)."""
HOST_MEMORY_FACTOR = 2.0
"""``--mem`` without ``mem_per_gpu_gb``: this many times the predicted device peak (a host copy of the step's state
for checkpointing, plus the data loader's buffers)."""
DATA_PARALLEL_NOTE = ("one GPU per job: --max-gpus N also weighs data-parallel runs on up to N GPUs of a node "
                      "(each at the recommended batch)")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])", re.IGNORECASE)
_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


class SuggestError(ValueError):
    """``suggest`` cannot answer as asked (bad option, nothing fits, no type meets the deadline): one line."""


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``12h``, ``90m``, ``2d``, ``1d6h`` or ``45s``.

    Raises:
        SuggestError: anything else, or a zero duration.
    """
    compact = text.strip().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(f"{n}{u}" for n, u in parts).lower() != compact.lower():
        raise SuggestError(f"--deadline {text!r}: use a duration such as 12h, 90m, 2d or 1d6h")
    seconds = sum(float(n) * _SECONDS[u.lower()] for n, u in parts)
    if seconds <= 0:
        raise SuggestError(f"--deadline {text!r} must be longer than zero")
    return seconds


def slurm_time(seconds: float) -> str:
    """A SLURM ``--time`` value (``D-HH:MM:SS``), rounded up to the whole minute."""
    minutes = max(math.ceil(seconds / 60.0), 1)
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


@dataclass(frozen=True)
class SuggestConfig:
    """Everything ``flopcast suggest`` needs.

    Attributes:
        predict: the step's prediction config (its ``hardware`` is the pool's types; ``dataset_size`` set).
        training: the training regime (one).
        pool: the pool's GPU types.
        objective: time, energy, co2 or cost.
        deadline_s: the longest acceptable p90 run time, s (``None``: no deadline).
        memory_margin: share of device memory the recommended batch leaves free.
        time_margin: margin on the p90 run time for ``--time``.
        sbatch: file to write the winner's job header to (``None``: printed only).
        plot: folder for figures (``None``: none).
        json: print JSON instead of tables.
        max_gpus: most GPUs of one node a job may take, data-parallel (1: one GPU per job).
    """

    predict: Any
    training: Any
    pool: tuple[Any, ...]
    objective: str = "time"
    deadline_s: float | None = None
    memory_margin: float = MEMORY_MARGIN
    time_margin: float = TIME_MARGIN
    sbatch: Path | None = None
    plot: Path | None = None
    json: bool = False
    max_gpus: int = 1

    def __post_init__(self) -> None:
        if self.max_gpus < 1:
            raise SuggestError(f"--max-gpus must be >= 1, not {self.max_gpus}")
        if self.objective not in OBJECTIVES:
            raise SuggestError(f"--objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        if self.predict.dataset_size is None:
            raise SuggestError("suggest ranks whole runs: give --dataset-size N (and --epochs E)")
        if not 0 <= self.memory_margin < 1:
            raise SuggestError(f"--memory-margin must be in [0, 1), not {self.memory_margin}")
        if self.time_margin < 0:
            raise SuggestError(f"--time-margin must be >= 0, not {self.time_margin}")
        if len(self.training.regimes) != 1:
            raise SuggestError("suggest plans one training regime: --training bp or --training ep")
        if self.predict.analysis.mode != "train":
            raise SuggestError("suggest plans training jobs: use --mode train")
        if self.objective == "cost" and not any(g.price_per_gpu_hour for g in self.pool):
            raise SuggestError("--objective cost needs price_per_gpu_hour on the pool's GPU types")


def add_suggest_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``flopcast suggest``."""
    p = subparsers.add_parser(
        "suggest", help="pick a GPU type and batch size from a SLURM pool and write its #SBATCH header",
        description="For each GPU type of a pool file: the largest batch that fits, a recommended batch with a "
                    "memory margin, step and run time, energy, CO2 and cost; the ranking; an #SBATCH header for "
                    "the winner.")
    add_target_arguments(p)
    p.add_argument("--pool", type=Path, required=True, metavar="POOL.yaml",
                   help="the pool's GPU types (hardware, partition, gres, per_node, price_per_gpu_hour, ...)")
    add_prediction_arguments(p, hardware=False, calibration=False)
    p.add_argument("--objective", choices=tuple(OBJECTIVES), default="time", help="what to minimise (time)")
    p.add_argument("--deadline", metavar="DURATION", help="longest acceptable p90 run time, e.g. 12h, 2d, 1d6h")
    p.add_argument("--memory-margin", type=float, default=MEMORY_MARGIN,
                   help=f"share of device memory the recommended batch leaves free ({MEMORY_MARGIN})")
    p.add_argument("--time-margin", type=float, default=TIME_MARGIN,
                   help=f"margin on the p90 run time for #SBATCH --time ({TIME_MARGIN})")
    p.add_argument("--max-gpus", type=int, default=1, metavar="N",
                   help="also weigh data-parallel runs on up to N GPUs of a node: the smallest count that meets "
                        "--deadline, else the one best for --objective (default 1: one GPU per job)")
    p.add_argument("--sbatch", type=Path, metavar="JOB.sh", help="write the winner's #SBATCH header to JOB.sh")
    add_plot_argument(p)
    p.set_defaults(func=run_suggest, hardware="local", calibration=None)


def suggest_config_from_args(args: argparse.Namespace) -> SuggestConfig:
    """The SuggestConfig of parsed ``suggest`` arguments (the pool file read and checked)."""
    from flopcast.predictor.ep import training_from_args
    from flopcast.predictor.pool import load_pool

    run_scale(args)
    deadline = parse_duration(args.deadline) if args.deadline is not None else None
    pool = load_pool(args.pool)
    config = predict_config_from_args(args)
    return SuggestConfig(predict=replace(config, hardware=tuple(g.hardware for g in pool)),
                         training=training_from_args(args), pool=pool, objective=args.objective,
                         deadline_s=deadline, memory_margin=args.memory_margin, time_margin=args.time_margin,
                         sbatch=args.sbatch, plot=args.plot, json=args.json, max_gpus=args.max_gpus)


def memoised(analyse: Any) -> Any:
    """``analyse`` with each configuration analysed once (GPU types of one kind share their analyses)."""
    cache: dict[str, Any] = {}

    def run(config: Any) -> Any:
        key = repr(config)
        if key not in cache:
            cache[key] = analyse(config)
        return cache[key]

    return run


def recommended(largest_with_margin: int) -> int:
    """The recommended batch: the largest that fits with the margin, down to a multiple of :data:`BATCH_MULTIPLE`."""
    if largest_with_margin >= BATCH_MULTIPLE:
        return largest_with_margin - largest_with_margin % BATCH_MULTIPLE
    return largest_with_margin


def _batches(config: SuggestConfig, model: Any, gpu: Any, analyse: Any) -> dict[str, Any]:
    """Largest batch that fits, the recommended batch, and the peak at batch 1, for one GPU type."""
    from flopcast.predictor.analysis_cache import StepAnalysis
    from flopcast.predictor.featurize import analysis_device
    from flopcast.predictor.memory import CONTEXT_BYTES
    from flopcast.predictor.predict import predict_max_batch

    d = gpu.descriptor
    analysis = replace(config.predict.analysis, device=analysis_device(d.kind))

    def at(b: int) -> StepAnalysis:
        return StepAnalysis.of(analyse(replace(analysis, batch_size=b)))

    first = at(analysis.batch_size)
    if not first.memory_estimated:
        return {"max_batch_size": None, "recommended_batch_size": analysis.batch_size, "needed_bytes": None}
    name = model.trained_name(d) or d.name
    largest = predict_max_batch(model, d, name, at, analysis.batch_size, first.peak_memory_bytes)
    margin = replace(d, memory_bytes=d.memory_bytes * (1.0 - config.memory_margin))
    with_margin = predict_max_batch(model, margin, name, at, analysis.batch_size, first.peak_memory_bytes)
    needed = model.memory.predict(name, d.kind, at(1).peak_memory_bytes) + CONTEXT_BYTES.get(d.kind, 0)
    # a step never takes more samples than the dataset holds
    rec = recommended(min(with_margin, config.predict.dataset_size // max(analysis.step.grad_accumulation, 1) or 1))
    return {"max_batch_size": largest, "recommended_batch_size": rec if with_margin else 0, "needed_bytes": needed}


def suggest(config: SuggestConfig, model: Any, analyse: Any = None) -> dict[str, Any]:
    """Plan the run on each GPU type of the pool and rank them.

    Returns:
        ``options`` (one record per GPU type, ``predict --json`` keys plus the batch sizes, cost, rank and
        whether it meets the deadline), ``winner`` (its record, or ``None``) and the settings.

    Raises:
        SuggestError: nothing in the pool fits, or no type meets the deadline.
    """
    from flopcast.predictor.cli import predict_records
    from flopcast.predictor.predict import _analyse_config

    raw = memoised(analyse or _analyse_config)
    base = memoised(config.training.analyser(config.training.regimes[0], raw))
    options, runs = [], {}
    for gpu in config.pool:
        batches = _batches(config, model, gpu, base)
        if not batches["recommended_batch_size"]:
            options.append({"hardware": gpu.name, "fits": False, **batches})
            continue
        one = replace(config.predict, hardware=(gpu.hardware,),
                      analysis=replace(config.predict.analysis, batch_size=batches["recommended_batch_size"]))
        run = predict_records(one, model, config.training, raw)
        r = run.records[0]
        runs[gpu.name] = run
        price = gpu.price_per_gpu_hour
        priced(r, 1, price)
        r["gpus"] = 1
        if config.max_gpus > 1:
            _choose_gpus(config, model, gpu, r, batches["recommended_batch_size"])
        r.update(batches, partition=gpu.partition, gres=gpu.gres, per_node=gpu.per_node, price_per_gpu_hour=price,
                 meets_deadline=None if config.deadline_s is None else r["run_time_s_p90"] <= config.deadline_s)
        options.append(r)
    fitting = [o for o in options if o.get("recommended_batch_size")]
    if not fitting:
        need = min(o["needed_bytes"] for o in options)
        big = max(config.pool, key=lambda g: g.descriptor.memory_bytes)
        raise SuggestError(f"nothing in the pool fits: the step needs {si(need, 'B', 1024)} at batch 1 (predicted peak "
                           f"plus the device's context, before the {config.memory_margin:.0%} margin), the largest "
                           f"device is {big.name} with {si(big.descriptor.memory_bytes, 'B', 1024)}")
    key = OBJECTIVES[config.objective]
    fitting.sort(key=lambda o: (o[key] is None, o[key] if o[key] is not None else 0.0))
    for rank, o in enumerate(fitting, 1):
        o["rank"] = rank
    eligible = [o for o in fitting if o["meets_deadline"] is not False and o[key] is not None]
    if not eligible:
        fastest = min(fitting, key=lambda o: o["run_time_s_p90"])
        raise SuggestError(f"no GPU type in the pool meets --deadline {fmt_time(config.deadline_s or 0)}: the fastest, "
                           f"{fastest['hardware']}, needs {fmt_time(fastest['run_time_s_p90'])} at p90")
    winner = eligible[0]
    gpu = next(g for g in config.pool if g.name == winner["hardware"])
    return {"objective": config.objective, "deadline_s": config.deadline_s, "memory_margin": config.memory_margin,
            "options": [*fitting, *(o for o in options if not o.get("recommended_batch_size"))],
            "winner": winner, "sbatch": sbatch_header(config, winner, gpu),
            "notes": [DATA_PARALLEL_NOTE] if config.max_gpus == 1 else [],
            "runs": runs}


def _choose_gpus(config: SuggestConfig, model: Any, gpu: Any, r: dict[str, Any], batch: int) -> None:
    """Replace the one-GPU run in ``r`` by the chosen count's (``suggest_gpus``); every count's run kept."""
    counts = gpu_counts(config.max_gpus, gpu.per_node)
    runs = {1: dict(r), **data_parallel_records(config.predict, model, gpu.hardware, batch, counts,
                                                gpu.price_per_gpu_hour)}
    n = choose(runs, OBJECTIVES[config.objective], config.deadline_s)
    r.update(runs[n])
    r["gpu_counts"] = {k: {key: v.get(key) for key in ("run_time_s", "run_time_s_p90", "run_energy_kwh",
                                                        "run_co2_kg", "run_cost", "fits", "scaling_efficiency")}
                       for k, v in runs.items()}


def sbatch_header(config: SuggestConfig, winner: dict[str, Any], gpu: Any) -> str:
    """The ``#SBATCH`` header of the winner's job (one GPU; see :data:`DATA_PARALLEL_NOTE`)."""
    limit = winner["run_time_s_p90"] * (1.0 + config.time_margin)
    if gpu.mem_per_gpu_gb is not None:
        mem, why_mem = math.ceil(gpu.mem_per_gpu_gb), "the pool's mem_per_gpu_gb"
    elif winner.get("peak_memory_bytes"):
        mem = math.ceil(HOST_MEMORY_FACTOR * winner["peak_memory_bytes"] / 2**30)
        why_mem = f"{HOST_MEMORY_FACTOR:g} x the predicted device peak"
    else:
        mem, why_mem = None, ""
    target = winner["target"]
    name = target[3:] if target.startswith("hf:") else Path(target.split(":")[0]).stem
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name or "job")
    lines = [
        "#!/bin/bash",
        f"# flopcast suggest ({config.objective}): {winner['target']} on {winner['hardware']}, batch "
        f"{winner['recommended_batch_size']} (largest that fits: {winner['max_batch_size']}), predicted run "
        f"{_interval(winner, 'run_time_s', fmt_time)}",
        f"#SBATCH --job-name=flopcast-{stem}",
        f"#SBATCH --partition={gpu.partition}",
        f"#SBATCH --gres=gpu:{gpu.gres}:{winner.get('gpus', 1)}",
        f"#SBATCH --time={slurm_time(limit)}  # p90 run time + {config.time_margin:.0%}",
    ]
    lines.append(f"#SBATCH --mem={mem}G  # {why_mem}" if mem is not None else
                 "# --mem: the peak memory was not estimated; set mem_per_gpu_gb in the pool file")
    lines.append(f"#SBATCH --cpus-per-task={gpu.cpus_per_gpu}" if gpu.cpus_per_gpu else
                 "# --cpus-per-task: set cpus_per_gpu (or cpus_per_node) in the pool file")
    n = winner.get("gpus", 1)
    lines.append(f"# data-parallel (DDP) on {n} GPUs, {winner['recommended_batch_size']} samples each per step: "
                 f"torchrun --nproc-per-node {n} ..." if n > 1 else f"# {DATA_PARALLEL_NOTE}")
    return "\n".join(lines) + "\n"


def run_suggest(args: argparse.Namespace) -> int:
    """Run ``flopcast suggest``; returns the exit code."""
    from rich.console import Console

    from flopcast.predictor.io import load_model
    from flopcast.predictor.output import writable, writable_folder, write_text

    config = suggest_config_from_args(args)
    if config.sbatch is not None:
        writable(config.sbatch, "#SBATCH script")
    if config.plot is not None:  # before any work: matplotlib installed, the folder writable
        from flopcast.features.plots import pyplot

        pyplot()
        writable_folder(config.plot, "figures")
    model = load_model(config.predict.model_dir)
    result = suggest(config, model)
    if config.json:
        out = {k: v for k, v in result.items() if k != "runs"}
        json.dump(out, sys.stdout, indent=2, default=float)
        sys.stdout.write("\n")
    else:
        render_suggestion(result, Console(width=None if sys.stdout.isatty() else 160))
    if config.sbatch is not None:
        write_text(config.sbatch, result["sbatch"], "#SBATCH script")
        print(f"wrote {config.sbatch}", file=sys.stderr)
    if config.plot is not None:
        from flopcast.predictor.plots import plot_suggestion

        for path in plot_suggestion(result, config.plot):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _interval(o: dict[str, Any], key: str, f: Any) -> str:
    if o.get(key) is None:
        return "–"
    return f"{f(o[key])} [{f(o[key + '_p10'])}, {f(o[key + '_p90'])}]"


def render_suggestion(result: dict[str, Any], console: Any) -> None:
    """Print the options as one table (a row per GPU type, best first), the notes and the #SBATCH header."""
    from rich.table import Table

    deadline = result["deadline_s"]
    title = f"GPU types ranked by {result['objective']}"
    title += f", deadline {fmt_time(deadline)} (p90)" if deadline else ""
    table = Table(title=title, title_justify="left")
    for col in ("#", "GPU", "GPUs", "max batch", "batch", "step", "run (p90)", "kWh", "kg CO2", "cost", "deadline"):
        table.add_column(col, justify="left" if col == "GPU" else "right")
    for o in result["options"]:
        if not o.get("recommended_batch_size"):
            table.add_row("–", o["hardware"], "–", str(o["max_batch_size"]), "no fit", *["–"] * 6)
            continue
        table.add_row(str(o["rank"]), o["hardware"] + (" *" if o is result["winner"] else ""), str(o["gpus"]),
                      str(o["max_batch_size"]), str(o["recommended_batch_size"]), fmt_time(o["step_time_s"]),
                      f"{fmt_time(o['run_time_s'])} ({fmt_time(o['run_time_s_p90'])})", f"{o['run_energy_kwh']:.3g}",
                      f"{o['run_co2_kg']:.3g}", "–" if o["run_cost"] is None else f"{o['run_cost']:.3g}",
                      {None: "–", True: "meets", False: "[red]misses[/red]"}[o["meets_deadline"]])
    console.print(table)
    console.print("medians; run (p90): the median run time and, in brackets, its 90 % quantile; --json gives "
                  "every 10-90 % interval")
    console.print(f"* the choice; batch = largest that fits with a {result['memory_margin']:.0%} memory margin, "
                  f"rounded down to a multiple of {BATCH_MULTIPLE}")
    for note in result["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.file.write(result["sbatch"])
