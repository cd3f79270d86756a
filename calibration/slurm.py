"""SLURM job arrays of a campaign through submitit: one shard of the task list per array task.

Every shard writes its own ``<table>.shard-<i>.jsonl`` in the shared ``--out`` directory; reading a
table merges the shards by key, so nothing is counted twice, and each finishing shard re-exports the
merged parquet tables under a lock.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from flopcast.calibration.config import CalibrateConfig

_GRES = re.compile(r"^[A-Za-z][\w-]*(:[\w.-]+)?:[1-9]\d*$")


class SlurmOptionsError(ValueError):
    """The SLURM options of ``flopcast calibrate --slurm`` are invalid."""


def check_options(cfg: CalibrateConfig) -> None:
    """Validate the SLURM options.

    Raises:
        SlurmOptionsError: for ``--array`` < 1, a malformed ``--gres`` or a non-positive time limit.
    """
    if cfg.array < 1:
        raise SlurmOptionsError(f"--array must be >= 1 (the number of shards), not {cfg.array}")
    if cfg.gres is not None and not _GRES.match(cfg.gres):
        raise SlurmOptionsError(f"--gres {cfg.gres!r} is malformed: expected NAME[:TYPE]:COUNT such as gpu:h100:1")
    if cfg.time_min < 1:
        raise SlurmOptionsError(f"--time-min must be >= 1 minute, not {cfg.time_min}")
    if cfg.partition is not None and not re.fullmatch(r"[\w.,-]+", cfg.partition):
        raise SlurmOptionsError(f"--partition {cfg.partition!r} is not a valid partition name")


def executor_parameters(cfg: CalibrateConfig) -> dict[str, Any]:
    """The submitit SLURM parameters of a campaign array (also used to print the dry-run script)."""
    params: dict[str, Any] = {"job_name": "flopcast-calibrate", "time": cfg.time_min, "nodes": 1,
                              "array_parallelism": cfg.array}
    if cfg.partition:
        params["partition"] = cfg.partition
    if cfg.gres:
        params["gres"] = cfg.gres
    return params


def log_folder(cfg: CalibrateConfig) -> Path:
    """Where submitit keeps job scripts, pickles and logs: ``<out>/slurm/%j``."""
    return (cfg.out_dir / "slurm").resolve() / "%j"


def sbatch_script(cfg: CalibrateConfig) -> str:
    """The sbatch script submitit would submit for this campaign array (nothing is submitted).

    Raises:
        SlurmOptionsError: for invalid options.
    """
    check_options(cfg)
    from submitit.slurm.slurm import _make_sbatch_string

    folder = log_folder(cfg)
    command = " ".join(shlex.quote(x) for x in (sys.executable, "-u", "-m", "submitit.core._submit", str(folder)))
    return _make_sbatch_string(command=command, folder=folder, map_count=cfg.array, **executor_parameters(cfg))


def run_shard(cfg: CalibrateConfig) -> dict[str, Any]:
    """Run one shard (the function each array task executes) and return a picklable summary."""
    from flopcast.calibration.campaign import run_campaign

    result = run_campaign(cfg)
    return {"shard": cfg.shard_index, "planned": result.planned, "measured": result.measured,
            "already_done": result.already_done, "rows": result.rows, "campaign": result.campaign}


def shard_configs(cfg: CalibrateConfig) -> list[CalibrateConfig]:
    """One config per array task, sharing the output directory (made absolute for the compute nodes)."""
    base = replace(cfg, out_dir=cfg.out_dir.resolve(), progress=False)
    return [base.shard(i, cfg.array) for i in range(cfg.array)]


def submit_jobs(cfg: CalibrateConfig, cluster: str | None = "slurm") -> list[Any]:
    """Submit the array and return submitit's jobs (``cluster="local"`` runs them as local processes).

    Raises:
        SlurmOptionsError: for invalid options.
    """
    check_options(cfg)
    import submitit

    executor = submitit.AutoExecutor(folder=log_folder(cfg), cluster=cluster)
    params = executor_parameters(cfg)
    executor.update_parameters(
        name=params.pop("job_name"), timeout_min=params.pop("time"), nodes=params.pop("nodes"),
        **{f"slurm_{k}": v for k, v in params.items()},
    )
    return executor.map_array(run_shard, shard_configs(cfg))


def submit(cfg: CalibrateConfig) -> str:
    """``calibrate --slurm``: print-ready text, the sbatch script for ``--dry-run``, else the job ids.

    Raises:
        SlurmOptionsError: for invalid options.
    """
    if cfg.dry_run:
        return sbatch_script(cfg)
    jobs = submit_jobs(cfg)
    ids = ", ".join(j.job_id for j in jobs)
    return (f"submitted {len(jobs)} array task(s): {ids}\nrows land in {cfg.out_dir.resolve()}; "
            f"logs in {log_folder(cfg).parent}")
