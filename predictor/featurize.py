"""Op features for the cost model: work, shapes and parallelism of an op plus its hardware, in log space.

Input is an op table (``OP_COLUMNS``: an ``analyze`` op table or microbenchmark rows) and one hardware
descriptor. A GPU's roofline uses its *spec* values: a GPU is described by its spec sheet only (peaks,
bandwidth, SMs, clocks, L2, power limit: :mod:`flopcast.predictor.device_traits`), the same for a GPU with
measurements and one without, so that what the op model learns from measured GPUs carries to the others. A
CPU's spec values are guesses (a probed CPU's bandwidth, turbo under load: our 2-core VMs' probes say 10 GB/s
where they stream 38-66 GB/s), so its measured ceilings enter as efficiency features (measured / spec, imputed
for CPUs never measured) and its roofline is taken at the ceilings it sustains (spec x efficiency): an op's
ratio to that roofline is then about the op, not about how wrong the CPU's guessed spec is (the 196 KB GEMV of
each step of a GRU was priced at 22 us from a 10 GB/s roofline, 8 us now; the GRU classifier's inference ops
on the Zen 5 VM sum to 2.4 ms against 2.5 ms measured, 6.2 ms before).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flopcast.calibration.descriptor import HardwareDescriptor, peak_key
from flopcast.features.attention_mask import executed_flops
from flopcast.predictor.device_traits import TRAIT_NAMES, fp32_issue_share, traits
from flopcast.predictor.first_touch import first_touch_s
from flopcast.predictor.shape_cells import parse_shapes

TILE_ELEMENTS = {"matmul": 128 * 128, "conv": 128 * 128, "attention": 128 * 64, "rnn": 128 * 128}
"""Output elements one thread block (GPU) or task (CPU) computes, by category; others use :data:`DEFAULT_TILE`."""
DEFAULT_TILE = 256 * 4
GEMM_TILES = (64, 128, 256)
"""Square output tiles of a GEMM-like op (matmul, conv) whose wave quantisation is a feature: a GEMM library
picks among tiles of about these sides, and an output of ``m x n`` runs ``ceil(m / t) x ceil(n / t)`` blocks
per batch over the SMs in waves; the last, partial wave idles the rest."""

PRIOR_LAUNCH_OVERHEAD_S = {"gpu": 5e-6, "cpu": 2e-6, "other": 5e-6}
"""Launch/dispatch overhead of a device kind that no device of the model measured, s (the last resort: a device
without microbenchmark rows or a measured ``launch_overhead_s`` gets its kind's fitted overheads)."""

CATEGORICAL = ("op", "category", "phase", "dtype")
NUMERIC = (
    "log_flops", "log_bytes", "log_ai", "log_out_numel", "log_max_dim", "log_min_dim", "log_red", "n_inputs",
    "out_rank", "itemsize", "log_tiles", "log_waves", "wave_eff", *(f"wave_eff_{t}" for t in GEMM_TILES),
    "hw_gpu", "hw_log_peak", "hw_log_bw", "hw_log_cu", "hw_log_clock", "hw_log_mem", "hw_log_launch",
    "hw_log_ridge", "hw_log_bw_per_cu", "hw_peak_eff", "hw_bw_eff", *TRAIT_NAMES,
    "log_t_compute", "log_t_memory", "log_t_roof", "bound_margin", "log_roof_over_launch",
)  # fmt: skip
FEATURES = (*NUMERIC, *CATEGORICAL)
"""Feature columns, in model order."""

GPU_IDENTITY_FEATURES = ("hw_log_peak", "hw_log_bw", "hw_log_cu", "hw_log_clock", "hw_log_mem", "hw_log_launch",
                         "hw_log_ridge", "hw_log_bw_per_cu", "hw_base_ratio", "hw_lanes", "hw_log_w_per_cu_ghz")
"""Features that tell one GPU from another: hidden (missing) on GPU rows, so that the trees learn what GPUs
share (shapes against the roofline, waves over the SMs) and a GPU's own level is its device offset
(:class:`~flopcast.predictor.op_model.OpTimeModel`). A GPU keeps two traits of its generation, the compute
capability and L2 bytes per SM (newer SMs run reductions and small batched GEMMs closer to their peak; a large
L2 holds their operands): an H100 is then read like the H200 of its generation. CPU rows keep them all."""

GEMM_OPS = ("aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm")
"""One GEMM kernel family under four names: the op model sees them as ``aten.mm`` in the pass-independent
phase ``any`` (a bias epilogue, a batch dim and a backward pass's transposed operands are in the shapes, not in
the kernel's name), so GEMMs measured in any of these forms price every other."""

EXTRAPOLATION_FEATURES = ("log_flops", "log_bytes", "hw_log_peak", "hw_log_bw", "hw_log_cu", "hw_cc",
                          "hw_log_l2_per_cu")
"""Features whose training range is recorded per device kind (a GPU is judged against the GPUs trained on, a
CPU against the CPUs): a prediction outside it is flagged ``extrapolated``. The op sizes first, then the
device's spec-sheet numbers (peak, bandwidth, SMs or cores, generation, L2 per SM; NaN ones are not judged)."""


def device_kind_of(features: pd.DataFrame) -> np.ndarray:
    """Each featurized row's device kind as the ranges key it (``gpu`` or ``cpu``)."""
    return np.where(features["hw_gpu"].to_numpy(float) > 0.5, "gpu", "cpu")


def feature_ranges(features: pd.DataFrame) -> dict[str, dict[str, list[float]]]:
    """Per device kind, the [min, max] of each :data:`EXTRAPOLATION_FEATURES` over the rows (NaN ignored)."""
    kinds = device_kind_of(features)
    out: dict[str, dict[str, list[float]]] = {}
    for kind in np.unique(kinds):
        rows = features[kinds == kind]
        out[str(kind)] = {k: [float(rows[k].min()), float(rows[k].max())] for k in EXTRAPOLATION_FEATURES
                          if rows[k].notna().any()}
    return out

_EPS = 1e-30


@dataclass(frozen=True)
class HardwareView:
    """The numbers of one descriptor that features need, with priors filled in.

    Attributes:
        descriptor: the source descriptor.
        launch_overhead_s: fitted or measured launch overhead, or the kind's prior, s.
        peak_eff: measured / spec peak per dtype key (NaN where not measured).
        bw_eff: measured / spec bandwidth (NaN where not measured).
        traits: spec-sheet traits (:func:`flopcast.predictor.device_traits.traits`).
        backward_overhead_s: the fixed cost of one microbenchmarked backward, s: a backward row times a whole
            ``torch.autograd.grad`` call from Python (graph walk, engine hand-off, on CUDA the device thread),
            which costs several forward launches and which a step's backward, run by the engine in C++, does
            not pay per op. NaN: the launch overhead.
        overhead_measured: whether ``launch_overhead_s`` is this device's own (fitted from its rows or measured by
            ``hardware probe --measure``), not its kind's or the prior.
    """

    descriptor: HardwareDescriptor
    launch_overhead_s: float
    peak_eff: dict[str, float]
    bw_eff: float
    traits: dict[str, float]
    backward_overhead_s: float = math.nan
    overhead_measured: bool = True

    def row_overheads_s(self, features: pd.DataFrame) -> np.ndarray:
        """The overhead each featurized row's time includes, s: the backward call's for backward rows.

        GEMMs are one family in any pass (their ``phase`` feature is ``any``) and keep the launch overhead.
        """
        backward = features["phase"].astype(str).to_numpy() == "backward"
        own = self.backward_overhead_s if np.isfinite(self.backward_overhead_s) else self.launch_overhead_s
        return np.where(backward, own, self.launch_overhead_s)

    @classmethod
    def of(cls, d: HardwareDescriptor, launch_overhead_s: float | None = None,
           imputed_eff: Mapping[str, float] | None = None, backward_overhead_s: float | None = None
           ) -> HardwareView:
        """View of ``d``; ``launch_overhead_s`` overrides the descriptor's, ``imputed_eff`` fills missing efficiencies.

        A GPU's efficiencies are unknown (NaN), measured or not: a GPU is described by its spec sheet, and its
        measured level lives in the op model's device offsets.

        Args:
            d: the descriptor.
            launch_overhead_s: a fitted overhead for this device, s (``None``: measured, else prior).
            imputed_eff: ``peak`` and ``bw`` efficiencies to use where ``d`` has no measurement (and the kind's
                fitted ``launch_overhead_s`` and ``backward_overhead_s``).
            backward_overhead_s: a fitted backward-call overhead for this device, s (``None``: the kind's).
        """
        imputed = dict(imputed_eff or {})
        overhead = (launch_overhead_s or d.launch_overhead_s or imputed.get("launch_overhead_s")
                    or PRIOR_LAUNCH_OVERHEAD_S.get(d.kind, 5e-6))
        backward = float(backward_overhead_s or imputed.get("backward_overhead_s") or math.nan)
        own = bool(launch_overhead_s or d.launch_overhead_s)
        if d.kind == "gpu":  # its spec sheet alone: its measured level is the op model's offsets
            return cls(d, float(overhead), dict.fromkeys({*d.peak_flops_per_s, "fp32"}, math.nan), math.nan,
                       traits(d), backward, own)
        peak_eff = {k: v / d.peak_flops_per_s[k] for k, v in d.measured_peak_flops_per_s.items()
                    if v and d.peak_flops_per_s.get(k)}
        fallback = peak_eff.get("fp32", imputed.get("peak", math.nan))
        peak_eff = {k: peak_eff.get(k, fallback) for k in {*d.peak_flops_per_s, *peak_eff, "fp32"}}
        bw = d.measured_bandwidth_bytes_per_s
        bw_eff = bw / d.memory_bandwidth_bytes_per_s if bw and d.memory_bandwidth_bytes_per_s else math.nan
        if math.isnan(bw_eff):  # the ratio over a spec of the same meaning (training.imputed_efficiencies)
            bw_eff = imputed.get("bw_estimated", imputed.get("bw", math.nan)) \
                if d.extra.get("memory_bandwidth_estimated") else imputed.get("bw", math.nan)
        return cls(d, float(overhead), peak_eff, float(bw_eff), traits(d), backward, own)


def analysis_device(kind: str) -> str:
    """The ``analyze --device`` of a device kind: ``cpu`` for CPUs, ``cuda`` (GPU autocast policy) otherwise."""
    return "cpu" if kind == "cpu" else "cuda"


def _shape_stats(shapes_json: pd.Series) -> pd.DataFrame:
    """Largest and smallest dims of the first input, output numel and rank, input count: one row per op."""
    cache: dict[str, tuple[float, ...]] = {}
    rows = []
    for text in shapes_json:
        if text not in cache:
            cache[text] = _stats_of(text)
        rows.append(cache[text])
    return pd.DataFrame(rows, columns=["max_dim", "min_dim", "n_inputs"], index=shapes_json.index)


def _stats_of(text: str) -> tuple[float, ...]:
    shapes = parse_shapes(text)
    first = next((s for s in shapes if s), [])
    dims = [d for s in shapes for d in s] or [1]
    last2 = first[-2:] or [1]
    return float(max(dims)), float(min(last2)), float(len(shapes))


def _out_stats(shapes_json: pd.Series) -> pd.DataFrame:
    """Output numel and rank, and the first output as ``batch x rows x cols`` (its last two dims): one row per op."""
    cache: dict[str, tuple[float, ...]] = {}
    rows = []
    for text in shapes_json:
        if text not in cache:
            shapes = parse_shapes(text)
            numel = sum(math.prod(s) for s in shapes) if shapes else 0
            first = next((s for s in shapes if s), [1])
            m, n = ([1, *first][-2:])
            cache[text] = (float(numel), float(max((len(s) for s in shapes), default=0)),
                           float(math.prod(first[:-2])), float(m), float(n))
        rows.append(cache[text])
    return pd.DataFrame(rows, columns=["out_numel", "out_rank", "out_batch", "out_rows", "out_cols"],
                        index=shapes_json.index)


def gemm_wave_efficiency(out: pd.DataFrame, tile: int, cu: float) -> np.ndarray:
    """Busy share of the SMs over the waves of an ``out_batch x out_rows x out_cols`` output in square tiles.

    A conv's output ``[n, c, h, w]`` is its implicit GEMM's ``(n h w) x c``, which these dims do not give
    exactly; the share still tells a full last wave from a nearly empty one.
    """
    blocks = out["out_batch"].to_numpy() * np.ceil(out["out_rows"].to_numpy() / tile) * np.ceil(
        out["out_cols"].to_numpy() / tile)
    blocks = np.maximum(blocks, 1.0)
    return blocks / (np.ceil(blocks / cu) * cu)


def base_op_name(op: str) -> str:
    """Op name without its overload: ``aten.mm.default`` -> ``aten.mm``."""
    return ".".join(str(op).split(".")[:2])


def roofline_time_s(flops: np.ndarray, nbytes: np.ndarray, peak: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """Roofline time of ops, s: ``max(flops / peak, bytes / bandwidth)``."""
    return np.maximum(flops / np.maximum(peak, _EPS), nbytes / np.maximum(bw, _EPS))


def featurize(ops: pd.DataFrame, hw: HardwareView, precision: str = "fp32") -> pd.DataFrame:
    """Feature table of ops on one device, plus the helper columns ``roofline_s`` and ``peak_key``.

    Args:
        ops: op table with ``OP_COLUMNS`` (analysis ops or microbenchmark rows); its index is kept.
        hw: the device.
        precision: step precision (``tf32`` maps fp32 matmul-like ops to the TF32 peak on GPUs).

    Returns:
        One row per op: :data:`FEATURES` (categoricals as strings), ``roofline_s`` (s), ``first_touch_s`` (s: on
        a CPU with a measured first-touch rate, the page faults of the op's fresh large outputs,
        :func:`~flopcast.predictor.first_touch.first_touch_s`; else 0) and ``peak_key``.
    """
    d = hw.descriptor
    flops = executed_flops(ops)
    nbytes = (ops["bytes_read"].astype("float64").fillna(0.0) + ops["bytes_written"].astype("float64").fillna(0.0)
              ).to_numpy()
    category = ops["category"].astype(str)
    dtype = ops["dtype"].astype(str)
    has_tf32 = bool(d.peak_flops_per_s.get("tf32"))
    keys = [peak_key(t, c, precision, d.kind, has_tf32) for t, c in zip(dtype, category, strict=True)]
    peak_by_key = {k: d.peak_for(k) for k in set(keys)}
    if d.kind == "gpu" and "fp32" in peak_by_key:  # CUDA-core fp32: the lanes it can issue FP32 work to
        peak_by_key["fp32"] *= fp32_issue_share(d)
    bw = float(d.memory_bandwidth_bytes_per_s)
    peak = np.array([peak_by_key[k] for k in keys])
    peak_eff = np.array([hw.peak_eff.get(k, hw.peak_eff.get("fp32", math.nan)) for k in keys], float)
    bw_roof = bw
    if d.kind != "gpu":  # a CPU's spec values are guesses: its roofline at the ceilings it sustains (measured or
        peak = peak * np.where(np.isfinite(peak_eff) & (peak_eff > 0), peak_eff, 1.0)  # imputed efficiencies)
        bw_roof = bw * hw.bw_eff if np.isfinite(hw.bw_eff) and hw.bw_eff > 0 else bw
    shapes = _shape_stats(ops["input_shapes"].astype(str))
    out = _out_stats(ops["output_shapes"].astype(str))
    tile = category.map(TILE_ELEMENTS).fillna(DEFAULT_TILE).to_numpy(dtype=float)
    cu = max(float(d.compute_units or 1), 1.0)
    tiles = np.maximum(np.ceil(out["out_numel"].to_numpy() / tile), 1.0)
    waves = np.ceil(tiles / cu)
    roof = roofline_time_s(flops, nbytes, peak, bw_roof)
    t_compute, t_memory = flops / np.maximum(peak, _EPS), nbytes / max(bw_roof, _EPS)
    f = pd.DataFrame(index=ops.index)
    f["log_flops"] = np.log10(flops + 1)
    f["log_bytes"] = np.log10(nbytes + 1)
    f["log_ai"] = np.log10((flops + 1) / (nbytes + 1))
    f["log_out_numel"] = np.log10(out["out_numel"].to_numpy() + 1)
    f["log_max_dim"] = np.log10(shapes["max_dim"].to_numpy() + 1)
    f["log_min_dim"] = np.log10(shapes["min_dim"].to_numpy() + 1)
    f["log_red"] = np.log10((flops + 1) / (out["out_numel"].to_numpy() + 1))
    f["n_inputs"] = shapes["n_inputs"].to_numpy()
    f["out_rank"] = out["out_rank"].to_numpy()
    f["itemsize"] = np.where(dtype.str.contains("16"), 2.0, np.where(dtype.str.contains("64"), 8.0, 4.0))
    f["log_tiles"] = np.log10(tiles)
    f["log_waves"] = np.log10(waves)
    f["wave_eff"] = tiles / (waves * cu)
    gemm = category.isin(("matmul", "conv")).to_numpy()
    for t in GEMM_TILES:
        f[f"wave_eff_{t}"] = np.where(gemm, gemm_wave_efficiency(out, t, cu), np.nan)
    f["hw_gpu"] = float(d.kind == "gpu")
    f["hw_log_peak"] = np.log10(np.maximum(peak, 1.0))
    f["hw_log_bw"] = math.log10(max(bw, 1.0))
    f["hw_log_cu"] = math.log10(cu)
    f["hw_log_clock"] = math.log10(max(d.clock_hz or 1e9, 1.0))
    f["hw_log_mem"] = math.log10(max(d.memory_bytes or 1.0, 1.0))
    f["hw_log_launch"] = math.log10(hw.launch_overhead_s)
    f["hw_log_ridge"] = np.log10(np.maximum(peak, 1.0) / max(bw_roof, 1.0))
    f["hw_log_bw_per_cu"] = math.log10(max(bw, 1.0) / cu)
    f["hw_peak_eff"] = peak_eff
    f["hw_bw_eff"] = hw.bw_eff
    for name in TRAIT_NAMES:
        f[name] = hw.traits.get(name, math.nan)
    f["log_t_compute"] = np.log10(t_compute + _EPS)
    f["log_t_memory"] = np.log10(t_memory + _EPS)
    f["log_t_roof"] = np.log10(roof + _EPS)
    f["bound_margin"] = f["log_t_compute"] - f["log_t_memory"]
    f["log_roof_over_launch"] = np.log10((roof + _EPS) / hw.launch_overhead_s)
    op = ops["op"].astype(str).map(base_op_name)
    gemm_op = op.isin(GEMM_OPS).to_numpy()
    f["op"] = np.where(gemm_op, GEMM_OPS[0], op)
    f["category"] = category.to_numpy()
    f["phase"] = np.where(gemm_op, "any", ops["phase"].astype(str).to_numpy())
    f["dtype"] = np.array(keys)
    f["roofline_s"] = roof
    f["first_touch_s"] = first_touch_s(ops, d.measured_first_touch_bytes_per_s) if d.kind == "cpu" else 0.0
    f["peak_key"] = keys
    return f


def is_free(ops: pd.DataFrame) -> np.ndarray:
    """Ops that launch no kernel: no FLOPs and no bytes (views, metadata, device queries)."""
    flops = ops["flops"].astype("float64").fillna(0.0).to_numpy()
    nbytes = (ops["bytes_read"].astype("float64").fillna(0.0) + ops["bytes_written"].astype("float64").fillna(0.0)
              ).to_numpy()
    return (flops <= 0) & (nbytes <= 0)


def encode(features: pd.DataFrame, vocab: Mapping[str, list[str]]) -> pd.DataFrame:
    """The model matrix: :data:`FEATURES` in order, categoricals coded with a fixed vocabulary (unknown -> NaN)."""
    x = features[list(NUMERIC)].astype("float64").copy()
    x.loc[x["hw_gpu"].to_numpy() > 0.5, list(GPU_IDENTITY_FEATURES)] = np.nan
    for name in CATEGORICAL:
        cats = list(vocab.get(name, []))
        values = features[name].astype(str)
        if name == "op":
            values = in_vocabulary_op(values, cats, features["category"].astype(str), features["n_inputs"])
        x[name] = pd.Categorical(values.where(values.isin(cats)), categories=cats)
    return x


def in_vocabulary_op(ops: pd.Series, vocab: list[str], category: pd.Series | None = None,
                     n_inputs: pd.Series | None = None) -> pd.Series:
    """Op names outside ``vocab`` mapped to the trained kernel closest to them.

    The op model has never seen such a name; rather than leave it missing (an arbitrary tree branch), it
    takes, in order: its out-of-place form when that is in ``vocab`` (an in-place op runs the same kernel,
    writing into its input: ``aten.add_`` -> ``aten.add``); else a kernel of the same memory pattern
    and per-element cost (:data:`KERNEL_STAND_INS`), when trained; else the representative kernel of its category
    (:data:`CATEGORY_KERNELS`), when trained. An element-wise op with one input has no category stand-in: unary
    kernels differ too much per element (a copy-like ``neg`` against a transcendental ``erf``), so one not listed
    in :data:`KERNEL_STAND_INS` stays
    missing, as do names in no listed category. Names in ``vocab`` (``aten.copy_``, ``aten._foreach_add_``)
    stay as they are.

    Args:
        ops: base op names.
        vocab: op names the model was trained on.
        category: each op's category (``None``: no category representatives).
        n_inputs: each op's input count (tells unary element-wise ops apart; ``None``: all count as binary).
    """
    known = set(vocab)
    stripped = ops.str.rstrip("_")
    out = ops.where(ops.isin(known) | ~stripped.isin(known), stripped)
    kin = out.map(KERNEL_STAND_INS)
    out = out.where(out.isin(known) | ~kin.isin(known), kin)
    if category is None:
        return out
    rep = category.map(CATEGORY_KERNELS)
    if n_inputs is not None:
        rep = rep.where(~((category == "elementwise") & (n_inputs.to_numpy() < 2)), None)
    use = ~out.isin(known) & rep.isin(known)
    return out.where(~use, rep)


_TRANSCENDENTAL = ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "sqrt",
                   "rsqrt", "reciprocal", "log", "log1p", "log2", "log10", "exp2", "expm1", "erf", "erfc", "erfinv")
_COPY_LIKE = ("neg", "abs", "sign", "rsub", "clamp", "clamp_min", "clamp_max", "floor", "ceil", "round", "trunc",
              "frac", "bitwise_not", "logical_not", "hardtanh", "leaky_relu", "threshold")
KERNEL_STAND_INS = {
    "aten.native_dropout": "aten.mul", "aten.native_dropout_backward": "aten.mul",
    **{f"aten.{name}": "aten.tanh" for name in _TRANSCENDENTAL},
    **{f"aten.{name}": "aten.relu" for name in _COPY_LIKE},
}
"""Element-wise kernels that stream like a trained one of the same per-element cost: CUDA's fused dropout reads
its input once and writes the scaled output and a byte mask in one pass (its random draws are counter-based, a few
integer operations per element, hidden under the memory traffic), as a scaling ``mul`` streams its operands; its
backward is ``g * mask * scale``. A unary transcendental function (``rsqrt`` of an RMS norm, ``sin`` / ``cos`` of
rotary embeddings, ``erf``) is a polynomial or special-function evaluation per element, as ``tanh`` is; a unary
copy-like op (``neg``, ``abs``, ``clamp``, a scalar ``rsub``) a compare or sign flip per element, as ``relu`` is.
Left missing, such a name took an arbitrary tree branch (a 4-element ``rsqrt`` priced at 55 us on the H200, whose
tiny ops take 11 us). Their bytes and FLOPs stay their own (the roofline); the stand-in lends only the learned
kernel name."""

CATEGORY_KERNELS = {
    "elementwise": "aten.mul", "data-movement": "aten.copy_", "reduction": "aten.sum", "softmax": "aten._softmax",
    "norm": "aten.native_layer_norm", "matmul": "aten.mm", "conv": "aten.convolution",
    "attention": "aten._scaled_dot_product_flash_attention_for_cpu", "embedding": "aten.embedding",
    "optimizer": "aten._foreach_add_",
}
"""Trained kernel standing in for an op name the op model never saw, by category (a memory-bound binary
kernel for element-wise ops with two or more inputs, a copy for data movement, the category's main kernel
otherwise; the phase feature tells forward and backward apart)."""
