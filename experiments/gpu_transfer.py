"""Op time on a GPU the op model never saw: leave-one-GPU-out over every GPU with op rows.

For each GPU, the op model is fitted on every other device's rows (the other GPUs and the CPUs) and predicts
that GPU's rows from its catalog descriptor, as ``flopcast predict --hardware NAME`` prices a GPU without data.
Reported per GPU and op family: median and mean absolute % error and the share within 25 %, beside the spec
roofline (``max(FLOPs / peak, bytes / bandwidth)``) and the roofline at the other GPUs' median efficiency of
that op family (a calibrated roofline transferred by a constant).

Run: ``python experiments/gpu_transfer.py [--data DIR ...] [--gpus h100-sxm,l4] [--max-rows 3000]``;
``--max-rows`` caps each (device, family) of the training rows (evenly over their FLOPs) to keep a fold fast.
Prints the table and writes ``experiments/results/gpu_transfer.{md,csv}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from evaluate import subset
from result_tables import write_result

from flopcast.calibration.catalog import get_hardware
from flopcast.datasets.loader import load_datasets
from flopcast.predictor.compose import op_quantiles
from flopcast.predictor.featurize import featurize
from flopcast.predictor.metrics import error_metrics
from flopcast.predictor.op_rows import ROW_PRECISION, op_training_rows
from flopcast.predictor.training import FitConfig, fit_op_stage, spread_rows

RESULTS = Path(__file__).resolve().parent / "results"


def held_out_gpu(ds_rows: pd.DataFrame, ds, gpu: str, config: FitConfig, max_rows: int | None) -> pd.DataFrame:
    """Predictions of one GPU's op rows by a model fitted without that GPU, from its catalog descriptor."""
    train = spread_rows(ds_rows[ds_rows["hardware"] != gpu], max_rows)
    model = fit_op_stage(subset(ds, train, ds.steps.iloc[:0], sorted(train["hardware"].unique())), config)
    test = ds_rows[ds_rows["hardware"] == gpu]
    d = get_hardware(gpu)
    view = model.view(d)
    f = featurize(test, view, ROW_PRECISION)
    q = op_quantiles(model, f, view.row_overheads_s(f), model.offsets(d))[0]
    out = pd.DataFrame({"hardware": gpu, "family": test["family"].to_numpy(), "op": test["op"].to_numpy(),
                        "measured": test["time_s"].to_numpy(float), "flopcast": q[:, 1],
                        "roofline": f["roofline_s"].to_numpy() + view.row_overheads_s(f)})
    others = train[train["hardware"].isin([h for h in ds.descriptors if ds.descriptors[h]["kind"] == "gpu"])]
    eff = {}
    for family, g in others.groupby("family"):
        ratios = []
        for h, gh in g.groupby("hardware"):
            view_h = model.view(get_hardware(h))
            fh = featurize(gh, view_h, ROW_PRECISION)
            roof = fh["roofline_s"].to_numpy() + view_h.row_overheads_s(fh)
            ratios.append(np.median(gh["time_s"].to_numpy(float) / roof))
        eff[family] = float(np.median(ratios))
    out["calibrated_roofline"] = out["roofline"] * out["family"].map(eff).fillna(1.0).to_numpy()
    return out


def error_rows(p: pd.DataFrame) -> pd.DataFrame:
    """Median / mean APE and share within 25 % per GPU (and per GPU and family) for each predictor."""
    rows = []
    groups = [(h, "all", g) for h, g in p.groupby("hardware")] + [
        (h, f, g) for (h, f), g in p.groupby(["hardware", "family"])]
    for h, fam, g in groups:
        row = {"gpu": h, "family": fam, "n": len(g)}
        for col in ("flopcast", "roofline", "calibrated_roofline"):
            e = error_metrics(g[col], g["measured"])
            row[f"{col} median %"] = round(e["median_ape_pct"], 1)
            if col == "flopcast":
                row["flopcast mean %"] = round(e["mean_ape_pct"], 1)
                row["flopcast within 25 %"] = round(e["within_25_pct"])
                row["flopcast pred/meas"] = round(float((g[col] / g["measured"]).median()), 2)
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", default=[], help="hardware folders (default datasets/)")
    parser.add_argument("--gpus", default="", help="GPUs to hold out, comma-separated (default: every GPU)")
    parser.add_argument("--max-rows", type=int, default=3000, help="training rows per (device, family); 0: all")
    parser.add_argument("--n-estimators", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ds = load_datasets(args.data or None)
    rows = op_training_rows(ds.microbench)
    gpus = [g for g in args.gpus.split(",") if g] or sorted(h for h, d in ds.descriptors.items() if d["kind"] == "gpu")
    config = FitConfig(n_estimators=args.n_estimators, progress=False, op_model_params={"random_state": args.seed})
    preds = []
    for gpu in gpus:
        preds.append(held_out_gpu(rows, ds, gpu, config, args.max_rows or None))
        print(f"  {gpu}: {len(preds[-1])} rows predicted", file=sys.stderr)
    p = pd.concat(preds)
    about = (f"leave-one-GPU-out, {args.n_estimators} rounds, seed {args.seed}, "
             f"<= {args.max_rows} rows per device and family")
    write_result(RESULTS, "gpu_transfer", "Op time on unseen GPUs (`python experiments/gpu_transfer.py`)", about,
                 error_rows(p))
    return 0


if __name__ == "__main__":
    sys.exit(main())
