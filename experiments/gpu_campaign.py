"""The GPU calibration campaign of issue 6, in chunks that each fit one 10-minute device command.

Phases (each resumable: finished rows are kept in ``<dir>/<hardware>/`` and skipped on a rerun):
  ``gpu``: on the lent GPU, op microbenchmarks of every family (fp32/tf32/bf16/fp16, tiny to large
  shapes, an energy window on a share of them) and steps of every zoo model (fp32 and bf16, train and
  infer, each with time, NVML energy and peak memory), with measured ceilings and idle power;
  ``cpu``: the same on the host CPU (op suite + CPU-sized zoo models), a bigger CPU than the dev machine.
Every campaign is an MLflow run in ``<dir>/mlflow.db``.

Usage: ``python experiments/gpu_campaign.py PHASE --dir DIR --budget-minutes M``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

from flopcast.calibration.campaign import run_campaign
from flopcast.calibration.config import CalibrateConfig
from flopcast.calibration.zoo import ZOO

GPU_STEP_PRECISIONS = ("fp32", "bf16")
CPU_STEP_PRECISIONS = ("fp32", "bf16")


def gpu_slug() -> str:
    """A folder name for the GPU in use (so data from an H100 and an H200 never share a folder)."""
    name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                          text=True, check=True).stdout.splitlines()[0]
    return "gpu-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def config_for(phase: str, root: Path, budget_minutes: float) -> CalibrateConfig:
    """The campaign of ``phase`` (``gpu`` or ``cpu``) writing under ``root``."""
    tracking = f"sqlite:///{(root / 'mlflow.db').resolve()}"
    if phase == "gpu":
        return CalibrateConfig(
            device="cuda", out_dir=root / gpu_slug(), budget_minutes=budget_minutes, zoo=tuple(sorted(ZOO)),
            configs_per_family=120, energy_share=0.08, min_window_s=0.02, step_precisions=GPU_STEP_PRECISIONS,
            tracking_uri=tracking, progress=False,
        )
    return CalibrateConfig(
        device="cpu", out_dir=root / "cpu-host", budget_minutes=budget_minutes,
        zoo=tuple(sorted(n for n, m in ZOO.items() if m.batch_sizes)), configs_per_family=40,
        dtypes=("fp32", "bf16"), energy_share=0.05, min_window_s=0.03, step_precisions=CPU_STEP_PRECISIONS,
        step_batch_sizes=(1, 8, 32), tracking_uri=tracking, progress=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("gpu", "cpu"))
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--budget-minutes", type=float, required=True)
    args = parser.parse_args()
    result = run_campaign(config_for(args.phase, args.dir, args.budget_minutes))
    print(f"{args.phase}: {result}", flush=True)


if __name__ == "__main__":
    main()
