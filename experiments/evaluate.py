"""Accuracy of the cost model on measured data, split by model family and by hardware (never random rows only).

Run: ``python experiments/evaluate.py [--data DIR ...] [--n-estimators 300] [--seed 0] [--quick DIR ...]``.
Prints the tables and writes ``experiments/results/eval_summary.{csv,md}``, ``eval_steps.csv`` (every held-out
step prediction), ``eval_ops.csv`` and ``eval_step_time.png``.

- Op level: op time on microbenchmark rows, 5 folds grouped by microbenchmark family (the held-out family's
  ops are never seen) and, for reference, 5 random folds; leave-one-hardware-out when there are several.
- Step level: leave-one-family-out on the measured zoo steps (op model from microbenchmarks only; the step
  stages refitted without the family), for step time, energy and peak memory; leave-one-hardware-out.
- Quick-calibrated CPU (``--quick DIR``, repeatable: a ``flopcast calibrate --quick`` folder of a released
  CPU, its device named as released): that CPU predicted as ``predict --calibration DIR`` does with a model
  trained without it, scored on its other released steps.
- Baselines in the same tables: FLOPs / (peak x 0.35), the pure roofline sum, and a linear regression on
  FLOPs fitted on the training split (energy baselines: TDP x those times; memory: the raw static estimate).
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from result_tables import markdown

from flopcast.datasets.loader import Dataset, load_datasets, load_folder, trusted_rows
from flopcast.predictor.analysis_cache import zoo_step
from flopcast.predictor.calibrated import calibrate_model
from flopcast.predictor.compose import op_quantiles
from flopcast.predictor.featurize import featurize, peak_key
from flopcast.predictor.memory import MemoryModel
from flopcast.predictor.metrics import error_metrics
from flopcast.predictor.model import CostModel
from flopcast.predictor.op_rows import ROW_PRECISION, op_training_rows
from flopcast.predictor.power import energy_with_time_spread, power_bounded_j, tdp_w
from flopcast.predictor.step_model import StepEnergyModel, StepTimeModel
from flopcast.predictor.training import (
    FitConfig,
    composed_steps,
    descriptors_of,
    fit_op_stage,
    fit_step_stages,
    with_energy_base,
)

RESULTS = Path(__file__).resolve().parent / "results"
PRECISION_DTYPE = {"fp32": "float32", "fp32-strict": "float32", "tf32": "float32", "bf16": "bfloat16",
                   "fp16": "float16"}
SPEC_EFFICIENCY = 0.35
FOLDS = 5


def subset(ds: Dataset, microbench: pd.DataFrame | None = None, steps: pd.DataFrame | None = None,
           hardware: list[str] | None = None) -> Dataset:
    """A dataset restricted to some rows and devices."""
    keep = hardware or ds.hardware
    mb = ds.microbench if microbench is None else microbench
    st = ds.steps if steps is None else steps
    return Dataset(mb[mb["hardware"].isin(keep)].reset_index(drop=True), st[st["hardware"].isin(keep)].reset_index(
        drop=True), {k: v for k, v in ds.descriptors.items() if k in keep}, ds.checksums, ds.meta, ds.version)


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a + b x`` with ``a, b >= 0`` (intercept-only or slope-only where one goes negative)."""
    if len(x) < 2:
        return (float(np.mean(y)) if len(y) else 0.0), 0.0
    b, a = np.polyfit(x, y, 1)
    if a < 0:
        return 0.0, float(max(np.dot(x, y) / max(np.dot(x, x), 1e-30), 0.0))
    if b < 0:
        return float(np.mean(y)), 0.0
    return float(a), float(b)


# ---------------------------------------------------------------------------------------------- op level


def op_predictions(model: CostModel, ds: Dataset, rows: pd.DataFrame) -> pd.DataFrame:
    """Held-out op rows with the model's and the baselines' time predictions."""
    out = []
    for hw, g in rows.groupby("hardware"):
        d = descriptors_of(ds)[hw]
        f = featurize(g, model.view(d), ROW_PRECISION)
        pred = op_quantiles(model, f, model.view(d).launch_overhead_s, model.offsets(d))[0]  # unseen: roofline
        peak = np.array([d.peak_for(k) for k in f["peak_key"]])
        out.append(pd.DataFrame({"hardware": hw, "family": g["family"].to_numpy(), "measured": g["time_s"].to_numpy(),
                                 "flopcast": pred[:, 1], "p10": pred[:, 0], "p90": pred[:, 2],
                                 "flops_035": g["flops"].to_numpy(float) / (peak * SPEC_EFFICIENCY),
                                 "roofline": f["roofline_s"].to_numpy(), "flops": g["flops"].to_numpy(float)},
                                index=g.index))
    return pd.concat(out) if out else pd.DataFrame()


