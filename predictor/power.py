"""Power priors and the physical energy base of a step: idle power x time + dynamic power x busy time.

Dynamic power of an op is a bounded share of the device's range (TDP - idle), learned from measured
power where a campaign read NVML or RAPL (:class:`~flopcast.predictor.op_model.OpPowerModel`), a prior
otherwise; idle power is measured on calibrated hardware, a share of TDP otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flopcast.calibration.descriptor import HardwareDescriptor

MEASURED_POWER_SOURCES = ("nvml", "rapl")
"""Energy sources that measure (CodeCarbon's TDP model is an estimate, not a measurement)."""

PRIOR_TDP_W = {"gpu": 300.0, "other": 300.0}
"""TDP of a GPU or accelerator whose descriptor has none, W."""
CPU_TDP_PER_CORE_W = 10.0
"""TDP per core of a CPU whose descriptor has none, W."""
IDLE_SHARE = {"gpu": 0.1, "cpu": 0.3, "other": 0.1}
"""Idle power as a share of TDP where it was not measured (H100: ~70 W of 700 W)."""
PRIOR_POWER_SHARE = {"compute": 0.7, "memory": 0.45}
"""Dynamic power share (of TDP - idle) of compute- and memory-bound ops without a power model."""


def tdp_w(d: HardwareDescriptor) -> float:
    """The device's power limit, W (its descriptor's, else a prior by kind and core count)."""
    if d.tdp_w and d.tdp_w > 0:
        return float(d.tdp_w)
    if d.kind == "cpu":
        return CPU_TDP_PER_CORE_W * max(d.compute_units or 1, 1)
    return PRIOR_TDP_W.get(d.kind, 300.0)


def idle_power_w(d: HardwareDescriptor) -> float:
    """Idle power, W: measured where the descriptor has it, else :data:`IDLE_SHARE` x TDP."""
    if d.idle_power_w is not None and d.idle_power_w > 0:
        return float(d.idle_power_w)
    return IDLE_SHARE.get(d.kind, 0.1) * tdp_w(d)


def power_share_target(avg_power_w: np.ndarray, d: HardwareDescriptor) -> np.ndarray:
    """Dynamic power share ``(P - idle) / (TDP - idle)`` of measured average powers, clipped to [0, 1]."""
    idle, tdp = idle_power_w(d), tdp_w(d)
    return np.clip((np.asarray(avg_power_w, float) - idle) / max(tdp - idle, 1e-9), 0.0, 1.0)


def prior_power_share(features: pd.DataFrame) -> np.ndarray:
    """Dynamic power share of ops without a power model: compute-bound ops draw more."""
    compute = features["bound_margin"].to_numpy(float) > 0
    return np.where(compute, PRIOR_POWER_SHARE["compute"], PRIOR_POWER_SHARE["memory"])


def step_energy_base_j(step_time_s: np.ndarray, ops_s: np.ndarray, power_share: np.ndarray,
                       d: HardwareDescriptor) -> np.ndarray:
    """Physical energy of steps, J: idle x step time + share x (TDP - idle) x busy time.

    A GPU is busy for the op time only (a host-bound step leaves it idle between kernels); a CPU runs the
    host work itself, so it is busy for the whole step.

    Args:
        step_time_s: predicted step times, s.
        ops_s: summed op times, s.
        power_share: time-weighted dynamic power share of each step's ops.
        d: the device.
    """
    t = np.asarray(step_time_s, float)
    busy = np.minimum(np.asarray(ops_s, float), t) if d.kind == "gpu" else t
    idle, tdp = idle_power_w(d), tdp_w(d)
    return idle * t + np.asarray(power_share, float) * (tdp - idle) * busy


def energy_with_time_spread(energy_j: np.ndarray, time_s: np.ndarray) -> np.ndarray:
    """Energy quantiles whose interval also carries the step time's uncertainty, J.

    The energy stage is fitted on the physical base at the *measured* step time, so its quantiles say how
    the device's power may differ at a known time; at prediction the time is itself uncertain. The two are
    combined in log space, each side's half-width added in quadrature (independent errors):
    ``lo = mid x exp(-sqrt(ln(mid_e / lo_e)^2 + ln(mid_t / lo_t)^2))``, likewise above.

    Args:
        energy_j: energy quantiles (10 / 50 / 90 %) at the median time, J, shape ``(..., 3)``.
        time_s: step-time quantiles, s, same shape.
    """
    e, t = np.asarray(energy_j, float), np.asarray(time_s, float)
    mid = e[..., 1]
    lo = np.hypot(np.log(mid / e[..., 0]), np.log(t[..., 1] / t[..., 0]))
    hi = np.hypot(np.log(e[..., 2] / mid), np.log(t[..., 2] / t[..., 1]))
    return np.stack([mid * np.exp(-lo), mid, mid * np.exp(hi)], axis=-1)


def power_bounded_j(energy_j: np.ndarray, time_s: np.ndarray, d: HardwareDescriptor) -> np.ndarray:
    """Step energies held between idle power and the power limit over their step times, J.

    A device draws at least its idle power and at most its power limit (TDP: the GPU driver caps board
    power there) while it runs, so ``idle x t <= E <= TDP x t``; a learned correction on top of the physical
    base can leave that range for steps unlike those it was fitted on.

    Args:
        energy_j: energy quantiles, J, any shape.
        time_s: the matching step-time quantiles, s, same shape.
        d: the device.
    """
    t = np.asarray(time_s, float)
    return np.clip(np.asarray(energy_j, float), idle_power_w(d) * t, tdp_w(d) * t)
