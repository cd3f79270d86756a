"""flopcast on NeuSight's 4-GPU benchmark (data, tensor and pipeline parallel, Megatron-LM) beside NeuSight.

NeuSight (ASPLOS'25) measured GPT-2 large and its "GPT-3 XL" config trained on 4 GPUs of one node with Megatron-LM
through Hugging Face Accelerate (``scripts/asplos/collect_label_distributed.py``): one strategy at a time (``dp4``,
``tp4``, ``pp4_1``: 4 stages, 1 micro-batch), fp32 (``--mixed_precision=no``), gradient clipping at 1.0, Adam,
torch DDP, no sequence parallelism nor recomputation. Its labels (``scripts/asplos/label/<GPU>/*-dp4.json``,
``-tp4.json``, ``-pp4_1.json``) are the mean of the 10 fastest of 50 steps timed around ``model(**batch)`` and
``accelerator.backward(loss)``: Accelerate's Megatron engine runs Megatron's whole ``train_step`` inside the model
call (forward, backward, gradient all-reduce, clipping, optimizer step), so a label is a whole training step.
``scripts/asplos/summary/distributed.csv`` holds the same labels beside NeuSight's predictions.

Each row is predicted by :func:`flopcast.predictor.parallel.predict.predict_parallel`, the function behind
``flopcast predict --gpus 4 --parallel dp|tp|pp``, on the catalog descriptor of the GPU and the catalog system's
interconnect (NVLink + NVSwitch), for the model of :mod:`flopcast.calibration.zoo.published` (the configs NeuSight
measured, eager attention), fp32 with TF32 off, cross-entropy loss, fused AdamW, gradient clipping at 1.0. The
global batch is split over the data-parallel replicas and micro-batches as Megatron splits it.

What the cost model has seen: the shipped model's op stage and step stages were fitted on NeuSight's single-GPU
data too, H100 op rows and the single-GPU labels of these two models on the H100 included (not these 4-GPU labels);
the A100 SXM4 40GB has neither op rows nor labels anywhere (``calibrated`` False: priced from its spec sheet).
Megatron builds its own GPT (fused bias-GeLU and bias-dropout-add, apex layer norm) where the rebuilt model is
Hugging Face's eager GPT-2: more elementwise kernels here than were run.

Run: ``python experiments/distributed_benchmark.py --neusight PATH [--model DIR]`` (PATH: a NeuSight checkout;
DIR: a cost model, default the shipped one). Prints the table and writes
``experiments/results/distributed_benchmark.{md,csv}``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from result_tables import write_result

from flopcast.calibration.catalog import match_vendor_name
from flopcast.calibration.zoo import get
from flopcast.datasets.import_neusight import LABELS
from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig
from flopcast.features.spec import parse_spec
from flopcast.features.step_options import StepOptions
from flopcast.features.trace_model import trace_model
from flopcast.predictor.io import load_model
from flopcast.predictor.metrics import ape_pct
from flopcast.predictor.model import CostModel
from flopcast.predictor.parallel.predict import Analyse, ParallelConfig, Transform, predict_parallel
from flopcast.predictor.predict import PredictConfig

RESULTS = Path(__file__).resolve().parent / "results"
LABEL_DIR = Path("scripts/asplos/label")
SUMMARY = Path("scripts/asplos/summary/distributed.csv")
LABEL_NAME = re.compile(r"^(?P<model>[a-z0-9_]+)-train-(?P<seq>\d+)-(?P<batch>\d+)-(?P<option>dp4|tp4|pp4_1)\.json$")
STRATEGY = {"dp4": "dp", "tp4": "tp", "pp4_1": "pp"}
"""NeuSight's option names -> ``--parallel`` (``pp4_1``: 4 stages and one micro-batch)."""
SUMMARY_MODELS = {"GPT2-Large": "gpt2_large", "GPT3-XL": "gpt3_xl"}
SUMMARY_GPUS = {"A100x4": "NVIDIA_A100-SXM4-40GB", "H100x4": "NVIDIA_H100_80GB_HBM3"}
"""``distributed.csv``'s column groups -> the label folders (the GPU name ``torch.cuda.get_device_name`` gave)."""
GPUS = 4
PRECISION = "fp32-strict"
"""``--mixed_precision=no``: fp32, and Megatron leaves torch's TF32 matmul switch at its default (off)."""
STEP = StepOptions(loss="cross-entropy", grad_clip=1.0, fused_optimizer=True)
"""Megatron's step: its cross-entropy, ``--megatron_lm_gradient_clipping 1.0``, apex's fused Adam (AdamW mode)."""


