"""Figures of predictions (``predict --plot``, ``suggest --plot``, ``report``): PNG and SVG, matplotlib Agg.

- ``roofline-<device>``: the step's ops on the device's roofline (arithmetic intensity against the FLOP/s each
  op reaches at its predicted time), one point per distinct op sized by its share of the op time, coloured by
  category;
- ``modules-time-<device>``: predicted op time per module (top N);
- ``op-mix-time``: share of the op time per category, one bar per device;
- ``devices``: step (and run) time, energy and CO2 per device, bars at the median, whiskers 10-90 %.

Per-op times are the op model's (:func:`~flopcast.predictor.compose.op_times`, before the step stage) or, for a
hypothetical device, the physical model's (:func:`~flopcast.predictor.physical.physical_op_times`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flopcast.features.config import PURE_DTYPES
from flopcast.features.plots import TOP_MODULES, hbar, module_key, plot_analysis, pyplot, save, slug

QUANTITIES = (("step_time_s", "step time, s"), ("step_energy_j", "step energy, J"), ("run_time_s", "run time, s"),
              ("run_energy_kwh", "run energy, kWh"), ("run_co2_kg", "run CO2eq, kg"), ("run_cost", "run cost"))
"""Record keys the device comparison draws (those present), with their axis labels."""


@dataclass(frozen=True)
class OpsOnDevice:
    """Each op of a step on one device, as the cost path times it.

    Attributes:
        frame: one row per kernel: ``category``, ``module``, ``flops``, ``bytes``, ``time_s`` (median, s).
        peak_flops_per_s: the device's peak at the step's precision, FLOP/s (the roofline's roof).
        bandwidth_bytes_per_s: its memory bandwidth, bytes/s (the roofline's slope).
    """

    frame: pd.DataFrame
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float


PRECISION_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "tf32": "tf32", **PURE_DTYPES}


def ops_on_device(model: Any, analysis: Any, d: Any, precision: str) -> OpsOnDevice:
    """Time every op of ``analysis`` on ``d`` with the prediction's own op timing (learned or physical)."""
    from flopcast.predictor.analysis_cache import StepAnalysis
    from flopcast.predictor.compose import op_times
    from flopcast.predictor.physical import is_physical, physical_device, physical_op_times

    ops = StepAnalysis.of(analysis).ops.assign(module=[o.module for o in analysis.ops])
    if is_physical(d):
        t = physical_op_times(ops, physical_device(d))
        work, q = t.work, t.q
    else:
        t = op_times(model, ops, d, precision)
        work, q = t.work, t.q
    module = work["module"].fillna("") if "module" in work else pd.Series("", index=work.index)
    frame = pd.DataFrame({"category": work["category"].astype(str).to_numpy(),
                          "module": [module_key(str(m)) for m in module],
                          "flops": work["flops"].astype(float).to_numpy(),
                          "bytes": (work["bytes_read"].astype(float) + work["bytes_written"].astype(float)).to_numpy(),
                          "time_s": q[:, 1]})
    return OpsOnDevice(frame, d.peak_for(PRECISION_DTYPES.get(precision, "float32")),
                       float(d.memory_bandwidth_bytes_per_s))


def plot_roofline(ops: OpsOnDevice, label: str, folder: Path) -> list[Path]:
    """The step's ops on the device's roofline (ops without FLOPs are counted in the title, not drawn)."""
    plt = pyplot()
    f = ops.frame
    total = f["time_s"].sum() or 1.0
    # one point per distinct op (category, FLOPs, bytes): a layer's kernels repeated N times are one point N times
    # the size, at the FLOP/s each call reaches
    f = f.groupby(["category", "flops", "bytes"], as_index=False).agg(time_s=("time_s", "sum"),
                                                                      calls=("time_s", "size"))
    f["flops"], f["bytes"] = f["flops"] * f["calls"], f["bytes"] * f["calls"]
    shown = f[(f["flops"] > 0) & (f["bytes"] > 0) & (f["time_s"] > 0)]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for cat, g in shown.groupby("category"):
        ax.scatter(g["flops"] / g["bytes"], g["flops"] / g["time_s"], s=10 + 600 * g["time_s"] / total, alpha=0.6,
                   label=cat, edgecolors="none")
    lo = max(float((shown["flops"] / shown["bytes"]).min()) / 3 if len(shown) else 0.01, 1e-3)
    hi = max(float((shown["flops"] / shown["bytes"]).max()) * 3 if len(shown) else 1e3, lo * 100)
    x = np.logspace(np.log10(lo), np.log10(hi), 200)
    ax.plot(x, np.minimum(ops.peak_flops_per_s, ops.bandwidth_bytes_per_s * x), color="black", lw=1.2,
            label="roofline")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity, FLOP/byte")
    ax.set_ylabel("FLOP/s at the predicted time")
    hidden = f[~f.index.isin(shown.index)]
    ax.set_title(f"ops of the step on {label} (size: share of op time; {int(hidden['calls'].sum())} ops without FLOPs, "
                 f"{hidden['time_s'].sum() / total:.0%} of the time, not drawn)", loc="left", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return save(fig, folder, f"roofline-{slug(label)}")


def plot_module_times(ops: OpsOnDevice, label: str, folder: Path, top: int = TOP_MODULES) -> list[Path]:
    """Predicted op time per module (cut to two path components), top ``top``."""
    plt = pyplot()
    rows = ops.frame.groupby("module")["time_s"].sum().sort_values(ascending=False).head(top)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.5))
    hbar(ax, list(rows.index), list(rows.to_numpy() * 1e3), "predicted op time, ms",
         f"time per module on {label} (top {top})")
    return save(fig, folder, f"modules-time-{slug(label)}")


def plot_op_mix(records: Sequence[dict[str, Any]], folder: Path) -> list[Path]:
    """Share of the predicted op time per category, one stacked bar per device."""
    plt = pyplot()
    labels = [r.get("label", r["hardware"]) for r in records]
    cats = sorted({c for r in records for c in r["time_by_category_s"]})
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(records) + 2))
    left = np.zeros(len(records))
    for cat in cats:
        share = np.array([r["time_by_category_s"].get(cat, 0.0) / (sum(r["time_by_category_s"].values()) or 1.0)
                          for r in records]) * 100
        ax.barh(labels[::-1], share[::-1], left=left[::-1], label=cat)
        left += share
    ax.set_xlabel("share of predicted op time, %")
    ax.set_title("op mix by category, by time on each device", loc="left", fontsize=11)
    ax.legend(fontsize=8, frameon=False, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return save(fig, folder, "op-mix-time")


def plot_devices(records: Sequence[dict[str, Any]], folder: Path, stem: str = "devices") -> list[Path]:
    """Bars at the median with 10-90 % whiskers, one panel per quantity the records hold."""
    plt = pyplot()
    keys = [(k, lab) for k, lab in QUANTITIES if all(r.get(k) is not None for r in records)]
    labels = [r.get("label", r["hardware"]) for r in records]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys) + 1, 0.45 * len(records) + 2), squeeze=False)
    for ax, (key, name) in zip(axes[0], keys, strict=True):
        mid = np.array([r[key] for r in records], float)
        err = np.array([mid - [r[key + "_p10"] for r in records], [r[key + "_p90"] for r in records] - mid], float)
        y = np.arange(len(records))[::-1]
        ax.barh(y, mid, xerr=err, color="#4C72B0", error_kw={"capsize": 3, "elinewidth": 1})
        ax.set_yticks(y, labels if ax is axes[0][0] else [""] * len(labels))
        ax.set_title(name, fontsize=10)
    fig.suptitle("median with 10-90 % interval", fontsize=9, x=0.02, ha="left")
    return save(fig, folder, stem)


