"""``flopcast calibrate --collectives``: launch the collective microbenchmarks and turn them into an interconnect file.

On this node: one rank per visible GPU through ``torchrun --standalone`` (NCCL); with fewer than two GPUs there is
nothing to measure, and it says so. Under SLURM (``--slurm``): one submitit task per GPU on ``--nodes`` nodes
(``--gres gpu[:TYPE]:N``: N GPUs per node), each joining the job's process group from submitit's environment.
Either way rank 0 writes ``collectives.jsonl`` / ``.parquet`` and :func:`write_interconnect` the
``interconnect.json`` that ``flopcast predict --gpus N --interconnect DIR/interconnect.json`` reads: the busbw of
each collective at its largest measured size (nccl-tests' plateau) and the all-reduce latency at the smallest.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from flopcast.calibration.collective_bench import TABLE, BenchConfig
from flopcast.calibration.config import CalibrateConfig, CalibrateConfigError
from flopcast.calibration.interconnect import COLLECTIVES
from flopcast.calibration.store import Store
from flopcast.datasets.schema import COLLECTIVE_COLUMNS

INTERCONNECT_FILE = "interconnect.json"
MIN_GPUS = 2


def bench_config(cfg: CalibrateConfig) -> BenchConfig:
    """What each rank measures, from the calibrate options."""
    return BenchConfig(out_dir=cfg.out_dir.resolve(), hardware=cfg.hardware or "")


def visible_gpus() -> int:
    """CUDA GPUs this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def write_interconnect(out_dir: Path) -> Path:
    """Summarise the measured rows as an interconnect descriptor file (``load_interconnect``'s format).

    Raises:
        CalibrateConfigError: no collective row in ``out_dir``.
    """
    rows = pd.DataFrame(Store(out_dir, TABLE, COLLECTIVE_COLUMNS).rows())
    if rows.empty:
        raise CalibrateConfigError(f"{out_dir}: no collective measurements to summarise")
    largest = rows.sort_values("bytes").groupby("collective").tail(1)
    busbw = {str(r.collective): float(r.busbw_bytes_per_s) for r in largest.itertuples()}
    nodes, ranks = int(rows["nodes"].max()), int(rows["ranks"].max())
    hardware = str(rows["hardware"].iloc[0])
    reduce = rows[rows["collective"] == "all_reduce"].sort_values("bytes")
    data: dict[str, Any] = {
        "name": f"measured-{hardware}-{ranks}", "gpus_per_node": ranks // nodes,
        "measured_by": f"flopcast calibrate --collectives: {ranks} x {hardware} on {nodes} node(s), "
                       f"{rows['backend'].iloc[0]}, {rows['measured_at'].max()}",
        "source": str((out_dir / f"{TABLE}.parquet").resolve()),
        ("inter_busbw_bytes_per_s" if nodes > 1 else "busbw_bytes_per_s"): busbw}
    if nodes == 1 and not reduce.empty:
        data["latency_s"] = float(reduce["time_s"].iloc[0])
    path = out_dir / INTERCONNECT_FILE
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def summary_line(path: Path) -> str:
    """What was measured, in one line per collective, and how to use it."""
    data = json.loads(path.read_text())
    busbw = data.get("busbw_bytes_per_s") or data.get("inter_busbw_bytes_per_s")
    parts = ", ".join(f"{op.replace('_', '-')} {busbw[op] / 1e9:.1f} GB/s" for op in COLLECTIVES if op in busbw)
    return (f"{data['measured_by']}\nbus bandwidth at the largest size: {parts}\n"
            f"predict with it: flopcast predict ... --gpus N --interconnect {path}")


def torchrun_command(cfg: CalibrateConfig, gpus: int) -> list[str]:
    """The ``torchrun`` command line measuring this node's ``gpus`` GPUs."""
    b = bench_config(cfg)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
            "-m", "flopcast.calibration.collective_bench", "--out", str(b.out_dir), "--backend", "nccl",
            "--hardware", b.hardware]


def run_here(cfg: CalibrateConfig) -> str:
    """Measure this node's GPUs (or say why not); the text to print.

    Raises:
        subprocess.CalledProcessError: a rank failed (its output is on the terminal).
    """
    gpus = visible_gpus()
    if gpus < MIN_GPUS:
        return (f"calibrate --collectives: skipped, it needs {MIN_GPUS} or more GPUs on this node and this process "
                f"sees {gpus}; nothing measured (--slurm --nodes M measures across nodes)")
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(torchrun_command(cfg, gpus), check=True)
    return summary_line(write_interconnect(cfg.out_dir))


def gpus_per_node(cfg: CalibrateConfig) -> int:
    """GPUs per node of a SLURM collectives job: the count of ``--gres gpu[:TYPE]:N``.

    Raises:
        CalibrateConfigError: no ``--gres`` of GPUs.
    """
    if not cfg.gres or not cfg.gres.startswith("gpu"):
        raise CalibrateConfigError("calibrate --collectives --slurm needs --gres gpu[:TYPE]:N (N GPUs per node)")
    return int(cfg.gres.rsplit(":", 1)[1])


def slurm_parameters(cfg: CalibrateConfig) -> dict[str, Any]:
    """The SLURM parameters submitit gets: one task per GPU on ``cfg.nodes`` nodes."""
    from flopcast.calibration.slurm import check_options

    check_options(cfg)
    per = gpus_per_node(cfg)
    params: dict[str, Any] = {"job_name": "flopcast-collectives", "time": cfg.time_min, "nodes": cfg.nodes,
                              "ntasks_per_node": per, "gres": cfg.gres}
    if cfg.partition:
        params["partition"] = cfg.partition
    return params


def slurm_task(cfg: CalibrateConfig) -> str:
    """One SLURM task (one GPU): join the job's process group from submitit's environment, measure."""
    import submitit

    from flopcast.calibration.collective_bench import run_rank

    env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    os.environ["FLOPCAST_NODES"] = str(cfg.nodes)
    run_rank(bench_config(cfg), "nccl")
    return summary_line(write_interconnect(cfg.out_dir)) if env.rank == 0 else ""


def submit(cfg: CalibrateConfig) -> str:
    """``calibrate --collectives --slurm``: the sbatch script with ``--dry-run``, else the submitted job."""
    from flopcast.calibration.slurm import log_folder

    params = slurm_parameters(cfg)
    cfg = replace(cfg, out_dir=cfg.out_dir.resolve())
    folder = log_folder(cfg)
    if cfg.dry_run:
        from submitit.slurm.slurm import _make_sbatch_string

        command = " ".join(shlex.quote(x) for x in (sys.executable, "-u", "-m", "submitit.core._submit",
                                                    str(folder)))
        return _make_sbatch_string(command=command, folder=folder, **params)
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(name=params.pop("job_name"), timeout_min=params.pop("time"), nodes=params.pop("nodes"),
                               tasks_per_node=params.pop("ntasks_per_node"),
                               **{f"slurm_{k}": v for k, v in params.items()})
    job = executor.submit(slurm_task, cfg)
    return f"submitted job {job.job_id}: rows land in {cfg.out_dir}, then {cfg.out_dir / INTERCONNECT_FILE}"


def run_collectives_command(cfg: CalibrateConfig) -> str:
    """``flopcast calibrate --collectives``: here, or as a SLURM job."""
    return submit(cfg) if cfg.slurm or cfg.dry_run else run_here(cfg)