def label_rows(neusight: Path) -> pd.DataFrame:
    """Every 4-GPU label: model, GPU, strategy, global batch, sequence length and the measured step.

    Raises:
        SystemExit: no label folder (``--neusight`` is not a NeuSight checkout).
    """
    root = neusight / LABEL_DIR
    if not root.is_dir():
        raise SystemExit(f"error: {root}: no such folder (--neusight must be a NeuSight checkout)")
    rows = []
    for path in sorted(root.glob("*/*.json")):
        m = LABEL_NAME.match(path.name)
        if m is None or m["model"] not in LABELS:
            continue
        hardware = match_vendor_name(path.parent.name.replace("_", " "))
        if hardware is None:
            raise SystemExit(f"error: {path.parent.name}: no catalog GPU of that name")
        rows.append({"upstream": m["model"], "folder": path.parent.name, "hardware": hardware,
                     "parallel": STRATEGY[m["option"]], "batch_size": int(m["batch"]), "seq": int(m["seq"]),
                     "measured": json.loads(path.read_text())["e2e_latency"] / 1e3})
    return pd.DataFrame(rows)


def neusight_predictions(neusight: Path) -> pd.DataFrame:
    """NeuSight's measured and predicted step per (model, batch, GPU folder, strategy), s, from ``distributed.csv``.

    The file is a spreadsheet: a row of GPU groups, a row of strategies, then per model and batch a row of
    measurements and one of predictions (``510.5 (12.9%)``), the model and batch written once.
    """
    raw = pd.read_csv(neusight / SUMMARY, header=None, dtype=str).fillna("")
    gpus, strategies = raw.iloc[0].tolist(), raw.iloc[1].tolist()
    group = ""
    columns = []
    for gpu, strategy in zip(gpus, strategies, strict=True):
        group = gpu or group
        columns.append((SUMMARY_GPUS.get(group), strategy.lower()))
    out: dict[tuple[str, int, str, str], dict[str, float]] = {}
    model, batch = "", 0
    for row in raw.iloc[2:].itertuples(index=False):
        model = SUMMARY_MODELS.get(row[0], model) if row[0] else model
        batch = int(row[1]) if row[1] else batch
        kind = "measured" if row[2].startswith("Measured") else "neusight" if row[2].startswith("NeuSight") else None
        for (folder, strategy), cell in zip(columns, row, strict=True):
            if kind is None or folder is None or not cell.strip():
                continue
            out.setdefault((model, batch, folder, strategy), {})[kind] = float(cell.split()[0]) / 1e3
    return pd.DataFrame([{"upstream": k[0], "batch_size": k[1], "folder": k[2], "parallel": k[3], **v}
                         for k, v in out.items()])


def zoo_analyse(model: str) -> Analyse:
    """The ``analyse`` of :func:`predict_parallel` for a zoo model: its builder, wrapped by one GPU's shard."""
    zm = get(model)

    def analyse(config: AnalyzeConfig, transform: Transform | None) -> Analysis:
        build = transform(zm.build) if transform is not None else zm.build
        return trace_model(build, [parse_spec(s) for s in zm.inputs], config)

    return analyse