def op_level(ds: Dataset, config: FitConfig) -> tuple[list[dict], pd.DataFrame]:
    """Op-time metrics under family-grouped folds, random folds and leave-one-hardware-out."""
    mb = op_training_rows(ds.microbench)
    families = sorted(mb["family"].unique())
    rng = np.random.default_rng(0)
    family_fold = {f: i % FOLDS for i, f in enumerate(rng.permutation(families))}
    splits = {"family-out (5 folds)": mb["family"].map(family_fold).to_numpy(),
              "random rows (5 folds)": rng.integers(0, FOLDS, len(mb))}
    if len(ds.hardware) > 1:
        splits["hardware-out"] = mb["hardware"].map({h: i for i, h in enumerate(ds.hardware)}).to_numpy()
    rows, all_preds = [], []
    for split, fold in splits.items():
        preds = []
        for k in np.unique(fold):
            train, test = mb[fold != k], mb[fold == k]
            hw = sorted(train["hardware"].unique())
            model = fit_op_stage(subset(ds, train, ds.steps.iloc[:0], hw), config)
            p = op_predictions(model, ds, test)
            for h, g in train.groupby("hardware"):
                a, b = linear_fit(g["flops"].to_numpy(float), g["time_s"].to_numpy(float))
                sel = p["hardware"] == h
                p.loc[sel, "linreg_flops"] = a + b * p.loc[sel, "flops"]
            preds.append(p)
            print(f"  op level, {split}: fold {k} done ({len(test)} rows)", file=sys.stderr)
        p = pd.concat(preds).assign(split=split)
        all_preds.append(p)
        rows += metric_rows(p, "op", split, "time", ("flopcast", "flops_035", "roofline", "linreg_flops"))
    return rows, pd.concat(all_preds)


def metric_rows(p: pd.DataFrame, level: str, split: str, quantity: str, predictors: tuple[str, ...]) -> list[dict]:
    """One metrics row per hardware and predictor (plus ``all`` across hardware)."""
    out = []
    groups = [("all", p)] + ([(h, g) for h, g in p.groupby("hardware")] if p["hardware"].nunique() > 1 else [])
    for hw, g in groups:
        for name in predictors:
            if name in g and g[name].notna().any():
                bounds = [g[c].to_numpy(float) for c in ("p10", "p90")] if name == "flopcast" and "p10" in g else []
                out.append({"level": level, "split": split, "hardware": hw, "quantity": quantity, "predictor": name,
                            **error_metrics(g[name].to_numpy(float), g["measured"].to_numpy(float), *bounds)})
    return out


# -------------------------------------------------------------------------------------------- step level


def stage_copy(model: CostModel) -> CostModel:
    """The model with fresh (unfitted) step stages, sharing the op models."""
    out = copy.copy(model)
    out.step_time, out.step_energy, out.memory = StepTimeModel(), StepEnergyModel(), MemoryModel()
    out.hardware = copy.deepcopy(model.hardware)
    return out


def step_predictions(model: CostModel, ds: Dataset, train: pd.DataFrame, test: pd.DataFrame,
                     frame_test: pd.DataFrame) -> pd.DataFrame:
    """Held-out steps with predictions of the model (stages fitted on ``train``) and the baselines."""
    descs = descriptors_of(ds)
    time = model.step_time.predict(frame_test)
    energy = energy_with_time_spread(model.step_energy.predict(with_energy_base(model, frame_test)), time)
    energy = np.array([power_bounded_j(e, t, descs[h]) for e, t, h in zip(energy, time, test["hardware"], strict=True)
                       ]).reshape(-1, 3)
    out = test[["hardware", "model", "family", "batch_size", "mode", "precision", "flops", "time_s", "energy_j",
                "energy_source", "measured_peak_memory_bytes", "est_peak_memory_bytes"]].copy()
    out["time_p10"], out["time_p50"], out["time_p90"] = time[:, 0], time[:, 1], time[:, 2]
    out["energy_p10"], out["energy_p50"], out["energy_p90"] = energy[:, 0], energy[:, 1], energy[:, 2]
    out["memory_pred"] = [model.memory.predict(h, descs[h].kind, e) for h, e in
                          zip(test["hardware"], test["est_peak_memory_bytes"], strict=True)]
    out["roofline"] = frame_test["roofline_s"].to_numpy()
    peak = [descs[h].peak_for(peak_key(PRECISION_DTYPE[p], "matmul", p, descs[h].kind))
            for h, p in zip(test["hardware"], test["precision"], strict=True)]
    out["flops_035"] = test["flops"].to_numpy(float) / (np.array(peak) * SPEC_EFFICIENCY)
    tdp = np.array([tdp_w(descs[h]) for h in test["hardware"]])
    out["energy_flops_035"], out["energy_roofline"] = out["flops_035"] * tdp, out["roofline"] * tdp
    for h, g in train.groupby("hardware"):
        sel = out["hardware"] == h
        for target, col in (("time_s", "linreg_flops"), ("energy_j", "energy_linreg_flops")):
            ok = g[target].astype(float) > 0
            a, b = linear_fit(g.loc[ok, "flops"].to_numpy(float), g.loc[ok, target].to_numpy(float))
            out.loc[sel, col] = a + b * out.loc[sel, "flops"].astype(float)
    return out