def plot_predictions(run: Any, model: Any, folder: Path) -> list[Path]:
    """Every figure of a ``predict`` run (see the module docstring); ``folder`` is created.

    Args:
        run: the predictions (:class:`flopcast.predictor.cli.PredictedRun`).
        model: the cost model they came from.
        folder: where to write.
    """
    from flopcast.predictor.featurize import analysis_device
    from flopcast.predictor.output import writable_folder
    from flopcast.predictor.predict import resolve_hardware

    writable_folder(folder, "figures")
    calibration = None
    if run.config.calibration is not None:
        from flopcast.predictor.calibrated import calibrate_model

        model, calibration = calibrate_model(model, run.config.calibration)
    paths: list[Path] = []
    records = iter(run.records)
    for regime in run.training.regimes:
        for name, p in zip(run.config.hardware, run.predictions[regime], strict=True):
            r = next(records)
            d = resolve_hardware(name, calibration)
            ops = ops_on_device(model, run.analyses[regime][analysis_device(p.kind)], d, run.config.analysis.precision)
            label = r.get("label", r["hardware"])
            paths += plot_roofline(ops, label, folder) + plot_module_times(ops, label, folder)
    return paths + plot_op_mix(run.records, folder) + plot_devices(run.records, folder)


def plot_suggestion(result: dict[str, Any], folder: Path) -> list[Path]:
    """The GPU types of a ``suggest`` answer side by side (run time, energy, CO2, cost at their batch)."""
    from flopcast.predictor.output import writable_folder

    writable_folder(folder, "figures")
    fitting = [dict(o, label=f"{o['hardware']} (batch {o['recommended_batch_size']})") for o in result["options"]
               if o.get("recommended_batch_size")]
    return plot_devices(fitting, folder, "suggest")


__all__ = ["plot_analysis", "plot_devices", "plot_predictions", "plot_suggestion"]