def predicted(rows: pd.DataFrame, model: CostModel, model_dir: Path | None) -> pd.DataFrame:
    """Each label's row with flopcast's step (median and 10 / 90 %), its parts and the one-GPU step."""
    out = []
    for _, r in rows.iterrows():
        zoo = LABELS[r["upstream"]]["train"]
        analysis = AnalyzeConfig(target=f"zoo:{zoo}", batch_size=int(r["batch_size"]), mode="train",
                                 precision=PRECISION, optimizer="adamw", framework="torch", step=STEP)
        config = ParallelConfig(predict=PredictConfig(analysis=analysis, hardware=(str(r["hardware"]),),
                                                      model_dir=model_dir, use_store=False),
                                gpus=GPUS, parallel=str(r["parallel"]))
        p = predict_parallel(config, model, zoo_analyse(zoo))[0]
        d = p.to_dict()
        out.append({"flopcast": d["step_time_s"], "p10": d["step_time_s_p10"], "p90": d["step_time_s_p90"],
                    "compute": d["compute_s"], "comm_exposed": d["comm_exposed_s"], "comm_total": d["comm_total_s"],
                    "one_gpu": d["single_gpu_step_time_s"], "calibrated": d["calibrated"], "fits": d["fits"]})
        print(f"  {zoo} {r['hardware']} {r['parallel']}{GPUS} batch {r['batch_size']}: measured "
              f"{r['measured'] * 1e3:.1f} ms, flopcast {d['step_time_s'] * 1e3:.1f} ms", file=sys.stderr)
    return pd.concat([rows.reset_index(drop=True), pd.DataFrame(out)], axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neusight", type=Path, required=True, help="a NeuSight checkout")
    parser.add_argument("--model", type=Path, help="cost model folder (default: the shipped model)")
    args = parser.parse_args()
    rows = label_rows(args.neusight)
    peers = neusight_predictions(args.neusight)
    rows = rows.merge(peers, on=["upstream", "batch_size", "folder", "parallel"], how="left",
                      suffixes=("", "_summary"))
    mismatch = rows["measured_summary"].notna() & (ape_pct(rows["measured_summary"], rows["measured"]) > 0.1)
    if mismatch.any():
        raise SystemExit(f"error: distributed.csv's measurements differ from the label files:\n{rows[mismatch]}")
    model = load_model(args.model)
    p = predicted(rows, model, args.model)
    p["flopcast error %"] = ape_pct(p["flopcast"], p["measured"]).round(1)
    p["NeuSight error %"] = ape_pct(p["neusight"], p["measured"]).round(1)
    table = pd.DataFrame({
        "model": p["upstream"], "GPUs": "4 x " + p["hardware"], "parallel": p["parallel"],
        "global batch": p["batch_size"], "seq": p["seq"], "measured ms": (p["measured"] * 1e3).round(1),
        "flopcast ms": (p["flopcast"] * 1e3).round(1),
        "10-90 %": [f"{a * 1e3:.0f}-{b * 1e3:.0f}" for a, b in zip(p["p10"], p["p90"], strict=True)],
        "flopcast error %": p["flopcast error %"], "NeuSight ms": (p["neusight"] * 1e3).round(1),
        "NeuSight error %": p["NeuSight error %"], "comm exposed ms": (p["comm_exposed"] * 1e3).round(1),
        "one GPU ms": (p["one_gpu"] * 1e3).round(1), "calibrated": p["calibrated"]})
    ours, theirs = p["flopcast error %"], p["NeuSight error %"]
    about = (f"{len(p)} labels of NeuSight's 4-GPU benchmark (Megatron-LM, fp32); flopcast cost model {model.version}. "
             f"Error, median / mean: flopcast {ours.median():.1f} / {ours.mean():.1f} %, "
             f"NeuSight {theirs.median():.1f} / {theirs.mean():.1f} %; "
             f"within 10 %: flopcast {int((ours <= 10).sum())}, NeuSight {int((theirs <= 10).sum())} of {len(p)}.")
    write_result(RESULTS, "distributed_benchmark", "NeuSight's 4-GPU benchmark "
                 "(`python experiments/distributed_benchmark.py --neusight PATH`)", about, table,
                 lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
