"""flopcast on NeuSight's end-to-end benchmark, beside NeuSight, Habitat, roofline and Li et al. on the same rows.

NeuSight (ASPLOS'25) published measured fp32 latencies of BERT-large, GPT-2 large, GPT-3 XL / 2.7B and OPT-1.3B
steps on NVIDIA GPUs (``scripts/asplos/summary/summary.csv``: labels and every predictor's estimate per row).
Each row's model is rebuilt as NeuSight measured it (:mod:`flopcast.calibration.zoo.published`: its configs,
eager attention, fp32 with TF32 off; train = forward + backward of a cross-entropy loss, no optimizer), analysed
on shape-only tensors
and priced by :func:`flopcast.predictor.predict.predict_on`, the function behind ``flopcast predict``, on the
catalog descriptor of the GPU (what ``--hardware NAME`` resolves to).

The protocol is NeuSight's, made stricter: the op model trains on our own data and the op rows of the GPUs
NeuSight trained on (P4, P100, T4, V100, A100-40GB); its unseen GPUs (H100, A100-80GB, L4) have no op row and
no label in any model that scores them, and are priced from their spec sheets. Step stages learn from our
measured steps and the labels of the trained GPUs, leaving out every label of the scored row's model (on all
GPUs): no label of a model ever predicts that model.

Each row scores the median of the predictions of three op-model seeds (``--seeds``): a GPU priced from its spec
sheet moves by several percent with the seed.

Run: ``python experiments/neusight_benchmark.py --neusight PATH [--data DIR ...] [--seeds 0 1 2]`` (PATH: a NeuSight
checkout, for ``summary.csv``; the labels themselves are read from the imported ``datasets/neusight-*``). Prints the
table and writes ``experiments/results/neusight_benchmark.{md,csv,png}`` (the table) and
``neusight_benchmark_rows.csv`` (every row).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from evaluate import stage_copy, subset
from result_tables import write_result

from flopcast.calibration.catalog import get_hardware
from flopcast.datasets.import_neusight import GPUS, LABELS
from flopcast.datasets.loader import load_datasets, trusted_rows
from flopcast.predictor.analysis_cache import zoo_step
from flopcast.predictor.metrics import error_metrics
from flopcast.predictor.predict import predict_on
from flopcast.predictor.training import FitConfig, composed_steps, descriptors_of, fit_op_stage, fit_step_stages

RESULTS = Path(__file__).resolve().parent / "results"
SUMMARY = Path("scripts/asplos/summary/summary.csv")
TRAINED_GPUS = ("p4", "p100-pcie-16gb", "t4", "v100-pcie-32gb", "a100-pcie-40gb")
"""The GPUs NeuSight trained its predictor on; the rest of its GPUs are unseen."""
BENCHMARK_GPUS = ("h100-sxm", "a100-pcie-80gb", "l4", "a100-pcie-40gb", "v100-pcie-32gb", "t4")
"""The NVIDIA GPUs of the benchmark (P4 and P100 have labels too, few: reported, not in the headline)."""
PEERS = {"neusight": "NeuSight", "habitat": "Habitat", "roofline": "roofline", "micro": "Li et al."}
PRECISION = "fp32-strict"
"""NeuSight measured fp32 with TF32 off (``torch.backends.cudnn.allow_tf32 = False``, matmuls fp32 by default)."""


def benchmark_rows(neusight: Path) -> pd.DataFrame:
    """Single-GPU, unfused NVIDIA rows of NeuSight's summary for the models rebuilt here.

    Raises:
        SystemExit: without the summary file.
    """
    path = neusight / SUMMARY
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such file (--neusight must be a NeuSight checkout)")
    columns = ["model_name", "seqlen", "batch", "device", "mode", "option", "label_all_e2e_latency",
               *(f"{key}_all_e2e_latency" for key in PEERS)]
    s = pd.read_csv(path, usecols=columns)
    folder_to_gpu = {folder: name for name, folder in GPUS.values()}
    s["hardware"] = s["device"].map(folder_to_gpu)
    s = s[s["hardware"].notna() & s["option"].isna() & s["model_name"].isin(list(LABELS))]
    s = s[~s["device"].str.startswith("AMD")]
    out = pd.DataFrame({
        "upstream": s["model_name"], "hardware": s["hardware"],
        "mode": s["mode"].map({"inf": "infer", "train": "train"}),
        "batch_size": s["batch"].astype(int), "seq": s["seqlen"].astype(int),
        "measured": s["label_all_e2e_latency"].astype(float) / 1e3,
        **{name: s[f"{key}_all_e2e_latency"].astype(float) / 1e3 for key, name in PEERS.items()}})
    out["model"] = [LABELS[u]["train" if m == "train" else "inf"] for u, m in zip(out["upstream"], out["mode"],
                                                                                    strict=True)]
    out["unseen"] = ~out["hardware"].isin(TRAINED_GPUS)
    return out.reset_index(drop=True)


def scored(rows: pd.DataFrame, data: list[Path], config: FitConfig) -> pd.DataFrame:
    """Every row predicted by a model that never saw its GPU's data (if unseen) nor any label of its model."""
    ds = load_datasets(data or None)
    unseen = sorted(set(rows.loc[rows["unseen"], "hardware"]))
    train_hw = [h for h in ds.hardware if h not in unseen]
    print(f"op stage on {len(train_hw)} devices ({', '.join(train_hw)}); unseen: {', '.join(unseen)}", file=sys.stderr)
    train = subset(ds, hardware=train_hw)
    base = fit_op_stage(train, config)
    for h in sorted(set(rows["hardware"])):
        offsets = base.offsets(get_hardware(h))
        print(f"  {h}: op-model offsets compute {offsets[0]:+.3f}, memory {offsets[1]:+.3f} (ln; "
              f"{'its own' if base.trained_name(get_hardware(h)) else 'from its spec sheet'})", file=sys.stderr)
    steps, frame = composed_steps(base, trusted_rows(train.steps), descriptors_of(train), zoo_step)
    out = []
    for model in sorted(rows["model"].unique()):
        upstream = next(u for u, zoo in LABELS.items() if model in zoo.values())
        held = steps["model"].isin(set(LABELS[upstream].values())).to_numpy()
        m = stage_copy(base)
        fit_step_stages(m, steps[~held].reset_index(drop=True), frame[~held].reset_index(drop=True))
        for i, r in rows[rows["model"] == model].iterrows():
            loss = {"loss": "cross-entropy"} if r["mode"] == "train" else {}
            step = zoo_step(model, int(r["batch_size"]), str(r["mode"]), PRECISION, "none", "cuda", **loss)
            p = predict_on(m, step, get_hardware(str(r["hardware"])), PRECISION, str(r["mode"]))
            out.append({"index": i, "flopcast": p.step_time_s[1], "p10": p.step_time_s[0], "p90": p.step_time_s[2],
                        "calibrated": p.calibrated, "ops_s": p.composed.ops_s})
        print(f"  {model}: {int((rows['model'] == model).sum())} rows scored (step stages without "
              f"{int(held.sum())} of its labels)", file=sys.stderr)
    pred = pd.DataFrame(out).set_index("index")
    return rows.join(pred)


