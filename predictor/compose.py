"""Op predictions of one step on one device, summed into the step frame the step stages read."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.featurize import EXTRAPOLATION_FEATURES, HardwareView, featurize, is_free
from flopcast.predictor.model import CostModel
from flopcast.predictor.power import prior_power_share
from flopcast.predictor.recurrent import expand_recurrent, inner_kernel_time_s

FALLBACK_LOG_INTERVAL = np.log(3.0)
"""Half-width of the log interval of an op predicted by the roofline fallback (a factor of 3)."""

OP_RANGE_MARGIN = 0.5
"""Decades beyond the op model's training range before an op counts as extrapolated."""

HW_RANGE_MARGIN = 0.15
"""Decades (x1.4) beyond the trained devices' peak and bandwidth before a device counts as extrapolated."""

EXTRAPOLATED_SHARE = 0.25
"""Share of a step's predicted op time from extrapolated ops that flags the whole step."""

LAUNCH_BOUND_FACTOR = 2.0
"""An op predicted within this many launch overheads is launch-bound."""


@dataclass(frozen=True)
class ComposedStep:
    """Summed op predictions of a step.

    Attributes:
        ops_s: sum of the ops' median times, s.
        ops_p10_s: sum of the ops' 10 % quantiles, s.
        ops_p90_s: sum of the ops' 90 % quantiles, s.
        n_ops: kernels that launch work (a fused RNN op counts its per-step kernels,
            :mod:`flopcast.predictor.recurrent`).
        n_calls: every recorded aten call, views and metadata ops included: each costs host dispatch time,
            which bounds a step of small ops on a GPU (about 17 us per call for eager PyTorch on the H200 host).
        n_python_calls: those calls that were the first of a Python-level call (the rest run from C++, for
            less host time each: :attr:`flopcast.features.records.OpRecord.python_call`).
        launch_bound_share: share of those ops predicted within 2 launch overheads.
        power_share: time-weighted dynamic power share of the ops.
        roofline_s: sum of the ops' roofline times, s.
        fallback: call count per category predicted by the roofline fallback (no trained model for it).
        extrapolated_share: share of the predicted op time from ops outside the training range.
        hardware_out_of_range: device features outside the trained devices' range.
        category_s: predicted median time per category, s.
        launch_overhead_s: the device's own tiny-op time the op model used (fitted from its rows or measured),
            s; NaN for a device priced with its kind's (a CPU's host cost per call scales with it:
            :data:`flopcast.predictor.step_model.HOST_SCALED_KINDS`).
    """

    ops_s: float
    ops_p10_s: float
    ops_p90_s: float
    n_ops: int
    n_calls: int
    n_python_calls: int
    launch_bound_share: float
    power_share: float
    roofline_s: float
    fallback: dict[str, int] = field(default_factory=dict)
    extrapolated_share: float = 0.0
    hardware_out_of_range: tuple[str, ...] = ()
    category_s: dict[str, float] = field(default_factory=dict)
    launch_overhead_s: float = float("nan")

    @property
    def extrapolated(self) -> bool:
        """Whether the step's prediction leaves the training range."""
        return self.extrapolated_share > EXTRAPOLATED_SHARE or bool(self.hardware_out_of_range)


@dataclass(frozen=True)
class OpTimes:
    """Each op of a step as the op model times it on one device.

    Attributes:
        work: the ops that do work, one row per kernel kind (a step's foreach optimizer ops merged into one
            row, a fused RNN op expanded into its kernels), with their op-table columns.
        features: their features on the device (:func:`flopcast.predictor.featurize.featurize`).
        q: time quantiles (10 / 50 / 90 %) of each row, repeats included, s, shape ``(n, 3)``.
        repeat: how many times each row's kernel runs (a fused RNN's per-step kernels: T).
        known: whether the row's category had a trained op model (else the roofline fallback).
        launch_overhead_s: the per-op launch overhead the op model used, s (a GPU's: the least of the model's
            GPUs, :func:`kernel_harness_overhead_s`).
        device_overhead_s: the device's own tiny-op time, s (its fitted, measured or kind's launch overhead).
        overhead_measured: whether ``device_overhead_s`` is the device's own, not its kind's or the prior
            (:attr:`~flopcast.predictor.featurize.HardwareView.overhead_measured`).
    """

    work: pd.DataFrame
    features: pd.DataFrame
    q: np.ndarray
    repeat: np.ndarray
    known: np.ndarray
    launch_overhead_s: float
    device_overhead_s: float
    overhead_measured: bool = True