def step_level(ds: Dataset, model: CostModel, progress: bool, quick: Sequence[Path] = ()
               ) -> tuple[list[dict], pd.DataFrame]:
    """Leave-one-family-out (and leave-one-hardware-out) step metrics for time, energy and peak memory."""
    steps, frame = composed_steps(model, trusted_rows(ds.steps), descriptors_of(ds), zoo_step, progress)
    preds = []
    for family in sorted(steps["family"].unique()):
        held = (steps["family"] == family).to_numpy()
        m = stage_copy(model)
        fit_step_stages(m, steps[~held].reset_index(drop=True), frame[~held].reset_index(drop=True))
        preds.append(step_predictions(m, ds, steps[~held], steps[held], frame[held]).assign(split="family-out"))
    if len(ds.hardware) > 1:
        preds += hardware_out_steps(ds, steps)
    for folder in quick:
        preds += quick_calibrated_steps(ds, folder)
    p = pd.concat(preds) if preds else pd.DataFrame()
    rows = []
    for split, g in p.groupby("split"):
        rows += metric_rows(g.assign(measured=g["time_s"], flopcast=g["time_p50"], p10=g["time_p10"],
                                     p90=g["time_p90"]), "step", split, "time",
                            ("flopcast", "flops_035", "roofline", "linreg_flops"))
        e = g[g["energy_j"].astype(float) > 0]
        rows += metric_rows(e.assign(measured=e["energy_j"], flopcast=e["energy_p50"], p10=e["energy_p10"],
                                     p90=e["energy_p90"], flops_035=e["energy_flops_035"],
                                     roofline=e["energy_roofline"], linreg_flops=e["energy_linreg_flops"]),
                            "step", split, "energy", ("flopcast", "flops_035", "roofline", "linreg_flops"))
        rows += metric_rows(g.assign(measured=g["measured_peak_memory_bytes"], flopcast=g["memory_pred"],
                                     static_estimate=g["est_peak_memory_bytes"]),
                            "step", split, "peak memory", ("flopcast", "static_estimate"))
    return rows, p


def scored_steps(ds: Dataset, train: Dataset, train_steps: pd.DataFrame, test_steps: pd.DataFrame, hw: str,
                 split: str) -> pd.DataFrame:
    """Predictions for ``test_steps`` of device ``hw`` by a model (op and step stages) fitted on ``train``."""
    m = fit_op_stage(train, FitConfig(n_estimators=150, progress=False))
    kept, frame = composed_steps(m, train_steps, descriptors_of(train), zoo_step)
    fit_step_stages(m, kept, frame)
    test, frame_test = composed_steps(m, test_steps, {hw: descriptors_of(ds)[hw]}, zoo_step)
    m.hardware.setdefault(hw, {"descriptor": ds.descriptors[hw]})  # untrained: for the energy base only
    return step_predictions(m, ds, kept, test, frame_test).assign(split=split)


def hardware_out_steps(ds: Dataset, steps: pd.DataFrame) -> list[pd.DataFrame]:
    """Each device predicted by a model (op and step stages) trained without it."""
    out = []
    for hw in ds.hardware:
        others = [h for h in ds.hardware if h != hw]
        out.append(scored_steps(ds, subset(ds, hardware=others), steps[steps["hardware"].isin(others)],
                                steps[steps["hardware"] == hw], hw, "hardware-out"))
    return out


