"""The GPU calibration campaign of issue 6, in chunks that each fit one 10-minute device command.

Phases (each resumable: finished rows are kept in ``<dir>/<hardware>/`` and skipped on a rerun):
  ``followup``: what the 2026-11-25 H200 data lacks, in one short command: the op shapes of the zoo steps
  whose summed op predictions missed most (fp32 GEMMs of 10-100 GFLOP, beyond the largest fp32 matmul
  measured, 1 GFLOP; large convolutions; the recurrent models) benchmarked from their ``analyze`` op tables
  (``--ops-from``), interleaved with the zoo steps measured again (same configs as ``gpu``: the GPU's
  repeatability for ``experiments/repeatability.py``), into ``<dir>/<gpu>-followup/``;
  ``gpu``: on the lent GPU, op microbenchmarks of every family (fp32/tf32/bf16/fp16, tiny to large
  shapes, an energy window on a share of them) and steps of every zoo model (fp32 and bf16, train and
  infer, each with time, NVML energy and peak memory), with measured ceilings and idle power;
  ``cpu``: the same on the host CPU (op suite + CPU-sized zoo models), a bigger CPU than the dev machine.
Every campaign is an MLflow run in ``<dir>/mlflow.db``.

Usage: ``python experiments/gpu_campaign.py PHASE --dir DIR --budget-minutes M``; before a ``followup`` device
call, ``python experiments/gpu_campaign.py followup --dir .gpu --prepare`` writes its op tables here (the
device then spends no time tracing).
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
FOLLOWUP_STEP_PRECISIONS = ("fp32-strict", "fp32", "bf16")
"""The follow-up's steps: fp32-strict as the 2026-11-25 H200 steps ran (TF32 off: the GPU's repeatability against
them), fp32 as PyTorch runs it by default (TF32 convolutions: issue 16's default-conv steps), and bf16."""
FOLLOWUP_STEPS = (("bert-base", 32, "fp32"), ("gpt2-small", 16, "fp32"), ("vit-b16", 64, "fp32"),
                  ("mlp-wide", 8192, "fp32"), ("mlp-deep", 8192, "fp32"), ("transformer-classifier", 256, "fp32"),
                  ("resnet50-224", 128, "fp32"), ("unet-256", 16, "fp32"), ("simple-cnn", 4096, "fp32"),
                  ("m5-audio", 1024, "fp32"), ("lstm-lm", 256, "fp32"), ("gpt2-small", 16, "bf16"),
                  ("resnet18-224", 32, "bf16"))
"""H200 train steps (model, batch size, precision) whose summed op predictions were furthest from the
measured step (`eval_steps.csv`, 2026-12-02: op sum / measured 1.5-2.1 for fp32 transformers and MLPs, 0.3-0.6
for large fp32 convolutions); their op shapes are the follow-up's microbenchmarks."""
CPU_STEP_PRECISIONS = ("fp32", "bf16")


def gpu_slug() -> str:
    """A folder name for the GPU in use (so data from an H100 and an H200 never share a folder)."""
    name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                          text=True, check=True).stdout.splitlines()[0]
    return "gpu-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


FOLLOWUP_FAMILIES = ("matmul", "conv2d_fwd", "conv2d_grad_input", "conv2d_grad_weight", "conv1d", "conv1d_grad_input",
                     "conv1d_grad_weight", "sdpa_fwd", "sdpa_fwd_bwd")
"""Families of the follow-up's op shapes: the compute-bound ops whose large shapes the first campaign lacked."""


def followup_op_tables(root: Path) -> tuple[Path, ...]:
    """``analyze --ops-parquet`` tables of :data:`FOLLOWUP_STEPS` (CUDA train steps), written under ``root``."""
    from flopcast.features.table import write_ops_frame
    from flopcast.predictor.analysis_cache import zoo_step

    folder = root / "followup-ops"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for model, batch, precision in FOLLOWUP_STEPS:
        path = folder / f"{model}-b{batch}-{precision}.parquet"
        if not path.is_file():
            write_ops_frame(zoo_step(model, batch, "train", precision, "adamw", "cuda").ops, path, source=model)
        paths.append(path)
    return tuple(paths)


def config_for(phase: str, root: Path, budget_minutes: float, slug: str | None = None) -> CalibrateConfig:
    """The campaign of ``phase`` (``followup``, ``gpu`` or ``cpu``) writing under ``root``.

    ``slug``: the GPU's folder name (default: :func:`gpu_slug`, which asks ``nvidia-smi``).
    """
    tracking = f"sqlite:///{(root / 'mlflow.db').resolve()}"
    if phase == "followup":  # no sampled shapes: the steps' own op shapes, and the steps again
        return CalibrateConfig(
            device="cuda", out_dir=root / f"{slug or gpu_slug()}-followup", budget_minutes=budget_minutes,
            zoo=tuple(sorted(ZOO)), families=FOLLOWUP_FAMILIES, configs_per_family=0,
            ops_from=followup_op_tables(root), energy_share=0.08,
            min_window_s=0.02, step_precisions=FOLLOWUP_STEP_PRECISIONS, tracking_uri=tracking, progress=False,
        )
    if phase == "gpu":
        return CalibrateConfig(
            device="cuda", out_dir=root / (slug or gpu_slug()), budget_minutes=budget_minutes, zoo=tuple(sorted(ZOO)),
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
    parser.add_argument("phase", choices=("followup", "gpu", "cpu"))
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--budget-minutes", type=float)
    parser.add_argument("--prepare", action="store_true",
                        help="followup: only write its op tables under --dir (here, before the device call)")
    args = parser.parse_args()
    if args.prepare:
        print(f"wrote {len(followup_op_tables(args.dir))} op tables under {args.dir / 'followup-ops'}")
        return
    if args.budget_minutes is None:
        parser.error("--budget-minutes is required to run a campaign")
    result = run_campaign(config_for(args.phase, args.dir, args.budget_minutes))
    print(f"{args.phase}: {result}", flush=True)


if __name__ == "__main__":
    main()