def op_times(model: CostModel, ops: pd.DataFrame, d: HardwareDescriptor, precision: str) -> OpTimes:
    """Predict every op of a step on ``d`` (see :func:`compose` for the arguments)."""
    python = ops["python_call"].to_numpy(bool) if "python_call" in ops else np.ones(len(ops), bool)
    busy = ~is_free(ops)
    work = expand_recurrent(merged_optimizer_step(ops[busy].assign(python_call=python[busy])))
    repeat = work.pop("repeat").to_numpy(float)
    inner = work.pop("inner").to_numpy(bool) | ~work.pop("python_call").to_numpy(bool)
    if d.kind == "gpu":  # kernels queue asynchronously: the device runs each for its kernel time alone, while
        inner[:] = True  # the host's dispatch of every call is the step stage's host time (max of the two)
    own = hw = model.view(d)
    if d.kind == "gpu":  # kernel times: as the least fixed cost per call any measured GPU's harness has
        hw = replace(own, launch_overhead_s=min(own.launch_overhead_s, kernel_harness_overhead_s(model, own)))
    f = featurize(work, hw, precision)
    overhead = hw.row_overheads_s(f)  # a backward row's: one microbenchmarked autograd.grad call
    q, known = op_quantiles(model, f, overhead, model.offsets(d))
    if inner.any():  # run from C++ (a fused op's kernels, a composite's parts, backward): no Python overhead
        q[inner] = inner_kernel_time_s(q[inner], f["roofline_s"].to_numpy()[inner], overhead[inner], d.kind)
    # a kernel run T times: its time, T times
    return OpTimes(work, f, q * repeat[:, None], repeat, known, hw.launch_overhead_s, own.launch_overhead_s,
                   own.overhead_measured)


def kernel_harness_overhead_s(model: CostModel, hw: HardwareView) -> float:
    """The smallest fitted launch overhead among ``model``'s GPUs, s (``hw``'s own without any).

    A microbenchmarked op's time is its kernel plus the harness's fixed cost per call (7-14 us on our H200,
    30-50 us in NeuSight's published rows), and the op model predicts ``ratio x (roofline + overhead)``. In a
    step the kernels queue on the device and the fixed cost is the host's (the step stage's host time): an op's
    device time is the prediction less the overhead, which keeps ``(ratio - 1) x overhead`` of a harness's fixed
    cost. Composed at the least overhead any GPU's harness measured, a GPU's step is its kernels' times and not
    its harness's: an A100-80GB or L4 priced from NeuSight's rows (whose smallest took 0.2 ms) no longer ran a
    ResNet-50 slower than the A100-40GB.
    """
    gpus = [e.get("overhead_s") for e in model.hardware.values() if e["descriptor"].get("kind") == "gpu"]
    gpus = [float(o) for o in gpus if o is not None and o > 0]
    return min(gpus) if gpus else hw.launch_overhead_s


def compose(model: CostModel, ops: pd.DataFrame, d: HardwareDescriptor, precision: str) -> ComposedStep:
    """Predict every op of a step on ``d`` and sum them.

    Args:
        model: fitted cost model.
        ops: the step's op table (``OP_COLUMNS`` subset, see ``analysis_cache.KEPT_COLUMNS``).
        d: target device.
        precision: the step's precision.
    """
    t = op_times(model, ops, d, precision)
    f, q, repeat, known = t.features, t.q, t.repeat, t.known
    learned = model.op_power is not None and model.op_power.covers(d.kind)
    share = model.op_power.predict(f) if learned else prior_power_share(f)
    total = float(q[:, 1].sum())
    launch_bound = q[:, 1] < LAUNCH_BOUND_FACTOR * t.launch_overhead_s * repeat
    by_category = pd.Series(q[:, 1], index=f.index).groupby(f["category"]).sum()
    ranges = model.op_time.ranges_.get("gpu" if d.kind == "gpu" else "cpu", {})
    out_of_range = _outside(f, ranges, EXTRAPOLATION_FEATURES[:2], OP_RANGE_MARGIN)
    return ComposedStep(
        ops_s=total,
        ops_p10_s=float(q[:, 0].sum()),
        ops_p90_s=float(q[:, 2].sum()),
        n_ops=int(repeat.sum()),
        n_calls=len(ops),
        n_python_calls=int(ops["python_call"].sum()) if "python_call" in ops else len(ops),
        launch_bound_share=float(np.sum(launch_bound * repeat) / repeat.sum()) if len(f) else 0.0,
        power_share=float(np.sum(share * q[:, 1]) / total) if total > 0 else float(np.mean(share) if len(f) else 0.0),
        roofline_s=float(np.sum(f["roofline_s"].to_numpy() * repeat)),
        fallback=dict(Counter(f.loc[~known, "category"])),
        extrapolated_share=float(q[out_of_range, 1].sum() / total) if total > 0 else 0.0,
        hardware_out_of_range=_hardware_outside(f, ranges, d.kind),
        category_s={str(k): float(v) for k, v in by_category.items()},
        launch_overhead_s=float(t.device_overhead_s) if t.overhead_measured else math.nan,
    )