def quick_calibrated_steps(ds: Dataset, folder: Path) -> list[pd.DataFrame]:
    """A device known only from a ``flopcast calibrate --quick`` campaign, scored on its full released steps.

    Exactly the new-machine path (``calibrate --quick`` then ``predict --hardware local --calibration``): a
    model trained on every other device's data, then :func:`calibrate_model` with the quick folder and that
    training data (op models refitted with the quick op rows; the device's step stages borrow the kind's
    slopes and fit its own levels). Scored on the released steps of the device that the quick campaign did
    not measure (same model, batch, mode and precision left out).
    """
    quick = load_folder(folder)
    hw = next(iter(quick.descriptors))
    if hw not in ds.hardware:
        raise SystemExit(f"--quick: {hw} has no released steps to score against")
    others = subset(ds, hardware=[h for h in ds.hardware if h != hw])
    m = fit_op_stage(others, FitConfig(n_estimators=150, progress=False))
    kept, frame = composed_steps(m, trusted_rows(others.steps), descriptors_of(others), zoo_step)
    fit_step_stages(m, kept, frame)
    m, d = calibrate_model(m, folder, training=others, cache=False)
    config = ["model", "batch_size", "mode", "precision"]
    seen = set(map(tuple, quick.steps[config].astype(str).to_numpy()))
    full = trusted_rows(ds.steps)
    full = full[(full["hardware"] == hw) & ~full[config].astype(str).apply(tuple, axis=1).isin(seen)]
    test, frame_test = composed_steps(m, full, {hw: d}, zoo_step)
    train = pd.concat([kept, trusted_rows(quick.steps)], ignore_index=True)
    scored = step_predictions(m, ds, train, test, frame_test).assign(split="quick-calibrated")
    print(f"  quick-calibrated {hw}: {len(quick.microbench)} op rows, {len(quick.steps)} steps; "
          f"scored on {len(scored)} other steps")
    return [scored]


# ------------------------------------------------------------------------------------------------ output


def previous_op_level() -> tuple[list[dict], pd.DataFrame]:
    """The op-level summary rows and op predictions of the last full run (for ``--skip-ops``), if written."""
    summary, ops = RESULTS / "eval_summary.csv", RESULTS / "eval_ops.csv"
    if not summary.is_file() or not ops.is_file():
        return [], pd.DataFrame()
    rows = pd.read_csv(summary)
    return rows[rows["level"] == "op"].to_dict("records"), pd.read_csv(ops, index_col=0)


def write(rows: list[dict], steps: pd.DataFrame, ops: pd.DataFrame, about: str) -> pd.DataFrame:
    """Write the CSV/Markdown tables and the plot; returns the summary table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(RESULTS / "eval_summary.csv", index=False)
    steps.to_csv(RESULTS / "eval_steps.csv", index=False)
    ops.to_csv(RESULTS / "eval_ops.csv")
    shown = table.round({"median_ape_pct": 1, "mean_ape_pct": 1, "within_10_pct": 0, "within_25_pct": 0,
                         "spearman": 2, "coverage_pct": 0})
    (RESULTS / "eval_summary.md").write_text(
        f"# Cost-model accuracy (`python experiments/evaluate.py`)\n\n{about}\n\n" + markdown(shown) + "\n")
    plot(steps)
    return shown


def plot(steps: pd.DataFrame) -> None:
    """Predicted vs measured step time (family-out), flopcast and the FLOPs/(peak x 0.35) baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = steps[steps["split"] == "family-out"] if len(steps) else steps
    fig, ax = plt.subplots(figsize=(6, 6))
    if len(s):
        ax.scatter(s["time_s"], s["flops_035"], s=10, alpha=0.4, label="FLOPs / (peak x 0.35)")
        ax.errorbar(s["time_s"], s["time_p50"], yerr=[s["time_p50"] - s["time_p10"], s["time_p90"] - s["time_p50"]],
                    fmt="o", ms=3, alpha=0.6, label="flopcast (10-90 %)")
        lo, hi = s["time_s"].min() / 3, s["time_s"].max() * 3
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="measured step time (s)", ylabel="predicted step time (s)",
           title="step time, leave-one-family-out")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "eval_step_time.png", dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", default=[], help="hardware folders (default datasets/)")
    parser.add_argument("--n-estimators", type=int, default=300, help="boosting rounds per fold (300, as shipped)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the op time model of the op-level and family-out splits (0, as shipped): "
                        "run several to see how much the medians move with it")
    parser.add_argument("--skip-ops", action="store_true",
                        help="step level only (the op-level rows and eval_ops.csv of the last full run are kept)")
    parser.add_argument("--quick", type=Path, action="append", default=[],
                        help="a `flopcast calibrate --quick` folder of a released CPU (repeatable): adds the "
                        "quick-calibrated split")
    args = parser.parse_args()
    ds = load_datasets(args.data or None)
    about = (f"dataset {ds.version}: {', '.join(ds.hardware)}; {len(ds.microbench)} op rows, {len(ds.steps)} steps "
             f"(from {', '.join(map(str, args.data)) or 'datasets/'}); {args.n_estimators} boosting rounds, "
             f"seed {args.seed}")
    print(about)
    config = FitConfig(n_estimators=args.n_estimators, progress=False, op_model_params={"random_state": args.seed})
    op_rows, ops = previous_op_level() if args.skip_ops else op_level(ds, config)
    step_rows, steps = step_level(ds, fit_op_stage(ds, config), progress=True, quick=args.quick)
    shown = write(op_rows + step_rows, steps, ops, about)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(shown.to_string(index=False))
    print(f"wrote {RESULTS}/eval_summary.md, eval_steps.csv, eval_ops.csv, eval_step_time.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
