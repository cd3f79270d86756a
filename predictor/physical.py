"""Hypothetical and non-electronic accelerators priced by a physical model, not the learned one.

A descriptor whose ``extra.physical`` section is set (e.g. a photonic matrix engine with an electronic host)
describes a device no campaign has measured and no op model can transfer to: each op runs on the engine its
category is placed on, for its roofline time at a stated utilisation, and draws ``MACs x energy per MAC +
bytes x energy per byte`` plus the engines' static power over the step. Predictions are marked
``calibrated: false`` and carry the descriptor's assumptions as notes. The format is documented in
``predictor/hypothetical/README.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flopcast.calibration.descriptor import DTYPE_KEYS, DescriptorError, HardwareDescriptor
from flopcast.features.attention_mask import executed_flops
from flopcast.predictor.featurize import is_free, roofline_time_s

ENGINE_FIELDS = ("peak_flops_per_s", "memory_bandwidth_bytes_per_s", "energy_per_mac_j", "energy_per_byte_j",
                 "static_power_w")
"""Fields every engine (the accelerator itself and its host) must state, each > 0 (static power >= 0)."""
DEFAULT_UTILISATION = (1.0, 0.5, 0.25)
"""Share of the roofline rate reached at the 10 / 50 / 90 % time quantiles when a descriptor states none: the
fast end is the physical bound itself, the slow end a quarter of it (an uncalibrated device's honest range)."""
DEFAULT_ENERGY_FACTOR = 2.0
"""Factor by which the dynamic energy may be below (10 %) or above (90 %) its stated figures."""
ACCELERATOR = "accelerator"
"""Engine name of the descriptor's own figures (the top-level peak, bandwidth and memory)."""


class PhysicalDescriptorError(DescriptorError):
    """A physical descriptor misses a field or holds a zero or negative value (the field is named)."""


@dataclass(frozen=True)
class Engine:
    """One compute engine of a physical device.

    Attributes:
        name: ``accelerator`` or ``host``.
        peak_flops_per_s: peak FLOP/s per dtype key (``fp32``, ``bf16``, ``int8``, ...).
        bandwidth_bytes_per_s: memory bandwidth the engine's ops read and write at, bytes/s.
        energy_per_mac_j: energy of one multiply-accumulate (2 FLOPs), J.
        energy_per_byte_j: energy of one byte moved to or from memory, J.
        static_power_w: power drawn whether busy or not, W.
    """

    name: str
    peak_flops_per_s: dict[str, float]
    bandwidth_bytes_per_s: float
    energy_per_mac_j: float
    energy_per_byte_j: float
    static_power_w: float

    def peak_for(self, dtype: str) -> float:
        """Peak FLOP/s for a torch dtype name, falling back to the engine's fp32 entry, then to its highest."""
        key = DTYPE_KEYS.get(dtype, dtype)
        peaks = self.peak_flops_per_s
        return float(peaks.get(key) or peaks.get("fp32") or max(peaks.values()))


@dataclass(frozen=True)
class PhysicalDevice:
    """The physical model's view of a descriptor.

    Attributes:
        engines: engines by name (``accelerator`` always, ``host`` when the descriptor has one).
        placement: op category -> engine name; categories not listed run on ``default_engine``.
        default_engine: engine of unlisted categories.
        utilisation: share of the roofline rate at the 10 / 50 / 90 % time quantiles (fast to slow).
        energy_factor: spread of the dynamic energy (10 % = /factor, 90 % = x factor).
        per_op_overhead_s: fixed time per op at full utilisation (dispatch, conversion set-up), s.
        assumptions: what the figures assume, one line each (printed with every prediction).
    """

    engines: dict[str, Engine]
    placement: dict[str, str]
    default_engine: str
    utilisation: tuple[float, float, float]
    energy_factor: float
    per_op_overhead_s: float
    assumptions: tuple[str, ...]

    @property
    def static_power_w(self) -> float:
        """Static power of all engines together, W."""
        return sum(e.static_power_w for e in self.engines.values())


def is_physical(d: HardwareDescriptor) -> bool:
    """Whether ``d`` is priced by the physical model (its descriptor has an ``extra.physical`` section)."""
    return isinstance(d.extra, dict) and "physical" in d.extra


def _positive(section: dict[str, Any], key: str, where: str, allow_zero: bool = False) -> float:
    if key not in section:
        raise PhysicalDescriptorError(f"{where}: missing field {key}")
    value = section[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise PhysicalDescriptorError(f"{where}: field {key} must be a number {bound}, not {value!r}")
    return float(value)


def _peaks(section: dict[str, Any], where: str) -> dict[str, float]:
    peaks = section.get("peak_flops_per_s")
    if not isinstance(peaks, dict) or not peaks:
        raise PhysicalDescriptorError(f"{where}: missing field peak_flops_per_s (FLOP/s per dtype)")
    return {k: _positive(peaks, k, f"{where}.peak_flops_per_s") for k in peaks}


def _engine(name: str, section: dict[str, Any], where: str) -> Engine:
    return Engine(name=name, peak_flops_per_s=_peaks(section, where),
                  bandwidth_bytes_per_s=_positive(section, "memory_bandwidth_bytes_per_s", where),
                  energy_per_mac_j=_positive(section, "energy_per_mac_j", where),
                  energy_per_byte_j=_positive(section, "energy_per_byte_j", where),
                  static_power_w=_positive(section, "static_power_w", where, allow_zero=True))


def physical_device(d: HardwareDescriptor) -> PhysicalDevice:
    """Read and check the physical section of ``d``.

    Raises:
        PhysicalDescriptorError: a missing, zero or negative field (named with its path), an unknown engine
            in the placement, or a utilisation outside (0, 1].
    """
    p = d.extra["physical"]
    where = f"{d.name}: extra.physical"
    if not isinstance(p, dict):
        raise PhysicalDescriptorError(f"{where} must be an object")
    top = {"peak_flops_per_s": d.peak_flops_per_s, "memory_bandwidth_bytes_per_s": d.memory_bandwidth_bytes_per_s,
           **{k: p[k] for k in ("energy_per_mac_j", "energy_per_byte_j", "static_power_w") if k in p}}
    _positive({"memory_bytes": d.memory_bytes}, "memory_bytes", d.name)
    engines = {ACCELERATOR: _engine(ACCELERATOR, top, where)}
    if "host" in p:
        engines["host"] = _engine("host", p["host"], f"{where}.host")
    placement = {str(k): str(v) for k, v in p.get("placement", {}).items()}
    default = placement.pop("default", ACCELERATOR)
    for category, engine in [*placement.items(), ("default", default)]:
        if engine not in engines:
            raise PhysicalDescriptorError(f"{where}.placement: {category} runs on {engine!r}, which the descriptor "
                                          f"does not describe ({', '.join(engines)})")
    util = p.get("utilisation", list(DEFAULT_UTILISATION))
    if not isinstance(util, list) or len(util) != 3:
        raise PhysicalDescriptorError(f"{where}: field utilisation must be three shares [fast, median, slow]")
    shares = tuple(_positive({"utilisation": u}, "utilisation", where) for u in util)
    if any(u > 1 for u in shares) or not shares[0] >= shares[1] >= shares[2]:
        raise PhysicalDescriptorError(f"{where}: utilisation {util} must fall from <= 1 (fast) to the slow end")
    factor = _positive(p, "energy_factor", where) if "energy_factor" in p else DEFAULT_ENERGY_FACTOR
    overhead = _positive(p, "per_op_overhead_s", where, allow_zero=True) if "per_op_overhead_s" in p else 0.0
    return PhysicalDevice(engines, placement, default, (shares[0], shares[1], shares[2]), max(factor, 1.0), overhead,
                          tuple(str(a) for a in p.get("assumptions", ())))


@dataclass(frozen=True)
class PhysicalOps:
    """Each op of a step on a physical device.

    Attributes:
        work: the ops that do work (op-table columns), in step order.
        engine: engine each op runs on.
        roofline_s: roofline time of each op on its engine, s.
        q: time quantiles (10 / 50 / 90 %) of each op, s, shape ``(n, 3)``.
        dynamic_j: dynamic energy of each op (MACs and bytes), J.
    """

    work: pd.DataFrame
    engine: np.ndarray
    roofline_s: np.ndarray
    q: np.ndarray
    dynamic_j: np.ndarray


def physical_op_times(ops: pd.DataFrame, device: PhysicalDevice) -> PhysicalOps:
    """Time and dynamic energy of every op of a step (the op-table columns of ``StepAnalysis.ops``)."""
    work = ops[~is_free(ops)]
    category = work["category"].astype(str).to_numpy()
    engine = np.array([device.placement.get(c, device.default_engine) for c in category], dtype=object)
    flops = np.asarray(executed_flops(work), float)
    nbytes = (work["bytes_read"].astype(float) + work["bytes_written"].astype(float)).to_numpy()
    e = [device.engines[n] for n in engine]
    peak = np.array([x.peak_for(t) for x, t in zip(e, work["dtype"].astype(str), strict=True)], float)
    bw = np.array([x.bandwidth_bytes_per_s for x in e], float)
    roof = roofline_time_s(flops, nbytes, peak, bw)
    # the utilisation spreads the whole op, its fixed overhead too: that figure is assumed as much as the peak
    q = (roof[:, None] + device.per_op_overhead_s) / np.array(device.utilisation)[None, :]
    dyn = np.array([x.energy_per_mac_j for x in e]) * flops / 2 + np.array([x.energy_per_byte_j for x in e]) * nbytes
    return PhysicalOps(work, engine, roof, q, dyn)


def physical_step(ops: pd.DataFrame, device: PhysicalDevice) -> dict[str, Any]:
    """A step's time and energy quantiles on a physical device.

    Energy = dynamic (MACs x energy per MAC + bytes x energy per byte, spread by ``energy_factor``) + the engines'
    static power x the step time at the same quantile.

    Returns:
        ``time_s`` and ``energy_j`` (10 / 50 / 90 % tuples), ``ops`` (:class:`PhysicalOps`), ``roofline_s``,
        ``category_s`` (median time per category, s) and ``engine_s`` (median time per engine, s).
    """
    t = physical_op_times(ops, device)
    time_q = tuple(float(x) for x in t.q.sum(axis=0))
    dyn = float(t.dynamic_j.sum())
    f = device.energy_factor
    energy_q = tuple(float(d + device.static_power_w * s) for d, s in zip((dyn / f, dyn, dyn * f), time_q, strict=True))
    cats = pd.Series(t.q[:, 1], index=t.work.index).groupby(t.work["category"].astype(str).to_numpy()).sum()
    engines = pd.Series(t.q[:, 1]).groupby(t.engine).sum()
    return {"time_s": time_q, "energy_j": energy_q, "ops": t, "roofline_s": float(t.roofline_s.sum()),
            "category_s": {str(k): float(v) for k, v in cats.items()},
            "engine_s": {str(k): float(v) for k, v in engines.items()}}


def assumption_notes(d: HardwareDescriptor, device: PhysicalDevice) -> list[str]:
    """The notes a physical prediction carries: what it is, then the descriptor's own assumptions."""
    u = device.utilisation
    placed = ", ".join(f"{c} on {e}" for c, e in sorted(device.placement.items()))
    head = (f"physical model, not calibrated: roofline time + {device.per_op_overhead_s:g} s per op at "
            f"{u[0]:.0%}/{u[1]:.0%}/{u[2]:.0%} utilisation "
            f"(10/50/90 %), energy = MACs x energy per MAC + bytes x energy per byte (x/÷ {device.energy_factor:g}) "
            f"+ static {device.static_power_w:g} W x time; {placed or 'every op on the accelerator'}"
            f"{'' if not placed else f', the rest on {device.default_engine}'}")
    return [head, *device.assumptions]


def predict_physical(model: Any, step: Any, d: HardwareDescriptor) -> Any:
    """A :class:`~flopcast.predictor.predict.Prediction` of one analysed step on a physical device.

    Args:
        model: the cost model (only its memory stage is used: for a device it never saw, the analysis' peak).
        step: the step (:class:`~flopcast.predictor.analysis_cache.StepAnalysis`).
        d: a descriptor with an ``extra.physical`` section.

    Raises:
        PhysicalDescriptorError: the physical section is incomplete or invalid.
    """
    from flopcast.predictor.compose import LAUNCH_BOUND_FACTOR, ComposedStep
    from flopcast.predictor.memory import fits_in_memory
    from flopcast.predictor.predict import Prediction

    device = physical_device(d)
    s = physical_step(step.ops, device)
    t: PhysicalOps = s["ops"]
    n = len(t.work)
    bound = t.q[:, 1] < LAUNCH_BOUND_FACTOR * device.per_op_overhead_s if device.per_op_overhead_s else np.zeros(n)
    composed = ComposedStep(
        ops_s=s["time_s"][1], ops_p10_s=s["time_s"][0], ops_p90_s=s["time_s"][2], n_ops=n, n_calls=len(step.ops),
        n_python_calls=n, launch_bound_share=float(np.mean(bound)) if n else 0.0, power_share=0.0,
        roofline_s=s["roofline_s"], category_s=s["category_s"])
    peak = int(model.memory.predict(d.name, d.kind, step.peak_memory_bytes)) if step.memory_estimated else None
    return Prediction(
        hardware=d.name, kind=d.kind, calibrated=False, extrapolated=False, step_time_s=s["time_s"],
        step_energy_j=s["energy_j"],
        est_peak_memory_bytes=int(step.peak_memory_bytes) if step.memory_estimated else None,
        peak_memory_bytes=peak, memory_bytes=int(d.memory_bytes),
        fits=fits_in_memory(peak, d.memory_bytes, d.kind) if peak is not None else None,
        composed=composed, notes=tuple(assumption_notes(d, device)), energy_source="physical-model",
        extra={"physical_model": True, "time_by_engine_s": s["engine_s"]})