def merged_optimizer_step(work: pd.DataFrame) -> pd.DataFrame:
    """The step's multi-tensor (``foreach``) optimizer ops as one row, as the optimizer microbenchmark is.

    An ``optimizer`` microbenchmark row times a whole ``optimizer.step()`` (its ten or so ``_foreach_*``
    kernels plus the per-parameter Python work) with the FLOPs and bytes summed over those kernels and the
    costliest kernel's name and shapes. Predicting each kernel of a traced step with that model would
    charge the whole step once per kernel, so the step's optimizer-category ops are merged the same way.
    Per-parameter (for-loop) optimizer ops, as torch runs them on a CPU, are elementwise ops and stay apart.
    """
    opt = (work["category"].astype(str) == "optimizer").to_numpy()
    if opt.sum() < 2:
        return work
    rows = work[opt]
    main = rows.sort_values(["flops", "bytes_read"], ascending=False, kind="stable").iloc[0].copy()
    for col in ("flops", "macs", "bytes_read", "bytes_written"):
        if col in rows:
            main[col] = rows[col].sum()
    first = int(np.flatnonzero(opt)[0])
    merged = pd.concat([work.iloc[:first], main.to_frame().T.astype(work.dtypes.to_dict()),
                        work.iloc[first:][~opt[first:]]])
    return merged


def op_quantiles(model: CostModel, f: pd.DataFrame, overhead_s: float | np.ndarray,
                 offsets: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Time quantiles of featurized ops of one device, s, shape ``(n, 3)``, and which ops had a trained category.

    ``overhead_s``: the overhead in each row's time (one value, or one per row: ``HardwareView.row_overheads_s``).
    ``offsets``: the device's op-model offsets (:meth:`CostModel.offsets`). Ops of a category the op model
    never saw get the roofline-plus-launch time scaled by the training median ratio, with a factor-3 interval.
    """
    overhead_s = np.broadcast_to(np.asarray(overhead_s, float), (len(f),))
    known = f["category"].isin(model.op_time.known_categories()).to_numpy()
    q = np.empty((len(f), 3))
    if known.any():
        q[known] = model.op_time.predict(f[known], overhead_s[known], offsets)
    if (~known).any():
        base = f.loc[~known, "roofline_s"].to_numpy() + overhead_s[~known]
        spread = np.array([-FALLBACK_LOG_INTERVAL, 0.0, FALLBACK_LOG_INTERVAL])
        q[~known] = base[:, None] * np.exp(model.op_time.fallback_log_ratio_ + spread) \
            + model.op_time.first_touch_s(f[~known])[:, None]
    return q, known


def _outside(f: pd.DataFrame, ranges: dict[str, list[float]], names: tuple[str, ...], margin: float) -> np.ndarray:
    """Rows outside the trained range of any of ``names`` (a feature without a range: every row outside)."""
    out = np.zeros(len(f), dtype=bool)
    for name in names:
        if name not in ranges:
            return np.ones(len(f), dtype=bool)
        lo, hi = ranges[name]
        out |= (f[name].to_numpy() < lo - margin) | (f[name].to_numpy() > hi + margin)
    return out


def _hardware_outside(f: pd.DataFrame, ranges: dict[str, list[float]], kind: str) -> tuple[str, ...]:
    """The device's spec-sheet features outside the range of the trained devices of its kind.

    A kind the op model has no device of is one entry, ``no trained <kind>``; a feature the device does not
    know (NaN: an AMD GPU's compute capability) is not judged.
    """
    if not ranges:
        return (f"no trained {kind}",)
    names = [n for n in EXTRAPOLATION_FEATURES if n.startswith("hw_") and n in ranges]
    known = [n for n in names if len(f) and np.isfinite(f[n].to_numpy(float)).all()]
    return tuple(n for n in known if _outside(f, ranges, (n,), HW_RANGE_MARGIN).any())


def step_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """The step frame of composed steps: one dict per step.

    Each dict has ``hardware``, ``kind``, ``mode``, ``composed`` (a :class:`ComposedStep`) and optionally ``stack``
    (:func:`~flopcast.predictor.device_traits.software_stack`; "" when not given).
    """
    out = []
    for r in rows:
        c: ComposedStep = r["composed"]  # type: ignore[assignment]
        out.append({"hardware": r["hardware"], "kind": r["kind"], "stack": r.get("stack", ""), "mode": r["mode"],
                    "ops_s": c.ops_s,
                    "ops_p10_s": c.ops_p10_s, "ops_p90_s": c.ops_p90_s, "n_ops": c.n_ops, "n_calls": c.n_calls,
                    "n_python_calls": c.n_python_calls,
                    "launch_bound_share": c.launch_bound_share, "power_share": c.power_share,
                    "roofline_s": c.roofline_s, "launch_overhead_s": c.launch_overhead_s, **category_shares(c)})
    return pd.DataFrame(out)


STEP_CATEGORIES = ("matmul", "conv", "attention", "rnn", "elementwise", "norm", "softmax", "reduction", "embedding",
                   "data-movement", "optimizer")
"""Categories whose share of the predicted op time is a step-stage input (the rest is ``other``)."""


def category_shares(c: ComposedStep) -> dict[str, float]:
    """Share of the step's predicted op time spent in each of :data:`STEP_CATEGORIES`, columns ``share_<cat>``."""
    total = sum(c.category_s.values())
    return {f"share_{k}": (c.category_s.get(k, 0.0) / total if total > 0 else 0.0) for k in STEP_CATEGORIES}