PREDICTED = ("flopcast", "p10", "p90", "ops_s")
"""Columns of :func:`scored` that an op-model seed changes."""


def median_over_seeds(runs: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of one :func:`scored` run with each predicted column the median over ``runs`` (one per seed).

    The op model's seed moves a GPU priced from its spec sheet by several percent (its trees for the few GPUs
    of its generation are fitted on few rows): one seed's table would report that draw, not the predictor.
    """
    out = runs[0].copy()
    for col in PREDICTED:
        out[col] = np.median(np.column_stack([r[col].to_numpy(float) for r in runs]), axis=1)
    out["calibrated"] = np.all(np.column_stack([r["calibrated"].to_numpy(bool) for r in runs]), axis=1)
    return out


def error_table(p: pd.DataFrame) -> pd.DataFrame:
    """Median / mean APE and shares within 10 and 25 % per GPU and mode, for flopcast and each peer."""
    groups = [("all (6 GPUs)", p[p["hardware"].isin(BENCHMARK_GPUS)]),
              ("unseen GPUs", p[p["unseen"]]), ("trained GPUs", p[~p["unseen"] & p["hardware"].isin(BENCHMARK_GPUS)])]
    groups += [(f"{h} {mode}", g) for (h, mode), g in p.groupby(["hardware", "mode"], sort=False)]
    rows = []
    for name, g in groups:
        row = {"rows": name, "n": len(g)}
        for col in ("flopcast", *PEERS.values()):
            e = error_metrics(g[col], g["measured"])  # rows without this predictor's figure left out
            row[f"{col} median %"] = round(e["median_ape_pct"], 1) if e["n"] else np.nan
            row[f"{col} mean %"] = round(e["mean_ape_pct"], 1) if e["n"] else np.nan
            if col == "flopcast":
                row["flopcast within 10 %"] = round(e["within_10_pct"])
                row["flopcast within 25 %"] = round(e["within_25_pct"])
                row["flopcast pred/meas"] = round(float((g[col] / g["measured"]).median()), 2)
        rows.append(row)
    return pd.DataFrame(rows)


def plot(p: pd.DataFrame, path: Path) -> None:
    """Predicted vs measured step time, log-log, flopcast and NeuSight, unseen GPUs marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    for col, marker in (("NeuSight", "x"), ("flopcast", "o")):
        for unseen, alpha in ((False, 0.5), (True, 1.0)):
            g = p[p["unseen"] == unseen]
            ax.scatter(g["measured"], g[col], marker=marker, alpha=alpha, s=18,
                       label=f"{col}, {'unseen' if unseen else 'trained'} GPUs")
    lo, hi = p["measured"].min() / 2, p["measured"].max() * 2
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="measured step time (s)", ylabel="predicted step time (s)",
           title="NeuSight's end-to-end benchmark (NVIDIA, fp32)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neusight", type=Path, required=True, help="a NeuSight checkout (for summary.csv)")
    parser.add_argument("--data", type=Path, action="append", default=[], help="hardware folders (default datasets/)")
    parser.add_argument("--n-estimators", type=int, default=300, help="boosting rounds (300, as shipped)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the op time model; each row scores the median of their predictions (0 1 2)")
    parser.add_argument("--max-rows", type=int, default=0,
                        help="op rows per (device, family) for the op model (0: all; faster when developing)")
    args = parser.parse_args()
    rows = benchmark_rows(args.neusight)
    p = median_over_seeds([scored(rows, args.data, FitConfig(
        n_estimators=args.n_estimators, progress=False, op_model_params={"random_state": seed},
        max_rows_per_family=args.max_rows or None)) for seed in args.seeds])
    about = (f"{len(p)} rows ({int(p['hardware'].isin(BENCHMARK_GPUS).sum())} on the 6 benchmark GPUs), "
             f"{args.n_estimators} boosting rounds, median of op-model seeds {', '.join(map(str, args.seeds))}, "
             f"{args.max_rows or 'all'} op rows per device and family")
    write_result(RESULTS, "neusight_benchmark", "NeuSight's end-to-end benchmark "
                 "(`python experiments/neusight_benchmark.py`)", about, error_table(p),
                 lambda v: "" if isinstance(v, float) and np.isnan(v) else str(v))
    p.to_csv(RESULTS / "neusight_benchmark_rows.csv", index=False)
    plot(p, RESULTS / "neusight_benchmark.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
