"""``flopcast predict --gpus N ...``: the options of a parallel prediction, its table and its JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.table import Table

from flopcast.features.report import si
from flopcast.predictor.parallel.plan import ParallelError

PARALLEL_FLAGS = ("nodes", "parallel", "micro_batches", "interconnect")
"""Options that only mean something with ``--gpus`` (their defaults are ``None`` so a stray one is caught)."""


def add_parallel_arguments(p: argparse.ArgumentParser) -> None:
    """``--gpus``, ``--nodes``, ``--parallel``, ``--micro-batches`` and ``--interconnect``."""
    g = p.add_argument_group("several GPUs", "predict the step on N GPUs; --batch-size is then the global batch")
    g.add_argument("--gpus", type=int, metavar="N", help="GPUs of the run (all of each --hardware type)")
    g.add_argument("--nodes", type=int, metavar="M", help="nodes the GPUs sit on (default 1)")
    g.add_argument("--parallel", metavar="dp|fsdp|tp|pp|dp2,tp2,pp2",
                   help="DDP replicas (dp, default), FSDP/ZeRO-3 shards (fsdp), Megatron tensor parallelism (tp), "
                        "pipeline stages (pp), or degrees of each")
    g.add_argument("--micro-batches", type=int, metavar="K", help="micro-batches per step through pipeline stages")
    g.add_argument("--interconnect", metavar="nvlink|pcie|NAME|FILE",
                   help="links between GPUs: nvlink or pcie (the GPU's own), a catalog fabric, INTRA,NETWORK "
                        "(nvlink,ib-ndr), or a descriptor file with measured busbw (default: the GPU's system)")


def parallel_config_from_args(args: argparse.Namespace, predict: Any) -> Any:
    """The ParallelConfig of parsed arguments, or ``None`` without ``--gpus``.

    Raises:
        ParallelError: a parallel option without ``--gpus``, or an option ``--gpus`` cannot take.
    """
    if args.gpus is None:
        stray = [f"--{f.replace('_', '-')}" for f in PARALLEL_FLAGS if getattr(args, f, None) is not None]
        if stray:
            raise ParallelError(f"{', '.join(stray)} describe{'s' * (len(stray) == 1)} a run on several GPUs: "
                                "add --gpus N")
        return None
    for flag, on in (("--max-batch", getattr(args, "max_batch", False)), ("--plot", getattr(args, "plot", None)),
                     ("--training ep", "ep" in str(getattr(args, "training", "bp")))):
        if on:
            raise ParallelError(f"{flag} is not predicted with --gpus yet")
    from flopcast.predictor.parallel.predict import ParallelConfig

    return ParallelConfig(predict=predict, gpus=args.gpus, nodes=args.nodes or 1, parallel=args.parallel or "dp",
                          micro_batches=args.micro_batches or 1, interconnect=args.interconnect)


def run_parallel_predict(args: argparse.Namespace, config: Any) -> int:
    """Run ``flopcast predict --gpus``: predict, then print the table or the JSON; returns the exit code."""
    from flopcast.features.cli import run_scale
    from flopcast.predictor.io import load_model
    from flopcast.predictor.parallel.predict import predict_parallel

    run_scale(args)
    model = load_model(config.predict.model_dir)
    predictions = predict_parallel(config, model)
    records = [{"target": config.predict.analysis.target, "batch_size": config.predict.analysis.batch_size,
                "micro_batch_size": config.micro_batch_size, "mode": config.predict.analysis.mode,
                "precision": config.predict.analysis.precision, **p.to_dict(), "model_version": model.version}
               for p in predictions]
    if args.json:
        json.dump(records, sys.stdout, indent=2, default=float)
        sys.stdout.write("\n")
    else:
        render_parallel(records, Console(width=None if sys.stdout.isatty() else 160))
    return 0


def _interval(r: dict[str, Any], key: str, f: Any) -> str:
    return f"{f(r[key])} [{f(r[key + '_p10'])}, {f(r[key + '_p90'])}]"


def render_parallel(records: list[dict[str, Any]], console: Console) -> None:
    """One column per GPU type, then each type's collectives (summed by kind) and the notes."""
    from flopcast.predictor.cli import fmt_time

    r0 = records[0]
    console.print(f"[bold]{r0['target']}[/bold]  {r0['mode']} step, global batch {r0['batch_size']} "
                  f"({r0['micro_batch_size']} per GPU pass), {r0['precision']}: {r0['parallel']}")
    table = Table(title=f"predicted (median [10 %, 90 %]), model {r0['model_version']}", title_justify="left")
    table.add_column("")
    for r in records:
        table.add_column(r["hardware"], justify="right")
    rows: list[tuple[str, Any]] = [
        ("step time", lambda r: _interval(r, "step_time_s", fmt_time)),
        ("computation (busiest GPU)", lambda r: fmt_time(r["compute_s"])),
        ("communication waited / sent", lambda r: f"{fmt_time(r['comm_exposed_s'])} / {fmt_time(r['comm_total_s'])}"),
        ("one GPU, whole batch", lambda r: fmt_time(r["single_gpu_step_time_s"])
         + ("" if r["single_gpu_fits"] is not False else " (does not fit)")),
        ("speed-up, scaling efficiency", lambda r: f"{r['speedup']:.2f}x, {r['scaling_efficiency']:.0%}"),
        ("peak memory per GPU", lambda r: "not estimated" if r["peak_memory_bytes"] is None else
         f"{si(r['peak_memory_bytes'], 'B', 1024)} of {si(r['memory_bytes'], 'B', 1024)}"),
        ("fits", lambda r: "unknown" if r["fits"] is None else "yes" if r["fits"] else "[red]no[/red]"),
        ("step energy (GPUs + host)", lambda r: f"{_interval(r, 'step_energy_j', lambda v: si(v, 'J'))} "
                                                f"({si(r['host_energy_j'], 'J')} host)"),
        ("calibrated", lambda r: "yes" if r["calibrated"] else "no: spec sheet (wider intervals)"),
    ]
    if r0.get("bubble_share") is not None:
        rows.insert(3, ("pipeline bubble (equal stages)", lambda r: f"{r['bubble_share']:.0%}"))
    if "run_time_s" in r0:
        rows += [("run steps", lambda r: str(r["steps"])),
                 ("run time", lambda r: _interval(r, "run_time_s", fmt_time)),
                 ("run energy", lambda r: _interval(r, "run_energy_kwh", lambda v: f"{v:.3g} kWh")),
                 ("run CO2", lambda r: f"{_interval(r, 'run_co2_kg', lambda v: f'{v:.3g} kg')} ({r['region']}, "
                                       f"PUE {r['pue']:g})")]
    for label, cell in rows:
        table.add_row(label, *(cell(r) for r in records))
    console.print(table)
    for r in records:
        console.print(f"[bold]{r['hardware']}[/bold]: {r['interconnect']}")
        console.print(collectives_table(r))
        for note in r["notes"]:
            console.print(f"[yellow]{r['hardware']}:[/yellow] {note}")


def collectives_table(r: dict[str, Any]) -> Table:
    """A GPU type's collectives per step, rows of one kind summed (op, phase, size, group), per role."""
    from flopcast.predictor.cli import fmt_time

    t = Table(title="collectives per step (--json lists each with what it moves)", title_justify="left")
    for col in ("GPUs", "collective", "phase", "bytes", "ranks", "calls", "each", "per step", "beside compute"):
        t.add_column(col, justify="left" if col in ("GPUs", "collective", "phase", "beside compute") else "right")
    for role in r["roles"]:
        grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for c in role["collectives"]:
            grouped[(c["op"], c["phase"], c["bytes"], c["group"], c["algorithm"], c["overlapped"])].append(c)
        for (op, phase, nbytes, group, algo, hidden), cs in grouped.items():
            calls = sum(c["count"] for c in cs)
            t.add_row(role["role"], op.replace("_", "-") + (f" ({algo})" if op == "all_reduce" else ""), phase,
                      si(nbytes, "B"), str(group), str(calls), fmt_time(cs[0]["time_s"]),
                      fmt_time(sum(c["step_time_s"] for c in cs)), "yes" if hidden else "no")
    return t
