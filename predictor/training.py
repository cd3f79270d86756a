"""Fit a :class:`~flopcast.predictor.model.CostModel` from measurement tables (``flopcast fit``'s work).

Op models learn from microbenchmark rows; the step stages learn from measured zoo steps, each re-analysed
(cached) and composed from op predictions exactly as ``predict`` composes a new model's step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.zoo_steps import step_option_kwargs
from flopcast.datasets.loader import Dataset, load_datasets, trusted_rows
from flopcast.features.version import flopcast_version
from flopcast.predictor.analysis_cache import StepAnalysis, zoo_step
from flopcast.predictor.compose import compose, step_frame
from flopcast.predictor.device_offsets import fit_offset_model
from flopcast.predictor.device_traits import software_stack
from flopcast.predictor.featurize import HardwareView, analysis_device, featurize
from flopcast.predictor.memory import MemoryModel
from flopcast.predictor.model import CostModel
from flopcast.predictor.op_model import OpPowerModel, OpTimeModel
from flopcast.predictor.op_rows import ROW_PRECISION, op_training_rows
from flopcast.predictor.power import MEASURED_POWER_SOURCES, power_share_target, step_energy_base_j
from flopcast.predictor.step_model import StepEnergyModel, StepTimeModel

log = logging.getLogger(__name__)

TINY_OP_SHARE = 0.1
"""Share of a device's microbenchmark rows, those with the least roofline time, that measure its overhead."""
MIN_TINY_OPS = 5
MIN_POWER_ROWS = 20
"""Fewest op rows with measured power for a power model (else the prior shares)."""


class FitError(ValueError):
    """Not enough data to fit a model."""


@dataclass(frozen=True)
class FitConfig:
    """Everything ``flopcast fit`` needs.

    Attributes:
        data: hardware folders or folders of them (empty: the released ``datasets/``).
        out: model directory to write.
        n_estimators: boosting rounds of the op time model.
        progress: show progress while analysing measured steps.
        op_model_params: further keyword arguments of :class:`OpTimeModel`.
        max_rows_per_family: op rows kept per (device, microbenchmark family), evenly over their FLOPs
            (``None``: all); a published campaign may hold 20 000 GEMMs of one GPU, and the op model learns
            as much from a few thousand spread over the same sizes.
    """

    data: tuple[Path, ...] = ()
    out: Path = Path("flopcast-model")
    n_estimators: int = 300
    progress: bool = True
    op_model_params: dict[str, Any] = field(default_factory=dict)
    max_rows_per_family: int | None = None


def descriptors_of(ds: Dataset) -> dict[str, HardwareDescriptor]:
    """Descriptor objects of a dataset's devices."""
    return {name: HardwareDescriptor.from_dict(d) for name, d in ds.descriptors.items()}


def spread_rows(mb: pd.DataFrame, max_rows: int | None) -> pd.DataFrame:
    """At most ``max_rows`` rows per (hardware, family), evenly spaced over their FLOPs (all rows without a cap)."""
    if not max_rows:
        return mb
    parts = []
    for _, g in mb.groupby(["hardware", "family"], sort=False):
        if len(g) > max_rows:
            g = g.sort_values(["flops", "key"], kind="stable").iloc[
                np.linspace(0, len(g) - 1, max_rows).round().astype(int)]
        parts.append(g)
    return pd.concat(parts).reset_index(drop=True) if parts else mb


def fitted_overheads(mb: pd.DataFrame, view: HardwareView) -> dict[str, float]:
    """One device's fitted overheads, s: ``overhead_s`` (launch), with enough backward rows ``backward_overhead_s``.

    The backward overhead is :func:`fitted_overhead_s` over the device's backward rows alone: each times a
    whole ``torch.autograd.grad`` call (see :class:`HardwareView`), whose fixed cost is not a kernel's.
    """
    out = {"overhead_s": fitted_overhead_s(mb, view) if len(mb) else view.launch_overhead_s}
    backward = mb[mb["phase"].astype(str) == "backward"] if "phase" in mb else mb.iloc[:0]
    if len(backward) >= MIN_TINY_OPS:
        out["backward_overhead_s"] = fitted_overhead_s(backward, view)
    return out


