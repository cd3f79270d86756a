"""Accuracy of the cost model on measured data, scored through the function ``flopcast predict`` runs.

Run: ``python experiments/evaluate.py [--data DIR ...] [--seeds 0 1 2] [--max-rows-per-family 3000]
[--quick DIR ...] [--skip-ops] [--final]``. Prints the tables and writes ``experiments/results/eval_summary.{csv,md}``,
``eval_steps.csv`` (every held-out step prediction of every seed), ``eval_step_time.png`` and, not committed (tens of
MB), ``eval_ops.parquet`` (every op prediction);
``--final`` writes ``eval_final.{csv,md}`` and ``eval_final_steps.csv`` instead.

Every step is priced by :func:`flopcast.predictor.predict.predict_on`, what ``flopcast predict`` runs per device
(composition, step stages, the energy base at the predicted time, power bounds, and ``widen()`` for a device
the model has no data of), on the step's analysis and a descriptor as a user would pass it.

- The final test split (``test_split.json``: whole zoo families and one device's steps) is dropped before
  anything else, with the op rows derived from those families; only ``--final`` scores it, with models trained
  on everything else. Develop on the rest.
- Op level (first seed): op time on microbenchmark rows, 5 folds grouped by microbenchmark family and, for
  reference, 5 random folds; leave-one-device-out over our own measured devices (GPUs without rows of their
  own: ``gpu_transfer.py``).
- Step level, for each seed of the op model:
  family-out: each zoo family's steps predicted with step stages fitted without it, and an op model trained
  without the microbenchmark rows derived from it (the leak rule, ``splits.py``: ``--ops-from`` shapes of its
  models, sampler values widened for them);
  hardware-out: each device with steps (NeuSight's GPUs in three groups: its unseen GPUs, the NVIDIA GPUs it
  trained on, the AMD GPUs) predicted by a model trained without any of its rows, from two descriptors reported
  apart: ``spec only`` (its catalog entry, else a probed CPU's descriptor without measured fields: what
  ``predict --hardware NAME`` and ``hardware probe`` give) and ``measured ceilings`` (the released descriptor,
  what ``hardware probe --measure`` gives; only where it holds measurements);
  quick-calibrated (``--quick DIR``, a ``flopcast calibrate --quick`` folder of a released CPU): that CPU
  as ``predict --calibration DIR`` prices it, refitted from the hardware-out model, scored on its released steps
  the quick campaign did not measure.
- Baselines in the same tables: FLOPs / (peak x 0.35), the spec roofline sum, the calibrated roofline (measured
  ceilings + the measured launch overhead per op), and per-device linear regressions on FLOPs and on FLOPs and op
  count (fitted on the training steps); energy baselines: TDP x those times and the regressions on energy.
  Energy is scored apart by source: measured (NVML, RAPL) and estimated (CodeCarbon's TDP model).
- Each figure is the median over the seeds, with the seeds' range beside it. Op models are refitted on at most
  ``--max-rows-per-family`` rows per (device, microbenchmark family), evenly over their FLOPs.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from result_tables import markdown
from splits import FrozenSplit, derived_models, development, final_test_steps, model_families, subset

from flopcast.calibration.catalog import UnknownHardwareError, get_hardware
from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.zoo_steps import step_option_kwargs
from flopcast.datasets.loader import Dataset, load_datasets, load_folder, trusted_rows
from flopcast.predictor.analysis_cache import StepAnalysis, zoo_step
from flopcast.predictor.calibrated import calibrate_model
from flopcast.predictor.compose import op_quantiles
from flopcast.predictor.featurize import HardwareView, analysis_device, featurize, is_free, peak_key
from flopcast.predictor.memory import MemoryModel
from flopcast.predictor.metrics import error_metrics
from flopcast.predictor.model import CostModel
from flopcast.predictor.op_rows import ROW_PRECISION, op_training_rows
from flopcast.predictor.power import MEASURED_POWER_SOURCES, tdp_w
from flopcast.predictor.predict import Prediction, predict_on
from flopcast.predictor.step_model import StepEnergyModel, StepTimeModel
from flopcast.predictor.training import (
    FitConfig,
    composed_steps,
    descriptors_of,
    fit_cost_model,
    fit_op_stage,
    fit_step_stages,
)

__all__ = ["stage_copy", "subset"]  # shared with neusight_benchmark.py and gpu_transfer.py

RESULTS = Path(__file__).resolve().parent / "results"
PRECISION_DTYPE = {"fp32": "float32", "fp32-strict": "float32", "tf32": "float32", "bf16": "bfloat16",
                   "fp16": "float16"}
SPEC_EFFICIENCY = 0.35
FOLDS = 5
HARDWARE_OUT_GROUPS = (("h100-sxm", "a100-pcie-80gb", "l4"),
                       ("p4", "p100-pcie-16gb", "t4", "v100-pcie-32gb", "a100-pcie-40gb"),
                       ("mi100", "mi210", "mi250"))
"""Devices held out together (each trained without any row of the group): NeuSight's GPUs, which have few labels
each, in the groups of its own protocol (the GPUs it never trained on, those it trained on, AMD's), so the split
costs three fits instead of eleven. Every other device is held out alone."""
TIME_BASELINES = ("flops_035", "roofline", "calibrated_roofline", "linreg_flops", "linreg_flops_ops")
ENERGY_QUANTITIES = {"energy, measured (NVML/RAPL)": MEASURED_POWER_SOURCES,
                     "energy, estimated (CodeCarbon TDP)": ("codecarbon-tdp",)}
"""Energy scored apart by where the measured value comes from."""
STEP_KEYS = ["hardware", "model", "family", "batch_size", "mode", "precision", "time_s", "energy_j", "energy_source",
             "measured_peak_memory_bytes"]


@dataclass(frozen=True)
class EvalConfig:
    """Everything ``evaluate.py`` needs.

    Attributes:
        data: hardware folders (empty: the released ``datasets/``).
        seeds: seeds of the op time model; each step-level figure is their median, with their range.
        n_estimators: boosting rounds of the op time model (300, as shipped).
        max_rows_per_family: op rows kept per (device, microbenchmark family) in each refit (``None``: all).
        quick: ``calibrate --quick`` folders of released CPUs (the quick-calibrated split).
        skip_ops: step level only (the op-level rows of the last run are kept).
        final: score the frozen final test split instead of developing on the rest.
        split_file: the frozen final test split.
        out: folder of the tables.
    """

    data: tuple[Path, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    n_estimators: int = 300
    max_rows_per_family: int | None = 3000
    quick: tuple[Path, ...] = ()
    skip_ops: bool = False
    final: bool = False
    split_file: Path = Path(__file__).resolve().parent / "test_split.json"
    out: Path = RESULTS

    def fit_config(self, seed: int) -> FitConfig:
        """The op-model fit of one seed."""
        return FitConfig(n_estimators=self.n_estimators, progress=False, op_model_params={"random_state": seed},
                         max_rows_per_family=self.max_rows_per_family)


def log(message: str) -> None:
    """Progress on stderr, with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def nonnegative_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares ``y = c0 + x @ c[1:]`` with every coefficient >= 0: the best fit over subsets of the columns.

    Args:
        x: predictors, shape ``(n, k)`` (small ``k``: every subset is tried).
        y: targets, shape ``(n,)``.

    Returns:
        ``k + 1`` coefficients, the intercept first (zeros without rows).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    z = np.column_stack([np.ones(len(y)), x[:, None] if x.ndim == 1 else x])
    best, best_err = np.zeros(z.shape[1]), np.inf
    for size in range(1, z.shape[1] + 1):
        for cols in map(list, itertools.combinations(range(z.shape[1]), size)):
            if len(y) < len(cols):
                continue
            c = np.linalg.lstsq(z[:, cols], y, rcond=None)[0]
            err = float(np.sum((z[:, cols] @ c - y) ** 2))
            if (c >= 0).all() and err < best_err:
                best, best_err = np.zeros(z.shape[1]), err
                best[cols] = c
    return best


# ---------------------------------------------------------------------------------------------- op level


def op_predictions(model: CostModel, ds: Dataset, rows: pd.DataFrame) -> pd.DataFrame:
    """Held-out op rows with the model's and the baselines' time predictions."""
    out = []
    for hw, g in rows.groupby("hardware"):
        d = descriptors_of(ds)[hw]
        view = model.view(d)
        f = featurize(g, view, ROW_PRECISION)
        pred = op_quantiles(model, f, view.row_overheads_s(f), model.offsets(d))[0]  # unseen: roofline
        peak = np.array([d.peak_for(k) for k in f["peak_key"]])
        out.append(pd.DataFrame({"hardware": hw, "family": g["family"].to_numpy(), "measured": g["time_s"].to_numpy(),
                                 "flopcast": pred[:, 1], "p10": pred[:, 0], "p90": pred[:, 2],
                                 "flops_035": g["flops"].to_numpy(float) / (peak * SPEC_EFFICIENCY),
                                 "roofline": f["roofline_s"].to_numpy(), "flops": g["flops"].to_numpy(float)},
                                index=g.index))
    return pd.concat(out) if out else pd.DataFrame()


def op_level(ds: Dataset, config: FitConfig) -> tuple[list[dict], pd.DataFrame]:
    """Op-time metrics under family-grouped folds, random folds and leave-one-device-out (our own devices)."""
    mb = op_training_rows(ds.microbench)
    families = sorted(mb["family"].unique())
    rng = np.random.default_rng(0)
    family_fold = {f: i % FOLDS for i, f in enumerate(rng.permutation(families))}
    splits = {"family-out (5 folds)": mb["family"].map(family_fold).to_numpy(),
              "random rows (5 folds)": rng.integers(0, FOLDS, len(mb))}
    own = [h for h in ds.hardware if not ds.meta.get(h, {}).get("external")]
    if len(own) > 1:
        splits["hardware-out"] = mb["hardware"].map({h: i for i, h in enumerate(own)}).fillna(-1).to_numpy(int)
    rows, all_preds = [], []
    for split, fold in splits.items():
        preds = []
        for k in np.unique(fold[fold >= 0]):
            train, test = mb[fold != k], mb[fold == k]
            model = fit_op_stage(subset(ds, train, ds.steps.iloc[:0], sorted(train["hardware"].unique())), config)
            p = op_predictions(model, ds, test)
            for h, g in train.groupby("hardware"):
                c = nonnegative_fit(g[["flops"]].to_numpy(float), g["time_s"].to_numpy(float))
                sel = p["hardware"] == h
                p.loc[sel, "linreg_flops"] = c[0] + c[1] * p.loc[sel, "flops"]
            preds.append(p)
            log(f"op level, {split}: fold {k} done ({len(test)} rows)")
        p = pd.concat(preds).assign(split=split)
        all_preds.append(p)
        rows += metric_rows(p, "op", split, "time", ("flopcast", "flops_035", "roofline", "linreg_flops"))
    return rows, pd.concat(all_preds)


def metric_rows(p: pd.DataFrame, level: str, split: str, quantity: str, predictors: Sequence[str]) -> list[dict]:
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


def analysed(row: pd.Series, kind: str) -> StepAnalysis | None:
    """The zoo analysis of a measured step row on a device kind (``None`` where it cannot be analysed)."""
    try:
        return zoo_step(str(row["model"]), int(row["batch_size"]), str(row["mode"]), str(row["precision"]),
                        str(row["optimizer"]), analysis_device(kind), **step_option_kwargs(row))
    except (KeyError, ValueError, RuntimeError) as e:
        log(f"skipping measured step {row['model']}: {e}")
        return None


def launch_count(step: StepAnalysis) -> int:
    """Ops of a step that launch work (views and metadata ops excluded), as a practitioner counts kernels."""
    return int((~is_free(step.ops)).sum())


def measured_ceilings(d: HardwareDescriptor) -> HardwareDescriptor:
    """``d`` with its measured matmul FLOP/s and copy bandwidth in place of the spec values, where measured."""
    return replace(d, peak_flops_per_s={**d.peak_flops_per_s, **{k: v for k, v in d.measured_peak_flops_per_s.items()
                                                                   if v}},
                   memory_bandwidth_bytes_per_s=d.measured_bandwidth_bytes_per_s or d.memory_bandwidth_bytes_per_s)


def step_peak_bytes(p: Prediction) -> float | None:
    """The predicted peak as the campaign measured it, bytes: without the cuBLAS workspaces.

    ``predict`` adds the workspaces a GPU process keeps from its first matmul on (what a fresh run's
    ``max_memory_allocated`` counts); the campaign measures each step's peak above what was allocated before it,
    in a process whose earlier steps had allocated them (``experiments/h200_workspace_check.py``).
    """
    return None if p.peak_memory_bytes is None else float(p.peak_memory_bytes - p.workspace_bytes)


def calibrated_roofline_s(step: StepAnalysis, d: HardwareDescriptor, precision: str) -> float:
    """The calibrated roofline of a step, s: each working op at the measured ceilings plus one launch overhead.

    A practitioner's baseline: ``sum(max(FLOPs / measured peak, bytes / measured bandwidth) + launch overhead)``,
    the overhead being the descriptor's measured one (else the kind's prior); spec values where nothing was
    measured (a catalog GPU: the spec roofline plus launches).
    """
    work = step.ops[~is_free(step.ops)]
    view = HardwareView.of(measured_ceilings(d))
    return float(featurize(work, view, precision)["roofline_s"].sum() + len(work) * view.launch_overhead_s)


def predicted_steps(model: CostModel, test: pd.DataFrame, descs: dict[str, HardwareDescriptor]) -> pd.DataFrame:
    """Measured steps as ``flopcast predict`` prices them (:func:`predict_on`), with the baselines that need no fit.

    Args:
        model: the cost model to score.
        test: measured step rows.
        descs: the descriptor each row's device is priced with, by its ``hardware``.
    """
    rows = []
    for _, r in test.iterrows():
        d = descs[str(r["hardware"])]
        step = analysed(r, d.kind)
        if step is None:
            continue
        p = predict_on(model, step, d, str(r["precision"]), str(r["mode"]))
        peak = d.peak_for(peak_key(PRECISION_DTYPE[str(r["precision"])], "matmul", str(r["precision"]), d.kind))
        flops = float(step.ops["flops"].fillna(0).sum())
        rows.append({**{k: r[k] for k in STEP_KEYS}, "descriptor": d.name, "calibrated": p.calibrated,
                     "extrapolated": p.extrapolated, "flops": flops, "n_ops": launch_count(step),
                     "est_peak_memory_bytes": step.peak_memory_bytes,
                     **dict(zip(("time_p10", "time_p50", "time_p90"), p.step_time_s, strict=True)),
                     **dict(zip(("energy_p10", "energy_p50", "energy_p90"), p.step_energy_j, strict=True)),
                     "memory_pred": step_peak_bytes(p),
                     "flops_035": flops / (peak * SPEC_EFFICIENCY),
                     "roofline": p.composed.roofline_s,
                     "calibrated_roofline": calibrated_roofline_s(step, d, str(r["precision"])), "tdp_w": tdp_w(d)})
    out = pd.DataFrame(rows)
    for name in ("time_s", "energy_j", "measured_peak_memory_bytes"):  # nullable measurements as floats (NaN)
        if len(out):
            out[name] = pd.to_numeric(out[name], errors="coerce").astype(float)
    for name in ("flops_035", "roofline", "calibrated_roofline"):
        if len(out):
            out[f"energy_{name}"] = out[name] * out["tdp_w"]
    return out


def step_counts(steps: pd.DataFrame, descs: dict[str, HardwareDescriptor]) -> pd.DataFrame:
    """Measured step rows with the FLOPs and launch count of today's analysis (rows that cannot be analysed dropped)."""
    kept, flops, n_ops = [], [], []
    for i, r in steps.iterrows():
        d = descs.get(str(r["hardware"]))
        step = analysed(r, d.kind) if d is not None else None
        if step is not None:
            kept.append(i)
            flops.append(float(step.ops["flops"].fillna(0).sum()))
            n_ops.append(launch_count(step))
    return steps.loc[kept].assign(flops=flops, n_ops=n_ops)


def with_linear_baselines(scored: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """``scored`` with per-device regressions fitted on ``train`` (rows with ``flops``, ``n_ops``).

    Time and energy on FLOPs, and on FLOPs and op count (NaN for a device without training steps).
    """
    out = scored.copy()
    for col in ("linreg_flops", "linreg_flops_ops", "energy_linreg_flops", "energy_linreg_flops_ops"):
        out[col] = np.nan
    for h, g in train.groupby("hardware"):
        sel = (out["hardware"] == h).to_numpy()
        if not sel.any():
            continue
        for target, prefix in (("time_s", ""), ("energy_j", "energy_")):
            ok = (g[target].astype(float) > 0).to_numpy()
            for cols, name in ((["flops"], "linreg_flops"), (["flops", "n_ops"], "linreg_flops_ops")):
                if ok.sum() < 2:
                    continue
                c = nonnegative_fit(g.loc[ok, cols].to_numpy(float), g.loc[ok, target].to_numpy(float))
                out.loc[sel, prefix + name] = c[0] + out.loc[sel, cols].to_numpy(float) @ c[1:]
    return out


def scored_steps(model: CostModel, train: pd.DataFrame, test: pd.DataFrame, descs: dict[str, HardwareDescriptor],
                 train_descs: dict[str, HardwareDescriptor]) -> pd.DataFrame:
    """``test`` priced by ``model`` (:func:`predicted_steps`) with every baseline, regressions fitted on ``train``."""
    train = train[train["hardware"].isin(test["hardware"].unique())]  # the regressions are per device
    return with_linear_baselines(predicted_steps(model, test, descs), step_counts(train, train_descs))


def family_out(dev: Dataset, config: FitConfig) -> pd.DataFrame:
    """Each zoo family's steps priced by stages fitted without it, on an op model without rows derived from it."""
    descs = descriptors_of(dev)
    base = fit_op_stage(dev, config)
    steps, frame = composed_steps(base, trusted_rows(dev.steps), descs, zoo_step)
    family_of, derived = model_families(dev.steps), derived_models(dev.microbench)
    out = []
    for family in sorted(steps["family"].unique()):
        held = (steps["family"] == family).to_numpy()
        leak = np.array([any(family_of.get(m) == family for m in ms) for ms in derived], bool)
        if leak.any():  # the leak rule: an op model that never saw this family's shapes
            op_model = fit_op_stage(subset(dev, dev.microbench[~leak]), config)
            train, train_frame = composed_steps(op_model, steps[~held], descs, zoo_step)
        else:
            op_model, train, train_frame = base, steps[~held].reset_index(drop=True), frame[~held].reset_index(
                drop=True)
        m = stage_copy(op_model)
        fit_step_stages(m, train, train_frame)
        out.append(scored_steps(m, train, steps[held], descs, descs).assign(split="family-out",
                                                                            leak_rows_left_out=int(leak.sum())))
        log(f"family-out {family}: {held.sum()} steps scored, {int(leak.sum())} derived op rows left out")
    return pd.concat(out, ignore_index=True)


def spec_only(d: HardwareDescriptor) -> HardwareDescriptor:
    """What a user without measurements passes: ``d``'s catalog entry, else ``d`` without measured fields."""
    try:
        return get_hardware(d.name)
    except UnknownHardwareError:  # a probed CPU: what `hardware probe` gives without --measure
        return replace(d, calibrated=False, idle_power_w=None, launch_overhead_s=None, measured_peak_flops_per_s={},
                       measured_bandwidth_bytes_per_s=None)


def descriptor_variants(d: HardwareDescriptor) -> dict[str, HardwareDescriptor]:
    """The descriptors a held-out device is scored with: ``spec only``, ``measured ceilings`` where ``d`` has any."""
    measured = bool(d.measured_peak_flops_per_s or d.measured_bandwidth_bytes_per_s or d.launch_overhead_s
                    or d.idle_power_w)
    return {"spec only": spec_only(d), **({"measured ceilings": d} if measured else {})}


def hardware_out_folds(devices: Sequence[str]) -> list[tuple[str, ...]]:
    """Groups of devices held out together: :data:`HARDWARE_OUT_GROUPS` (those present), every other device alone."""
    grouped = [tuple(h for h in g if h in devices) for g in HARDWARE_OUT_GROUPS]
    alone = [(h,) for h in devices if not any(h in g for g in HARDWARE_OUT_GROUPS)]
    return alone + [g for g in grouped if g]


def hardware_out(dev: Dataset, config: FitConfig) -> tuple[pd.DataFrame, dict[str, tuple[CostModel, Dataset]]]:
    """Each device with steps priced by a model trained without any of its rows, from each descriptor variant.

    Returns:
        The scored steps and, per device held out alone, its fold's model and training data (the quick split's
        starting point).
    """
    steps = trusted_rows(dev.steps)
    out, models = [], {}
    for group in hardware_out_folds(sorted(steps["hardware"].unique())):
        train = subset(dev, hardware=[h for h in dev.hardware if h not in group])
        m = fit_cost_model(train, config, zoo_step)
        for hw in group:
            for variant, d in descriptor_variants(descriptors_of(dev)[hw]).items():
                out.append(scored_steps(m, trusted_rows(train.steps), steps[steps["hardware"] == hw], {hw: d},
                                        descriptors_of(train)).assign(split=f"hardware-out, {variant}"))
        if len(group) == 1:
            models[group[0]] = (m, train)
        log(f"hardware-out {', '.join(group)} done")
    return pd.concat(out, ignore_index=True), models


def quick_calibrated(dev: Dataset, folder: Path, config: FitConfig,
                     folds: dict[str, tuple[CostModel, Dataset]]) -> pd.DataFrame:
    """A device known only from a ``flopcast calibrate --quick`` campaign, scored on its other released steps.

    Exactly the new-machine path (``calibrate --quick`` then ``predict --hardware local --calibration``): a
    model trained on every other device's data (the hardware-out fold's, when it held this device out alone),
    then :func:`calibrate_model` with the quick folder and that training data (a refit with the model's own
    settings). Scored on the released steps of the device that the quick campaign did not measure (same
    model, batch, mode and precision left out).
    """
    quick = load_folder(folder)
    hw = next(iter(quick.descriptors))
    if hw not in dev.hardware:
        raise SystemExit(f"--quick: {hw} has no released steps to score against")
    base, others = folds.get(hw) or (None, subset(dev, hardware=[h for h in dev.hardware if h != hw]))
    base = base or fit_cost_model(others, config, zoo_step)
    m, d = calibrate_model(base, folder, analyse=zoo_step, training=others, cache=False)
    keys = ["model", "batch_size", "mode", "precision"]
    seen = set(map(tuple, quick.steps[keys].astype(str).to_numpy()))
    full = trusted_rows(dev.steps)
    full = full[(full["hardware"] == hw) & ~full[keys].astype(str).apply(tuple, axis=1).isin(seen)]
    scored = scored_steps(m, trusted_rows(quick.steps), full, {hw: d}, {hw: d}).assign(split="quick-calibrated")
    log(f"quick-calibrated {hw}: {len(quick.microbench)} op rows, {len(quick.steps)} steps; scored on "
        f"{len(scored)} other steps")
    return scored


def step_metric_rows(p: pd.DataFrame, split: str) -> list[dict]:
    """Step-level metrics of one split: time, energy by source, peak memory."""
    rows = metric_rows(p.assign(measured=p["time_s"], flopcast=p["time_p50"], p10=p["time_p10"], p90=p["time_p90"]),
                       "step", split, "time", ("flopcast", *TIME_BASELINES))
    for quantity, sources in ENERGY_QUANTITIES.items():
        e = p[p["energy_source"].isin(sources) & (pd.to_numeric(p["energy_j"], errors="coerce") > 0)]
        if len(e):
            rows += metric_rows(e.assign(measured=e["energy_j"], flopcast=e["energy_p50"], p10=e["energy_p10"],
                                         p90=e["energy_p90"], **{b: e[f"energy_{b}"] for b in TIME_BASELINES}),
                                "step", split, quantity, ("flopcast", *TIME_BASELINES))
    m = p[pd.to_numeric(p["measured_peak_memory_bytes"], errors="coerce") > 0]
    if len(m):
        rows += metric_rows(m.assign(measured=m["measured_peak_memory_bytes"], flopcast=m["memory_pred"],
                                     static_estimate=m["est_peak_memory_bytes"]), "step", split, "peak memory",
                            ("flopcast", "static_estimate"))
    return rows


def step_level(dev: Dataset, cfg: EvalConfig, seed: int) -> tuple[list[dict], pd.DataFrame]:
    """Family-out, hardware-out and quick-calibrated step metrics and predictions of one seed."""
    config = cfg.fit_config(seed)
    log(f"seed {seed}: family-out")
    parts = [family_out(dev, config)]
    log(f"seed {seed}: hardware-out")
    scored, folds = hardware_out(dev, config)
    parts.append(scored)
    parts += [quick_calibrated(dev, folder, config, folds) for folder in cfg.quick]
    p = pd.concat(parts, ignore_index=True).assign(seed=seed)
    rows = [{**r, "seed": seed} for split, g in p.groupby("split", sort=False) for r in step_metric_rows(g, str(split))]
    return rows, p


def final_level(ds: Dataset, cfg: EvalConfig, split: FrozenSplit) -> tuple[list[dict], pd.DataFrame]:
    """The frozen final test steps, each seed's model trained on everything else."""
    dev, test = development(ds, split), final_test_steps(ds, split)
    rows, preds = [], []
    for seed in cfg.seeds:
        m = fit_cost_model(dev, cfg.fit_config(seed), zoo_step)
        p = scored_steps(m, trusted_rows(dev.steps), test, descriptors_of(ds), descriptors_of(dev)).assign(
            split="final", seed=seed)
        rows += [{**r, "seed": seed} for r in step_metric_rows(p, "final")]
        preds.append(p)
        log(f"final, seed {seed}: {len(p)} test steps scored")
    return rows, pd.concat(preds, ignore_index=True)


# ------------------------------------------------------------------------------------------------ output

METRICS = ("n", "median_ape_pct", "mean_ape_pct", "within_10_pct", "within_25_pct", "spearman", "coverage_pct")
KEYS = ["level", "split", "hardware", "quantity", "predictor"]


def with_seed_spread(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per figure: each metric's median over the seeds, the seed count, and the range of the headline two."""
    rows = rows.assign(seed=rows["seed"].fillna(-1)) if "seed" in rows else rows.assign(seed=-1)
    g = rows.groupby(KEYS, sort=False, dropna=False)
    out = g[list(METRICS)].median().reset_index()
    out["seeds"] = g["seed"].nunique().to_numpy()
    for metric in ("median_ape_pct", "within_25_pct"):
        out[f"{metric}_min"], out[f"{metric}_max"] = g[metric].min().to_numpy(), g[metric].max().to_numpy()
    return out


def with_range(value: float, lo: float, hi: float) -> str:
    """``12.1 [11.5, 13.8]`` (the seeds' range), or the value alone where the seeds agree."""
    if pd.isna(value):
        return "–"
    return f"{value:.1f}" if lo == hi else f"{value:.1f} [{lo:.1f}, {hi:.1f}]"


def shown(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as printed: the headline metrics with their seed ranges."""
    out = summary[[*KEYS, "n"]].copy()
    out["median % [seeds]"] = [with_range(*v) for v in summary[
        ["median_ape_pct", "median_ape_pct_min", "median_ape_pct_max"]].to_numpy()]
    out["within 25 % [seeds]"] = [with_range(*v) for v in summary[
        ["within_25_pct", "within_25_pct_min", "within_25_pct_max"]].to_numpy()]
    for metric in ("mean_ape_pct", "within_10_pct", "spearman", "coverage_pct"):
        out[metric] = summary[metric].round(2 if metric == "spearman" else 1)
    return out


def headline(summary: pd.DataFrame) -> pd.DataFrame:
    """Step-level figures: flopcast's median error and share within 25 % beside each baseline's median, per device."""
    s = summary[summary["level"] == "step"]
    rows = []
    for (split, hw, quantity), g in s.groupby(["split", "hardware", "quantity"], sort=False):
        by = g.set_index("predictor")
        if "flopcast" not in by.index:
            continue
        f = by.loc["flopcast"]
        row = {"split": split, "device": hw, "quantity": quantity, "n": int(f["n"]),
               "flopcast median % [seeds]": with_range(f["median_ape_pct"], f["median_ape_pct_min"],
                                                       f["median_ape_pct_max"]),
               "within 25 % [seeds]": with_range(f["within_25_pct"], f["within_25_pct_min"], f["within_25_pct_max"]),
               "coverage 10-90 %": round(float(f["coverage_pct"]), 0)}
        for name in (*TIME_BASELINES, "static_estimate"):
            if name in by.index:
                row[name] = round(float(by.loc[name, "median_ape_pct"]), 1)
        rows.append(row)
    return pd.DataFrame(rows)


OPS_FILE = "eval_ops.parquet"
"""Every op prediction of the op level (about 36 MB for the released data: kept out of git, see .gitignore)."""


def previous_op_level(out: Path) -> tuple[list[dict], pd.DataFrame]:
    """The op-level summary rows and op predictions of the last full run in ``out`` (``--skip-ops``), if written."""
    summary, ops = out / "eval_summary.csv", out / OPS_FILE
    if not summary.is_file() or not ops.is_file():
        return [], pd.DataFrame()
    rows = pd.read_csv(summary)
    return rows[rows["level"] == "op"].to_dict("records"), pd.read_parquet(ops)


def write(rows: list[dict], steps: pd.DataFrame, ops: pd.DataFrame | None, about: str, out: Path, name: str
          ) -> pd.DataFrame:
    """Write ``<name>.{csv,md}`` and the step predictions (``eval_steps.csv`` or ``<name>_steps.csv``) in ``out``.

    Returns:
        The summary with seed ranges.
    """
    out.mkdir(parents=True, exist_ok=True)
    summary = with_seed_spread(pd.DataFrame(rows))
    summary.to_csv(out / f"{name}.csv", index=False)
    steps.to_csv(out / ("eval_steps.csv" if name == "eval_summary" else f"{name}_steps.csv"), index=False)
    if ops is not None:
        ops.to_parquet(out / OPS_FILE, compression="zstd")
    (out / f"{name}.md").write_text(
        f"# Cost-model accuracy (`python experiments/evaluate.py{' --final' if name != 'eval_summary' else ''}`)\n\n"
        f"{about}\n\n## Step level: flopcast beside the baselines (median absolute % error)\n\n"
        + markdown(headline(summary)) + "\n\n## Every figure\n\n" + markdown(shown(summary)) + "\n")
    return summary


def plot(steps: pd.DataFrame, out: Path) -> None:
    """Predicted vs measured step time (family-out, first seed), flopcast and the FLOPs/(peak x 0.35) baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = steps[(steps["split"] == "family-out") & (steps["seed"] == steps["seed"].min())] if len(steps) else steps
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
    fig.savefig(out / "eval_step_time.png", dpi=120)


def about_line(ds: Dataset, cfg: EvalConfig, split: FrozenSplit) -> str:
    """What a run scored, for the tables' caption."""
    cap = f"at most {cfg.max_rows_per_family} op rows per (device, microbenchmark family) in each refit" \
        if cfg.max_rows_per_family else "every op row in each refit"
    scope = ("scoring ONLY the frozen final test split" if cfg.final else
             "the frozen final test split left out (scored only with --final)")
    return (f"dataset {ds.version}: {', '.join(ds.hardware)}; {len(ds.microbench)} op rows, {len(ds.steps)} steps "
            f"(from {', '.join(map(str, cfg.data)) or 'datasets/'}); {scope}: families "
            f"{', '.join(split.families)} and the steps of {', '.join(split.device_steps)}. Op model: "
            f"{cfg.n_estimators} boosting rounds, seeds {', '.join(map(str, cfg.seeds))} (figures are medians over "
            f"the seeds, [min, max] beside them; baselines do not depend on the seed; the op level ran with the "
            f"first seed), {cap}. Steps priced by predict_on, as `flopcast predict` prices them.")


def parse_args(argv: Sequence[str] | None = None) -> EvalConfig:
    """The command line as an :class:`EvalConfig`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", default=[], help="hardware folders (default datasets/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the op time model (0 1 2): every figure is their median, with their range")
    parser.add_argument("--n-estimators", type=int, default=300, help="boosting rounds (300, as shipped)")
    parser.add_argument("--max-rows-per-family", type=int, default=3000,
                        help="op rows kept per (device, microbenchmark family) in each refit (3000; 0: all)")
    parser.add_argument("--skip-ops", action="store_true",
                        help="step level only (the op-level rows and eval_ops.parquet of the last full run are kept)")
    parser.add_argument("--quick", type=Path, action="append", default=[],
                        help="a `flopcast calibrate --quick` folder of a released CPU (repeatable): adds the "
                        "quick-calibrated split")
    parser.add_argument("--final", action="store_true",
                        help="score the frozen final test split (experiments/test_split.json) and nothing else: "
                        "only when a release is cut")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the tables (experiments/results)")
    a = parser.parse_args(argv)
    return EvalConfig(data=tuple(a.data), seeds=tuple(a.seeds), n_estimators=a.n_estimators,
                      max_rows_per_family=a.max_rows_per_family or None, quick=tuple(a.quick), skip_ops=a.skip_ops,
                      final=a.final, out=a.out)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    started = time.monotonic()
    ds = load_datasets(list(cfg.data) or None)
    split = FrozenSplit.load(cfg.split_file)
    about = about_line(ds, cfg, split)
    print(about)
    if cfg.final:
        rows, steps = final_level(ds, cfg, split)
        summary = write(rows, steps, None, about, cfg.out, "eval_final")
    else:
        dev = development(ds, split)
        op_rows, ops = previous_op_level(cfg.out) if cfg.skip_ops else op_level(dev, cfg.fit_config(cfg.seeds[0]))
        rows, preds = list(op_rows), []
        for i, seed in enumerate(cfg.seeds):  # the tables are written after each seed: a stopped run keeps them
            seed_rows, seed_preds = step_level(dev, cfg, seed)
            rows, preds = rows + seed_rows, [*preds, seed_preds]
            done = about if i + 1 == len(cfg.seeds) else f"{about} PARTIAL: seeds {cfg.seeds[:i + 1]} done."
            summary = write(rows, pd.concat(preds, ignore_index=True), ops, done, cfg.out, "eval_summary")
        plot(pd.concat(preds, ignore_index=True), cfg.out)
    with pd.option_context("display.width", 250, "display.max_rows", 1000, "display.max_columns", 30):
        print(headline(summary).to_string(index=False))
    print(f"wrote {cfg.out}/{'eval_final' if cfg.final else 'eval_summary'}.md and .csv "
          f"({(time.monotonic() - started) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
