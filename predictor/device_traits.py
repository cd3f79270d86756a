"""Spec-sheet traits of a device that explain how much of its datasheet peak it sustains.

Two GPUs with the same datasheet FP32 peak can sustain very different shares of it: a 70 W T4 or L4 drops
from its boost clock towards its base clock under a dense kernel (power-limited), while an A100 or V100 stays
near boost; Ampere GA10x / Ada / Hopper SMs count 128 FP32 lanes that a GEMM cannot all keep busy, Volta /
Turing / GA100 count 64; a large L2 per SM keeps tiles of big GEMMs on chip. These are known for every catalog
GPU (``extra`` of its catalog entry), measured or not, so the op model can learn them from the GPUs with data
and carry them to the ones without.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from flopcast.calibration.descriptor import HardwareDescriptor

TRAIT_NAMES = ("hw_base_ratio", "hw_lanes", "hw_log_l2_per_cu", "hw_log_w_per_cu_ghz", "hw_cc")
"""Feature columns: base / boost clock, FP32 lanes per SM, log10 L2 bytes per SM, log10 W per SM-GHz at the
power limit, compute capability (major + minor / 10); NaN where unknown (CPUs, AMD compute capability)."""


@lru_cache(maxsize=64)
def _catalog_extra(vendor_name: str) -> dict[str, Any]:
    from flopcast.calibration.catalog import load_catalog, match_vendor_name

    name = match_vendor_name(vendor_name) if vendor_name else None
    return dict(load_catalog()[name].extra) if name else {}


def device_extra(d: HardwareDescriptor) -> dict[str, Any]:
    """``d.extra`` completed by the catalog entry of the same vendor name (a probed or released descriptor)."""
    return {**_catalog_extra(d.vendor_name), **(d.extra or {})} if d.kind == "gpu" else dict(d.extra or {})


def fp32_issue_share(d: HardwareDescriptor) -> float:
    """Share of a GPU's datasheet FP32 lanes that a kernel can issue FP32 work to every cycle.

    Ampere GA10x and Ada SMs count 128 FP32 lanes, but 64 of them execute either FP32 or INT32: a GEMM's
    integer address work takes them, so its FP32 rate is bound by the 64 dedicated lanes (an L4 sustains about
    a third of its datasheet FP32 peak; Hopper's 128 lanes are all FP32). 1 where the catalog does not say.
    """
    extra = device_extra(d)
    lanes, dedicated = _number(extra.get("fp32_lanes_per_cu")), _number(extra.get("fp32_dedicated_lanes_per_cu"))
    return dedicated / lanes if lanes > 0 and 0 < dedicated <= lanes else 1.0


def traits(d: HardwareDescriptor) -> dict[str, float]:
    """The :data:`TRAIT_NAMES` values of a device (NaN where the spec sheet does not say)."""
    extra = device_extra(d)
    cu, clock = float(d.compute_units or 0), float(d.clock_hz or 0)
    base = _number(extra.get("base_clock_hz"))
    l2 = _number(extra.get("l2_cache_bytes"))
    cc = str(extra.get("compute_capability") or "")
    return {
        "hw_base_ratio": base / clock if base > 0 and clock > 0 else math.nan,
        "hw_lanes": _number(extra.get("fp32_lanes_per_cu")) or math.nan,
        "hw_log_l2_per_cu": math.log10(l2 / cu) if l2 > 0 and cu > 0 else math.nan,
        "hw_log_w_per_cu_ghz": (math.log10(d.tdp_w / (cu * clock / 1e9))
                                if d.tdp_w and cu > 0 and clock > 0 else math.nan),
        "hw_cc": _compute_capability(cc),
    }


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _compute_capability(text: str) -> float:
    major, _, minor = text.partition(".")
    return int(major) + int(minor or 0) / 10 if major.isdigit() and (minor or "0").isdigit() else math.nan


def software_stack(d: HardwareDescriptor) -> str:
    """The GPU software stack a device runs under, ``cuda`` or ``rocm`` ("" for a CPU or an unknown GPU).

    A framework's backward kernels are its vendor's libraries (cuBLAS / cuDNN against rocBLAS / MIOpen): how
    much slower a training step runs than its forward ops suggest is a property of the stack as much as of the
    chip (:meth:`flopcast.predictor.step_model._StageSet._fit_stacks`).
    """
    if d.kind != "gpu":
        return ""
    name = (d.vendor_name or d.name).lower()
    if device_extra(d).get("compute_capability") or "nvidia" in name or "tesla" in name:
        return "cuda"
    if "amd" in name or "instinct" in name or "radeon" in name:
        return "rocm"
    return ""