def fitted_overhead_s(mb: pd.DataFrame, view: HardwareView) -> float:
    """Launch overhead of one device, s: median time of its smallest ops (by roofline time).

    The :data:`TINY_OP_SHARE` of rows with the least work (at least :data:`MIN_TINY_OPS`) are bound by
    dispatch and launch; with fewer rows the view's measured or prior value is kept.
    """
    if len(mb) < MIN_TINY_OPS:
        return view.launch_overhead_s
    roofline = featurize(mb, view, ROW_PRECISION)["roofline_s"].to_numpy()
    n = max(MIN_TINY_OPS, int(TINY_OP_SHARE * len(mb)))
    return float(np.median(mb["time_s"].to_numpy(float)[np.argsort(roofline)[:n]]))


def imputed_efficiencies(descs: dict[str, HardwareDescriptor]) -> dict[str, dict[str, float]]:
    """What a device never measured gets, per kind.

    CPUs: the median measured / spec peak (fp32) and bandwidth. GPUs: none, a GPU is its spec sheet
    (:func:`fit_op_stage` adds the spec-sheet model of GPU offsets).

    Bandwidth ratios keep the spec's meaning apart: ``bw`` over spec-sheet bandwidths (catalog, GPUs),
    ``bw_estimated`` over a probe's a-priori estimate (``extra['memory_bandwidth_estimated']``); a kind without
    a spec-sheet ratio borrows the median over every kind's (a catalog CPU must not get a probe's 3.75x).
    """
    out: dict[str, dict[str, float]] = {}
    views = {n: HardwareView.of(d) for n, d in descs.items()}
    sheet = [v.bw_eff for n, v in views.items() if not descs[n].extra.get("memory_bandwidth_estimated")]
    sheet += [d.measured_bandwidth_bytes_per_s / d.memory_bandwidth_bytes_per_s for d in descs.values()
              if d.kind == "gpu" and d.measured_bandwidth_bytes_per_s and d.memory_bandwidth_bytes_per_s]
    for kind in {d.kind for d in descs.values()}:
        if kind == "gpu":
            out[kind] = {}
            continue
        mine = [n for n, d in descs.items() if d.kind == kind]
        ratios = {"peak": [views[n].peak_eff.get("fp32", math.nan) for n in mine],
                  "bw": [views[n].bw_eff for n in mine if not descs[n].extra.get("memory_bandwidth_estimated")],
                  "bw_estimated": [views[n].bw_eff for n in mine if descs[n].extra.get("memory_bandwidth_estimated")]}
        if not np.isfinite(ratios["bw"]).any():
            ratios["bw"] = sheet
        out[kind] = {k: float(np.nanmedian(x)) for k, x in ratios.items() if np.isfinite(x).any()}
    return out


