"""Predict a step's time, energy and memory on one or more devices, with intervals and run totals.

``predict`` analyses the target once per device kind (the analysis depends on ``cuda`` vs ``cpu``),
composes op predictions on each device, applies the step stages, and adds run totals and CO2 when a
dataset size is given.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from flopcast.calibration.catalog import get_hardware
from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig
from flopcast.predictor.analysis_cache import StepAnalysis
from flopcast.predictor.carbon import carbon_intensity_g_per_kwh
from flopcast.predictor.compose import ComposedStep, compose, step_frame
from flopcast.predictor.device_traits import software_stack
from flopcast.predictor.featurize import analysis_device
from flopcast.predictor.memory import CONTEXT_BYTES, blas_workspace_bytes, fits_in_memory
from flopcast.predictor.model import CostModel
from flopcast.predictor.physical import is_physical, predict_physical
from flopcast.predictor.power import energy_with_time_spread, power_bounded_j, step_energy_base_j

log = logging.getLogger(__name__)

UNCALIBRATED_WIDEN = 1.5
"""Uncalibrated devices: log-interval half-widths are multiplied by this ..."""
UNCALIBRATED_EXTRA = math.log(1.5)
"""... and widened by this much more (ln units) on each side."""

MAX_BATCH_LIMIT = 1 << 20

T = TypeVar("T")
"""A trace of the step (an :class:`Analysis`, a generation trace)."""


class PredictError(ValueError):
    """A prediction cannot be made as asked (bad option combination, no device)."""


@dataclass(frozen=True)
class PredictConfig:
    """Everything ``flopcast predict`` needs.

    Attributes:
        analysis: what to analyse (its ``device`` is replaced by each device's kind).
        hardware: catalog names, aliases, descriptor files or ``local``, one per device to predict.
        calibration: a campaign folder whose measurements calibrate the device (``--calibration``).
        model_dir: saved cost model (``None``: the packaged default).
        dataset_size: samples per epoch, for run totals (``None``: no totals).
        epochs: passes over the dataset.
        region: grid country for CO2 (ISO 3166 alpha-3 or alpha-2; ``None``: world average).
        pue: data-centre power usage effectiveness (facility energy / IT energy).
        max_batch: also search the largest batch size that fits in memory.
        use_store: without ``calibration``, take ``local``'s campaign from the per-user calibration store.
    """

    analysis: AnalyzeConfig
    hardware: tuple[str, ...] = ("local",)
    calibration: Path | None = None
    model_dir: Path | None = None
    dataset_size: int | None = None
    epochs: int = 1
    region: str | None = None
    pue: float = 1.0
    max_batch: bool = False
    use_store: bool = True

    def __post_init__(self) -> None:
        if self.pue < 1.0:
            raise PredictError(f"--pue must be >= 1 (facility energy over IT energy), not {self.pue}")
        if self.dataset_size is not None and self.dataset_size < 1:
            raise PredictError(f"--dataset-size must be >= 1, not {self.dataset_size}")
        if self.epochs < 1:
            raise PredictError(f"--epochs must be >= 1, not {self.epochs}")
        if not self.hardware:
            raise PredictError("--hardware names no device")


@dataclass(frozen=True)
class Prediction:
    """Predicted cost of one step on one device.

    Attributes:
        hardware: device name.
        kind: gpu, cpu or other.
        calibrated: whether the model has measurements of this device.
        calibrated_as: the measured device whose stages priced it (``None``: none; differs from ``hardware``
            where a probed CPU matched a released one of another name, e.g. ``local-cpu-amd-epyc-zen4``).
        measured_by: who measured the device the model was trained on (``flopcast`` or an imported public
            source such as ``NeuSight (external)``; ``None``: not measured, priced from its spec sheet).
        extrapolated: whether the step or device lies outside the training range.
        step_time_s: median step time and its 10 / 90 % quantiles, s.
        step_energy_j: median step energy and its 10 / 90 % quantiles, J.
        est_peak_memory_bytes: the analysis' peak estimate, bytes (``None``: the front end estimates none).
        peak_memory_bytes: predicted peak as ``max_memory_allocated`` counts it in a run (allocator overhead and
            the process's cuBLAS workspaces included), bytes (``None``: not estimated).
        memory_bytes: device memory, bytes.
        fits: whether the peak plus context overhead fits in the device memory (``None``: unknown).
        composed: op-level details.
        notes: one-line caveats (roofline fallback, extrapolation, energy prior).
        workspace_bytes: the cuBLAS / cuBLASLt workspaces within ``peak_memory_bytes``, bytes.
    """

    hardware: str
    kind: str
    calibrated: bool
    extrapolated: bool
    step_time_s: tuple[float, float, float]
    step_energy_j: tuple[float, float, float]
    est_peak_memory_bytes: int | None
    peak_memory_bytes: int | None
    memory_bytes: int
    fits: bool | None
    composed: ComposedStep
    notes: tuple[str, ...] = ()
    energy_source: str = "prior"
    calibrated_as: str | None = None
    measured_by: str | None = None
    workspace_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON keys of ``predict --json`` that depend on the device."""
        t, e, c = self.step_time_s, self.step_energy_j, self.composed
        return {
            "hardware": self.hardware, "device_kind": self.kind, "calibrated": self.calibrated,
            "calibrated_as": self.calibrated_as, "measured_by": self.measured_by, "extrapolated": self.extrapolated,
            "step_time_s": t[1], "step_time_s_p10": t[0], "step_time_s_p90": t[2],
            "step_energy_j": e[1], "step_energy_j_p10": e[0], "step_energy_j_p90": e[2],
            "avg_power_w": e[1] / t[1] if t[1] > 0 else None, "energy_source": self.energy_source,
            "est_peak_memory_bytes": self.est_peak_memory_bytes, "peak_memory_bytes": self.peak_memory_bytes,
            "workspace_bytes": self.workspace_bytes, "memory_bytes": self.memory_bytes, "fits": self.fits,
            "roofline_time_s": c.roofline_s, "ops_time_s": c.ops_s, "predicted_ops": c.n_ops,
            "launch_bound_share": c.launch_bound_share, "time_by_category_s": c.category_s,
            "roofline_fallback": c.fallback, "notes": list(self.notes), **self.extra,
        }


def resolve_hardware(name: str, calibration: HardwareDescriptor | None = None) -> HardwareDescriptor:
    """Descriptor of a ``--hardware`` item: ``local`` (probed), a catalog name or alias, or a descriptor file.

    A calibration descriptor replaces ``local`` and any name resolving to its device (same name, or same
    vendor name and kind).

    Raises:
        UnknownHardwareError: unknown name (close matches listed).
        DescriptorError: a descriptor file missing fields (named).
    """
    if name.strip().lower() == "local":
        if calibration is not None:
            return calibration
        from flopcast.calibration.probe import probe_local

        return probe_local()[0]
    if calibration is not None and name == calibration.name:
        return calibration
    d = get_hardware(name)
    if calibration is not None and (d.name == calibration.name or (
            d.vendor_name and d.vendor_name == calibration.vendor_name and d.kind == calibration.kind)):
        return calibration
    return d


def widen(q: tuple[float, float, float]) -> tuple[float, float, float]:
    """Intervals of an uncalibrated device: wider in log space by :data:`UNCALIBRATED_WIDEN` and ``_EXTRA``."""
    lo, mid, hi = q
    if mid <= 0:
        return q
    down = math.log(mid / lo) if lo > 0 else 0.0
    up = math.log(hi / mid) if hi > 0 else 0.0
    return (mid * math.exp(-(down * UNCALIBRATED_WIDEN + UNCALIBRATED_EXTRA)), mid,
            mid * math.exp(up * UNCALIBRATED_WIDEN + UNCALIBRATED_EXTRA))


def predict_on(model: CostModel, step: StepAnalysis, d: HardwareDescriptor, precision: str, mode: str,
               calibrated: bool | None = None) -> Prediction:
    """Predict one analysed step on one device.

    Args:
        model: fitted cost model.
        step: the step's ops and memory estimate.
        d: the device.
        precision: step precision.
        mode: train or infer.
        calibrated: override of whether the device counts as calibrated (default: trained on it).
    """
    if is_physical(d):  # a hypothetical device: the physical model (predictor/physical.py), never calibrated
        return predict_physical(model, step, d)
    trained = model.trained_name(d)
    calibrated = trained is not None if calibrated is None else calibrated
    name = trained or d.name
    c = compose(model, step.ops, d, precision)
    frame = step_frame([{"hardware": name, "kind": d.kind, "stack": software_stack(d), "mode": mode, "composed": c}])
    t = tuple(float(x) for x in model.step_time.predict(frame)[0])
    frame["energy_base_j"] = step_energy_base_j(np.array([t[1]]), np.array([c.ops_s]), np.array([c.power_share]), d)
    e_at_median_time = model.step_energy.predict(frame)[0]
    e = tuple(float(x) for x in power_bounded_j(energy_with_time_spread(e_at_median_time, np.array(t)), np.array(t), d))
    if not calibrated:
        t, e = widen(t), widen(e)
    workspace = blas_workspace_bytes(d, step.ops)
    peak = int(model.memory.predict(name, d.kind, step.peak_memory_bytes)) + workspace \
        if step.memory_estimated else None
    notes = [] if step.memory_estimated else ["peak memory not estimated: this front end traces no tensor lifetimes"]
    if c.fallback:
        cats = ", ".join(f"{k} ({n} ops)" for k, n in sorted(c.fallback.items()))
        notes.append(f"no trained op model for {cats}: predicted from the roofline")
    if c.extrapolated:
        where = ", ".join(c.hardware_out_of_range) or f"{c.extrapolated_share:.0%} of the op time"
        notes.append(f"outside the training range ({where}): extrapolated, treat with care")
    source = model.hardware.get(trained, {}).get("energy_source", "prior") if trained else "prior"
    if source in ("prior", "none", "codecarbon-tdp"):
        notes.append(f"energy from {'a TDP-based prior' if source in ('prior', 'none') else 'CodeCarbon TDP estimates'}"
                     ", not measured power")
    return Prediction(
        hardware=d.name, kind=d.kind, calibrated=calibrated, extrapolated=c.extrapolated,
        step_time_s=t, step_energy_j=e,
        est_peak_memory_bytes=int(step.peak_memory_bytes) if step.memory_estimated else None,
        peak_memory_bytes=peak, memory_bytes=int(d.memory_bytes),
        fits=fits_in_memory(peak, d.memory_bytes, d.kind) if peak is not None else None,
        composed=c, notes=tuple(notes), energy_source=source, calibrated_as=trained if calibrated else None,
        measured_by=measured_by(model, trained) if calibrated else None,
        workspace_bytes=workspace,
    )


def measured_by(model: CostModel, trained: str | None) -> str | None:
    """Who measured a trained device: an imported source its descriptor names, else ``flopcast``."""
    if trained is None or trained not in model.hardware:
        return None
    return str((model.hardware[trained]["descriptor"].get("extra") or {}).get("measured_by") or "flopcast")


def run_totals(p: Prediction, batch_size: int, dataset_size: int, epochs: int, region: str | None,
               pue: float) -> dict[str, Any]:
    """Whole-run time, energy and CO2: ``ceil(dataset_size / batch_size) x epochs`` steps.

    ``batch_size`` is the samples one step consumes (micro-batch size x accumulated micro-batches).

    ``run_energy_kwh`` is the devices' (IT) energy; facility energy multiplies it by ``pue`` and
    ``run_co2_kg = run_energy_kwh x pue x intensity``.
    """
    steps = math.ceil(dataset_size / batch_size) * epochs
    intensity, code = carbon_intensity_g_per_kwh(region)
    t, e = p.step_time_s, p.step_energy_j
    kwh = [x * steps / 3.6e6 for x in e]
    return {
        "steps": steps, "run_time_s": t[1] * steps, "run_time_s_p10": t[0] * steps, "run_time_s_p90": t[2] * steps,
        "run_energy_kwh": kwh[1], "run_energy_kwh_p10": kwh[0], "run_energy_kwh_p90": kwh[2],
        "pue": pue, "run_facility_energy_kwh": kwh[1] * pue, "region": code,
        "carbon_intensity_g_per_kwh": intensity, "run_co2_kg": kwh[1] * pue * intensity / 1000.0,
        "run_co2_kg_p10": kwh[0] * pue * intensity / 1000.0, "run_co2_kg_p90": kwh[2] * pue * intensity / 1000.0,
    }


def max_batch_size(fits: Callable[[int], bool], guess: int = 1, limit: int = MAX_BATCH_LIMIT) -> int:
    """Largest batch size ``b <= limit`` with ``fits(b)``, assuming ``fits`` is monotone (0 if 1 does not fit).

    Starts at ``guess`` (e.g. from a linear memory model), gallops to bracket the answer, then bisects;
    each ``fits`` call is an analysis, so a good guess keeps the count near 2.
    """
    cache: dict[int, bool] = {}

    def ok(b: int) -> bool:
        if b not in cache:
            cache[b] = fits(b)
        return cache[b]

    g = min(max(guess, 1), limit)
    if ok(g):
        lo, step = g, 1
        while lo < limit and ok(min(lo + step, limit)):
            lo, step = min(lo + step, limit), step * 2
        if lo >= limit:
            return limit
        hi = min(lo + step, limit)
    else:
        hi, step = g, 1
        while hi > 1 and not ok(max(hi - step, 1)):
            hi, step = max(hi - step, 1), step * 2
        if hi == 1:
            return 0
        lo = max(hi - step, 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def predict_max_batch(model: CostModel, d: HardwareDescriptor, name: str, analyse: Callable[[int], StepAnalysis],
                      batch_size: int, peak_at_batch: int) -> int:
    """Largest batch size whose predicted peak fits ``d``'s memory (analyses at a few batch sizes)."""
    step = analyse(batch_size + 1)
    workspace = blas_workspace_bytes(d, step.ops)  # which ops run, so the workspaces, does not depend on the batch

    def peak(b: int, est: int | None = None) -> int:
        est = analyse(b).peak_memory_bytes if est is None else est
        return int(model.memory.predict(name, d.kind, est)) + workspace

    def fits(b: int) -> bool:
        return fits_in_memory(peak(b), d.memory_bytes, d.kind)

    p0 = peak(batch_size, peak_at_batch)
    p1 = peak(batch_size + 1, step.peak_memory_bytes)
    per_sample = max(p1 - p0, 1.0)
    room = d.memory_bytes - CONTEXT_BYTES.get(d.kind, 0) - p0
    guess = max(1, batch_size + math.floor(room / per_sample))
    return max_batch_size(fits, guess)


def _analyse_config(config: AnalyzeConfig) -> Analysis:
    from flopcast.features.api import analyze_config

    return analyze_config(config)


def traces_by_kind(devices: Sequence[HardwareDescriptor], trace: Callable[[AnalyzeConfig], T],
                   analysis: AnalyzeConfig) -> dict[str, T]:
    """One trace per device kind the devices need (``cuda``/``cpu``: :func:`analysis_device`), keyed by it."""
    out: dict[str, T] = {}
    for d in devices:
        kind = analysis_device(d.kind)
        if kind not in out:
            out[kind] = trace(replace(analysis, device=kind))
    return out


def predict(config: PredictConfig, model: CostModel, analyse: Callable[[AnalyzeConfig], Analysis] = _analyse_config
            ) -> tuple[dict[str, Analysis], list[Prediction]]:
    """Predict the configured step on every configured device.

    Returns:
        The analyses by device kind (``cuda``/``cpu``) and one prediction per device, in the given order.
    """
    model, calibration, source = calibrated_for(config, model)
    devices = [resolve_hardware(h, calibration) for h in config.hardware]
    analyses = traces_by_kind(devices, analyse, config.analysis)
    out = []
    for d in devices:
        device = analysis_device(d.kind)
        a = analyses[device]
        p = predict_on(model, StepAnalysis.of(a), d, config.analysis.precision, config.analysis.mode)
        extra: dict[str, Any] = {}
        if config.dataset_size:
            extra.update(run_totals(p, a.target.samples_per_step, config.dataset_size, config.epochs,
                                    config.region, config.pue))
        if config.max_batch and p.peak_memory_bytes is None:
            extra["max_batch_size"] = None  # no peak-memory estimate to search with (see the note)
        elif config.max_batch:
            def at(b: int, device: str = device) -> StepAnalysis:
                return StepAnalysis.of(analyse(replace(config.analysis, device=device, batch_size=b)))

            name = model.trained_name(d) or d.name
            extra["max_batch_size"] = predict_max_batch(model, d, name, at, config.analysis.batch_size,
                                                        a.peak_memory_bytes)
        if calibration is not None and d is calibration:
            extra["calibration"] = str(source)
        out.append(replace(p, extra={**p.extra, **extra}))
    return analyses, out


def calibrated_for(config: PredictConfig, model: CostModel) -> tuple[CostModel, HardwareDescriptor | None, Path | None]:
    """The model calibrated for the campaign ``predict`` uses, the campaign's descriptor and its folder.

    ``--calibration DIR`` when given (its errors are the user's to see); else, when ``--hardware`` names
    ``local`` and ``config.use_store``, this machine's campaign from the per-user store (``flopcast
    calibrate`` files it there; an unusable one is one warning line and no calibration); else none.
    """
    if config.calibration is not None:
        from flopcast.predictor.calibrated import calibrate_model

        return (*calibrate_model(model, config.calibration), config.calibration)
    if not config.use_store or not any(h.strip().lower() == "local" for h in config.hardware):
        return model, None, None
    from flopcast.calibration.probe import probe_local
    from flopcast.predictor.calibrated import calibrate_from_store

    return calibrate_from_store(model, probe_local()[0])
