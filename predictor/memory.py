"""Peak memory: the analysis estimate corrected by a fitted allocator overhead, and whether a step fits.

Measured peaks (``max_memory_allocated`` on GPUs, profiler peaks on CPUs) are fitted as
``measured = scale x estimate + offset`` per hardware (pooled per device kind, identity for the rest).
The campaign measures a step's own allocations (the peak above what was allocated before it), so the fit
does not see what a GPU process allocates once and keeps: the cuBLAS / cuBLASLt workspaces
(:func:`blas_workspace_bytes`), which ``max_memory_allocated`` of a training run counts from its first step
on. A prediction adds them to the fitted step peak.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.op_model import check_fitted
from flopcast.predictor.step_model import MIN_STEPS, MIN_STEPS_FULL

CONTEXT_BYTES = {"gpu": 512 * 2**20, "cpu": 0, "other": 0}
"""Device memory taken outside the caching allocator (CUDA context, library handles), bytes."""

MIB = 2**20
CUBLAS_WORKSPACE_BYTES = {"sm90": 4096 * 8 * 1024, "cuda": 4096 * 1024 * 2 + 16 * 1024 * 8,
                          "rocm-gfx94": 128 * MIB, "rocm": 32 * MIB}
"""torch's default cuBLAS (hipBLAS) workspace per (handle, stream), bytes: 32 MiB on compute capability 9.0
(H100, H200), ``:4096:2:16:8`` = 8 MiB + 128 KiB on other NVIDIA GPUs, 128 / 32 MiB on ROCm gfx94x / others
(``aten/src/ATen/cuda/CublasHandlePool.cpp``, ``parseChosenWorkspaceSize``); ``CUBLAS_WORKSPACE_CONFIG``
overrides it as it does in torch."""
CUBLASLT_WORKSPACE_BYTES = {"cuda": 1 * MIB, "rocm": 76 * MIB}
"""torch's default cuBLASLt (hipBLASLt) workspace per (handle, stream), bytes (``CUBLASLT_WORKSPACE_SIZE``, KiB,
overrides it); separate from the cuBLAS one unless ``TORCH_CUBLASLT_UNIFIED_WORKSPACE=1``."""
BLAS_OPS = frozenset(("aten.mm", "aten.bmm", "aten.mv", "aten.dot", "aten.vdot", "aten.addmm", "aten.baddbmm",
                      "aten.addbmm", "aten.addmv", "aten._addmm_activation", "aten._scaled_mm"))
"""Ops whose CUDA kernels run through a cuBLAS handle (its workspace is allocated at the handle's first use)."""
BLASLT_OPS = frozenset(("aten.addmm", "aten._addmm_activation", "aten._scaled_mm"))
"""Ops torch runs through cuBLASLt where it can (bias / activation epilogues, fp8): the Lt workspace too."""
HOPPER_NAMES = ("h100", "h200", "h800", "h20", "gh200")
"""Names of compute-capability-9.0 GPUs, for descriptors without a probed ``extra.compute_capability``."""

SCALE_GRID = tuple(np.round(np.linspace(0.8, 1.5, 29), 4).tolist())
"""Scales tried by the fit (the identity is always a candidate)."""


class MemoryModel:
    """Peak memory from the static estimate: ``scale x estimate + offset`` per hardware or device kind.

    Args:
        min_steps: fewest measured steps for a fit of its own.
    """

    stages_: dict[str, dict[str, float]] | None = None

    def __init__(self, min_steps: int = MIN_STEPS):
        self.min_steps = min_steps

    def fit(self, frame: pd.DataFrame, measured_bytes: np.ndarray) -> MemoryModel:
        """Fit on steps with a measured peak.

        Args:
            frame: ``hardware``, ``kind`` and ``est_peak_memory_bytes`` per step.
            measured_bytes: measured peaks, bytes (rows <= 0 or NaN are skipped).

        Returns:
            ``self``.
        """
        measured = np.asarray(measured_bytes, float)
        est = frame["est_peak_memory_bytes"].to_numpy(float)
        ok = np.isfinite(measured) & (measured > 0) & np.isfinite(est) & (est > 0)
        self.stages_ = {}
        keys = [(f"kind:{k}", frame["kind"].to_numpy() == k) for k in frame["kind"].unique()]
        keys += [(str(h), frame["hardware"].to_numpy() == h) for h in frame["hardware"].unique()]
        for key, rows in keys:
            rows = rows & ok
            if rows.sum() >= self.min_steps:
                self.stages_[key] = _fit_affine(est[rows], measured[rows])
        return self

    def predict(self, hardware: str, kind: str, est_bytes: float) -> float:
        """Predicted peak of one step, bytes.

        Raises:
            NotFittedError: before ``fit``.
        """
        check_fitted(self, "stages_")
        s = self.stages_.get(hardware) or self.stages_.get(f"kind:{kind}") or {"scale": 1.0, "offset_bytes": 0.0}
        return float(max(s["scale"] * est_bytes + s["offset_bytes"], 0.5 * est_bytes))

    def is_calibrated(self, hardware: str) -> bool:
        """Whether ``hardware`` has a fit of its own."""
        check_fitted(self, "stages_")
        return hardware in self.stages_

    def state(self) -> dict[str, Any]:
        """JSON-able learned state."""
        check_fitted(self, "stages_")
        return {"stages": self.stages_}

    def set_state(self, state: Mapping[str, Any]) -> MemoryModel:
        """Restore from :meth:`state`."""
        self.stages_ = {k: {n: float(v) for n, v in s.items()} for k, s in state["stages"].items()}
        return self


def _fit_affine(est: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """``measured ~ scale x est + offset`` minimising the median absolute relative error.

    Robust on purpose: a few steps far above the estimate (e.g. cuDNN convolution workspaces of fp32
    convs) must not pull every other prediction up. Candidates are the identity and each scale of
    :data:`SCALE_GRID` with the median residual as offset; with fewer than ``MIN_STEPS_FULL`` rows the scale
    stays 1 and only the offset (allocator/context bytes) is tried. The identity wins ties.
    """
    scales = SCALE_GRID if len(est) >= MIN_STEPS_FULL else (1.0,)
    best = (_median_rel_error(est, measured, 1.0, 0.0), 1.0, 0.0)
    for scale in scales:
        offset = float(np.median(measured - scale * est))
        err = _median_rel_error(est, measured, scale, offset)
        if err < best[0] - 1e-12:
            best = (err, float(scale), offset)
    err, scale, offset = best
    return {"scale": scale, "offset_bytes": offset, "rows": float(len(est)), "median_abs_pct_error": err * 100}


def _median_rel_error(est: np.ndarray, measured: np.ndarray, scale: float, offset: float) -> float:
    return float(np.median(np.abs((scale * est + offset) / measured - 1.0)))


def fits_in_memory(peak_bytes: float, memory_bytes: float, kind: str) -> bool:
    """Whether a step's peak plus the device's context overhead fits in its memory."""
    return peak_bytes + CONTEXT_BYTES.get(kind, 0) <= memory_bytes


def workspace_arch(d: HardwareDescriptor) -> str | None:
    """Which default workspace torch picks on ``d``: ``sm90``, ``cuda``, ``rocm-gfx94``, ``rocm``; ``None`` off GPUs.

    The probed compute capability where the descriptor has it (``extra.compute_capability``), else the name:
    a catalog entry of a Hopper GPU (:data:`HOPPER_NAMES`) or an AMD Instinct MI300 (gfx942).
    """
    if d.kind != "gpu":
        return None
    text = f"{d.name} {d.vendor_name}".lower()
    if "amd" in text or "instinct" in text or d.name.startswith("mi"):
        return "rocm-gfx94" if "mi300" in text or "mi325" in text or "mi355" in text else "rocm"
    cc = str((d.extra or {}).get("compute_capability", ""))
    if cc:
        return "sm90" if cc == "9.0" else "cuda"
    return "sm90" if set(re.split(r"[^a-z0-9]+", text)) & set(HOPPER_NAMES) else "cuda"


def _cublas_config_bytes(text: str) -> int | None:
    """Bytes of a ``CUBLAS_WORKSPACE_CONFIG`` value (``:SIZE_KIB:COUNT`` pairs), ``None`` if it has none."""
    pairs = re.findall(r":([0-9]+):([0-9]+)", text)
    return sum(int(kib) * 1024 * int(n) for kib, n in pairs) if pairs else None


def blas_workspace_bytes(d: HardwareDescriptor, ops: pd.DataFrame, env: Mapping[str, str] | None = None) -> int:
    """Bytes of the cuBLAS / cuBLASLt workspaces a GPU process holds in the caching allocator from its first step on.

    torch allocates one workspace per (cuBLAS handle, stream) at the handle's first use in a thread, through the
    caching allocator, and keeps it: ``max_memory_allocated`` counts it. Handles are per thread, and a train
    step's backward runs on autograd's device thread: forward and optimizer ops use the main thread's handle,
    backward ops another, so a train step with matmuls both ways holds two (2 x 32 MiB on an H100 / H200),
    an inference step one. The cuBLASLt workspace (1 MiB) comes on top on a thread that runs an op torch
    sends through cuBLASLt (``addmm`` with a bias, ...).

    Args:
        d: the device (no workspace on a CPU).
        ops: the step's op table (``op`` and ``phase`` columns).
        env: environment with torch's overrides (``CUBLAS_WORKSPACE_CONFIG``, ``CUBLASLT_WORKSPACE_SIZE`` in KiB,
            ``TORCH_CUBLASLT_UNIFIED_WORKSPACE``); ``None``: this process's.

    Returns:
        The workspace bytes, 0 on a CPU or for a step without matmuls.
    """
    arch = workspace_arch(d)
    if arch is None or not len(ops):
        return 0
    env = os.environ if env is None else env
    blas = _cublas_config_bytes(env.get("CUBLAS_WORKSPACE_CONFIG", "")) or CUBLAS_WORKSPACE_BYTES[arch]
    platform = "rocm" if arch.startswith("rocm") else "cuda"
    lt_kib = env.get("CUBLASLT_WORKSPACE_SIZE", "")
    lt = int(lt_kib) * 1024 if lt_kib.isdigit() else CUBLASLT_WORKSPACE_BYTES[platform]
    if platform == "cuda":
        lt = min(lt, blas)  # torch caps the Lt workspace at the cuBLAS one
        if env.get("TORCH_CUBLASLT_UNIFIED_WORKSPACE", "").lower() in ("1", "true", "yes", "on"):
            lt = 0  # Lt shares the cuBLAS workspace
    op, backward = ops["op"].astype(str), ops["phase"].astype(str).eq("backward")
    total = 0
    for on_thread in (~backward, backward):  # the main thread (forward, optimizer), autograd's device thread
        if op[on_thread].isin(BLAS_OPS).any():
            total += blas + (lt if op[on_thread].isin(BLASLT_OPS).any() else 0)
    return total