def op_training_frame(mb: pd.DataFrame, views: dict[str, HardwareView]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features, launch overheads and hardware-balancing weights of trusted microbenchmark rows."""
    frames, overheads, weights = [], [], []
    for name, rows in mb.groupby("hardware"):
        if name not in views:
            log.warning("skipping %d microbenchmark rows of %s: no descriptor", len(rows), name)
            continue
        frames.append(featurize(rows, views[name], ROW_PRECISION))
        overheads.append(views[name].row_overheads_s(frames[-1]))
        weights.append(np.full(len(rows), len(mb) / len(rows)))
    if not frames:
        raise FitError("no trusted microbenchmark rows with a descriptor: nothing to fit the op model on")
    return pd.concat(frames), np.concatenate(overheads), np.concatenate(weights)


def fit_op_stage(ds: Dataset, config: FitConfig = FitConfig()) -> CostModel:
    """A cost model with fitted op models and device table, and empty (unfitted) step stages.

    Raises:
        FitError: without trusted microbenchmark rows.
    """
    descs = descriptors_of(ds)
    mb = spread_rows(op_training_rows(ds.microbench), config.max_rows_per_family)
    eff = imputed_efficiencies(descs)
    fitted: dict[str, dict[str, float]] = {}
    for name, d in descs.items():
        rows = mb[mb["hardware"] == name]
        if len(rows):
            fitted[name] = fitted_overheads(rows, HardwareView.of(d, None, eff.get(d.kind, {})))
    for kind, e in eff.items():  # a device without rows: its kind's fitted overheads (measured, not a typed prior)
        for key, name in (("overhead_s", "launch_overhead_s"), ("backward_overhead_s", "backward_overhead_s")):
            values = [o[key] for n, o in fitted.items() if descs[n].kind == kind and key in o]
            e.update({name: float(np.median(values))} if values else {})
    views = {name: HardwareView.of(d, fitted.get(name, {}).get("overhead_s"), eff.get(d.kind, {}),
                                   fitted.get(name, {}).get("backward_overhead_s")) for name, d in descs.items()}
    features, overheads, weights = op_training_frame(mb, views)
    op_time = OpTimeModel(n_estimators=config.n_estimators, **config.op_model_params)
    op_time.fit(features, mb.loc[features.index, "time_s"].to_numpy(float), overheads, weights,
                mb.loc[features.index, "hardware"].astype(str).to_numpy())
    if "gpu" in eff:  # what a GPU without rows gets: offsets predicted from its spec sheet
        eff["gpu"].update(fit_offset_model([(descs[n], o) for n, o in op_time.offsets_.items() if n in descs]))
    op_power = _fit_power(mb, features, descs)
    model = CostModel(op_time, op_power, StepTimeModel(), StepEnergyModel(), MemoryModel(), imputed_eff=eff)
    model.hardware = {name: {"descriptor": ds.descriptors[name], "overhead_s": views[name].launch_overhead_s,
                             **({"backward_overhead_s": fitted[name]["backward_overhead_s"]}
                                if "backward_overhead_s" in fitted.get(name, {}) else {}),
                             "op_rows": int((mb["hardware"] == name).sum()), "step_rows": 0,
                             "energy_source": "none"} for name in descs}
    model.info = {"dataset_version": ds.version, "checksums": ds.checksums, "flopcast_version": flopcast_version(),
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "max_rows_per_family": config.max_rows_per_family,
                  "metrics": {"op_time": op_time.train_metrics_,
                              "op_power": op_power.train_metrics_ if op_power else None}}
    return model


def fit_cost_model(ds: Dataset, config: FitConfig = FitConfig(), analyse: Callable[..., StepAnalysis] = zoo_step
                   ) -> CostModel:
    """Fit every part of the cost model on a dataset.

    Args:
        ds: measurement tables (see :func:`flopcast.datasets.loader.load_datasets`).
        config: fit options.
        analyse: ``(model, batch_size, mode, precision, optimizer, device) -> StepAnalysis`` of a zoo step.

    Raises:
        FitError: without trusted microbenchmark rows.
    """
    model = fit_op_stage(ds, config)
    descs = descriptors_of(ds)
    steps, frame = composed_steps(model, trusted_rows(ds.steps), descs, analyse, config.progress)
    fit_step_stages(model, steps, frame)
    for name in descs:
        rows = steps[steps["hardware"] == name]
        model.hardware[name].update(step_rows=len(rows), energy_source=energy_source(rows))
    model.info["metrics"]["steps"] = len(steps)
    return model


def _fit_power(mb: pd.DataFrame, features: pd.DataFrame, descs: dict[str, HardwareDescriptor]) -> OpPowerModel | None:
    ok = mb["energy_source"].isin(MEASURED_POWER_SOURCES) & (mb["avg_power_w"] > 0)
    if ok.sum() < MIN_POWER_ROWS:
        return None
    share = np.concatenate([power_share_target(g["avg_power_w"], descs[h]) for h, g in mb[ok].groupby("hardware")])
    index = np.concatenate([g.index.to_numpy() for _, g in mb[ok].groupby("hardware")])
    kinds = [descs[h].kind for h in mb.loc[ok, "hardware"].unique()]
    return OpPowerModel().fit(features.loc[index], share, kinds=kinds)


def composed_steps(model: CostModel, steps: pd.DataFrame, descs: dict[str, HardwareDescriptor],
                   analyse: Callable[..., StepAnalysis], progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measured steps that could be analysed, and their step frame (ops composed on their own device).

    Returns:
        The kept step rows (``est_peak_memory_bytes`` and ``flops`` from the analysis, so that a row measured
        under an older tracer is read with today's features) and the aligned step frame.
    """
    kept, rows = [], []
    from rich.progress import track

    for i, r in track(list(steps.iterrows()), description="composing measured steps", disable=not progress,
                      transient=True):
        d = descs.get(str(r["hardware"]))
        if d is None:
            continue
        device = analysis_device(d.kind)
        try:
            step = analyse(str(r["model"]), int(r["batch_size"]), str(r["mode"]), str(r["precision"]),
                           str(r["optimizer"]), device, **step_option_kwargs(r))
        except (KeyError, ValueError, RuntimeError) as e:
            log.warning("skipping measured step %s: %s", r["model"], e)
            continue
        kept.append(i)
        rows.append({"hardware": d.name, "kind": d.kind, "stack": software_stack(d), "mode": r["mode"],
                     "composed": compose(model, step.ops, d, str(r["precision"])),
                     "est": step.peak_memory_bytes, "flops": float(step.ops["flops"].fillna(0).sum())})
    out = steps.loc[kept].reset_index(drop=True)
    out["est_peak_memory_bytes"] = [r["est"] for r in rows]
    out["flops"] = [r["flops"] for r in rows]
    return out, step_frame(rows)


def fit_step_stages(model: CostModel, steps: pd.DataFrame, frame: pd.DataFrame, kinds_from: CostModel | None = None
                    ) -> None:
    """Fit the step time, energy and memory stages of ``model`` in place (empty stages without steps).

    ``kinds_from``: a fitted model whose device-kind stages are kept (not refitted on ``frame``) and lent to
    devices with few steps.
    """
    kinds = {part: None if kinds_from is None else getattr(kinds_from, part).stages_
             for part in ("step_time", "step_energy")}
    if frame.empty:
        frame = pd.DataFrame(columns=["hardware", "kind", "mode", "ops_s", "ops_p10_s", "ops_p90_s", "n_ops", "n_calls",
                                      "n_python_calls", "launch_bound_share", "power_share", "roofline_s",
                                      "energy_base_j", "est_peak_memory_bytes"])
    groups = steps["family"].astype(str).to_numpy() if len(steps) else None
    model.step_time.fit(frame, steps["time_s"].to_numpy(float) if len(steps) else np.zeros(0), groups,
                        kinds["step_time"])
    frame = with_energy_base(model, frame, steps["time_s"].to_numpy(float) if len(steps) else np.zeros(0))
    has_e = (steps["energy_j"].astype(float) > 0).to_numpy() if len(steps) else np.zeros(0, bool)
    model.step_energy.fit(frame[has_e], steps.loc[has_e, "energy_j"].to_numpy(float),
                          groups[has_e] if groups is not None else None, kinds["step_energy"])
    mem = frame.assign(est_peak_memory_bytes=steps["est_peak_memory_bytes"].to_numpy(float) if len(steps) else [])
    model.memory.fit(mem, steps["measured_peak_memory_bytes"].astype(float).to_numpy() if len(steps) else [])


def with_energy_base(model: CostModel, frame: pd.DataFrame, time_s: np.ndarray) -> pd.DataFrame:
    """The frame with ``step_time_s`` and ``energy_base_j`` (J) columns, for fitting the energy stage.

    Args:
        model: the model (its device table gives each row's descriptor).
        frame: step frame.
        time_s: measured step times, s: the energy stage is fitted on the base at the measured time, so
            that it learns how the device's power departs from the physical base, not the time stage's
            errors (those come back as the time interval at prediction, where
            :func:`flopcast.predictor.predict.predict_on` takes the base at the predicted time).
    """
    frame = frame.copy()
    if frame.empty:
        frame["step_time_s"], frame["energy_base_j"] = [], []
        return frame
    frame["step_time_s"] = np.asarray(time_s, float)
    base = np.empty(len(frame))
    for i, (_, r) in enumerate(frame.iterrows()):
        d = HardwareDescriptor.from_dict(model.hardware[r["hardware"]]["descriptor"]) \
            if r["hardware"] in model.hardware else None
        base[i] = step_energy_base_j(np.array([r["step_time_s"]]), np.array([r["ops_s"]]),
                                     np.array([r["power_share"]]), d)[0] if d else math.nan
    frame["energy_base_j"] = base
    return frame


def energy_source(steps: pd.DataFrame) -> str:
    """The most common energy source of measured steps with energy (``none`` without any)."""
    if steps.empty:
        return "none"
    sources = steps.loc[steps["energy_j"].notna(), "energy_source"].dropna()
    return str(sources.mode().iloc[0]) if len(sources) else "none"


def fit_from_paths(config: FitConfig) -> CostModel:
    """Load the configured data and fit (``flopcast fit`` without the saving)."""
    ds = load_datasets(list(config.data) or None)
    if ds.microbench.empty:
        where = ", ".join(map(str, config.data)) or "datasets/"
        raise FitError(f"no microbenchmark rows in {where}: run `flopcast calibrate` or pass --data DIR")
    return fit_cost_model(ds, config)
