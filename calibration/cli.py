"""``flopcast calibrate`` (and, composed here, ``flopcast hardware``): the calibration stage's commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from flopcast.calibration.config import DEFAULT_COUNTRY, DEFAULT_OUT, DEVICES, CalibrateConfig, CalibrateConfigError
from flopcast.calibration.hardware_cli import add_hardware_parser
from flopcast.features.cli import add_step_arguments, step_options_from_args


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_calibrate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the calibration stage's commands to a ``flopcast`` subparsers object: ``calibrate`` and ``hardware``.

    Returns:
        The ``calibrate`` parser (``func`` set to :func:`run_calibrate_command`).
    """
    if "hardware" not in subparsers.choices:
        add_hardware_parser(subparsers)
    p = subparsers.add_parser(
        "calibrate", help="measure op and model-step costs on this machine (resumable, tracked)",
        description="Measure how long, how much energy and memory ops and zoo model steps take on this CPU or "
                    "GPU. Rows are stored as they finish: rerun the same command to resume.",
    )
    p.add_argument("--device", choices=DEVICES, default="cpu", help="device to calibrate (default: cpu)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"campaign directory (default: ./{DEFAULT_OUT}/)")
    p.add_argument("--quick", action="store_true", help="small preset: a new CPU in about 3 minutes")
    p.add_argument("--budget-minutes", type=float, help="stop after this many minutes (most informative first)")
    p.add_argument("--families", type=_csv,
                   help="microbenchmark families, comma-separated (default: all); 'none' for model steps only")
    p.add_argument("--dtypes", type=_csv, help="fp32,tf32,bf16,fp16 (default: each family's for the device)")
    p.add_argument("--zoo", type=_csv, help="zoo models, comma-separated; 'none' for no model steps")
    p.add_argument("--configs-per-family", type=int, default=24,
                   help="sampled shapes per family (default: 24; 0 with --ops-from: only those shapes)")
    p.add_argument("--hardware", help="catalog name or descriptor file whose spec values label this device")
    p.add_argument("--country", default=DEFAULT_COUNTRY, help="ISO alpha-3 grid country for CodeCarbon (FRA)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLflow's local store in the cwd)")
    p.add_argument("--experiment", help="MLflow experiment (default: flopcast-<hardware>)")
    p.add_argument("--no-tracking", action="store_true", help="do not log the campaign to MLflow")
    p.add_argument("--ops-from", type=Path, action="append", default=[], metavar="PARQUET",
                   help="also benchmark the op shapes of an analyze --ops-parquet table (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of shape sampling and order (default: 0)")
    p.add_argument("--no-energy", action="store_true", help="time only; no energy windows")
    p.add_argument("--energy-share", type=float, default=0.1, help="share of op configs with an energy window")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_step_arguments(p, plain_default=True)
    p.add_argument("--no-store", action="store_true",
                   help="do not file the campaign as this machine's calibration (used by predict --hardware local)")
    p.add_argument("--collectives", action="store_true",
                   help="measure all-reduce / all-gather / reduce-scatter / send-recv bus bandwidth over this node's "
                        "GPUs (torchrun, NCCL) and write DIR/interconnect.json for predict --interconnect")
    slurm = p.add_argument_group("SLURM", "submit the campaign as a job array instead of running it here")
    slurm.add_argument("--slurm", action="store_true", help="submit with submitit")
    slurm.add_argument("--partition", help="SLURM partition")
    slurm.add_argument("--gres", help="generic resources, e.g. gpu:h100:1")
    slurm.add_argument("--array", type=int, default=1, help="number of array tasks (shards of the config list)")
    slurm.add_argument("--time-min", type=int, default=60, help="time limit per task, minutes (default: 60)")
    slurm.add_argument("--nodes", type=int, default=1, help="nodes of a --collectives job (default: 1)")
    slurm.add_argument("--dry-run", action="store_true", help="print the sbatch script, submit nothing")
    p.set_defaults(func=run_calibrate_command)
    return p


def config_from_args(args: argparse.Namespace) -> CalibrateConfig:
    """The campaign config of parsed ``calibrate`` arguments.

    Raises:
        CalibrateConfigError: for an unknown family or zoo model, or an invalid value.
    """
    from flopcast.calibration.microbench import family_names
    from flopcast.calibration.zoo import ZOO, get

    families = () if args.families == ("none",) else args.families
    unknown = [f for f in families or () if f not in family_names()]
    if unknown:
        raise CalibrateConfigError(f"unknown famil(ies) {', '.join(unknown)}; known: {', '.join(family_names())}")
    zoo = args.zoo
    if zoo is not None:
        zoo = () if zoo == ("none",) else zoo
        for name in zoo:
            if name not in ZOO:
                try:
                    get(name)
                except KeyError as e:
                    raise CalibrateConfigError(str(e.args[0])) from None
    return CalibrateConfig(
        device=args.device, out_dir=args.out, quick=args.quick, budget_minutes=args.budget_minutes,
        families=families, dtypes=args.dtypes, zoo=zoo, configs_per_family=args.configs_per_family,
        hardware=args.hardware, country=args.country, tracking_uri=args.tracking_uri, experiment=args.experiment,
        track=not args.no_tracking, ops_from=tuple(args.ops_from), seed=args.seed, energy=not args.no_energy,
        energy_share=args.energy_share, progress=not args.no_progress, store=not args.no_store, slurm=args.slurm,
        partition=args.partition, gres=args.gres, array=args.array, time_min=args.time_min, dry_run=args.dry_run,
        step=step_options_from_args(args), collectives=args.collectives, nodes=args.nodes,
    )


def run_calibrate_command(args: argparse.Namespace) -> int:
    """Run ``flopcast calibrate``; errors are ``ValueError`` subclasses with one clear line.

    Returns:
        The exit code (0).
    """
    cfg = config_from_args(args)
    if cfg.collectives:
        from flopcast.calibration.collective_launch import run_collectives_command

        print(run_collectives_command(cfg))
        return 0
    if cfg.slurm or cfg.dry_run:
        from flopcast.calibration.slurm import submit

        print(submit(cfg))
        return 0
    from flopcast.calibration.campaign import run_campaign

    result = run_campaign(cfg)
    rows = ", ".join(f"{n} {k}" for k, n in result.rows.items())
    left = "; stopped by the budget: rerun to continue" if result.stopped_by_budget else ""
    print(f"calibrated {result.descriptor.name}: {result.measured} new rows in {result.duration_s:.0f} s "
          f"({rows} in {result.out_dir}; {result.trusted_share:.0%} trusted){left}")
    if result.tracking_uri:
        print(f"MLflow run {result.campaign} at {result.tracking_uri}")
    if result.emissions.error:
        print(f"campaign emissions missing: {result.emissions.error}")
    else:
        print(f"campaign emissions: {result.emissions.kg_co2eq:.3g} kg CO2-eq ({cfg.country})")
    if cfg.store:
        from flopcast.calibration.filing import file_campaign

        print(file_campaign(result.out_dir))
    return 0
