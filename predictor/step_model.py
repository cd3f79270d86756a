"""Step-level stage: compose op predictions into a step's time (and energy) with a small learned correction.

A step's ops run one after another on a CPU (time = op sum + host time) and asynchronously on a GPU
(time = max(op sum, host time): a step of many tiny ops is bound by the host). Host time is a fitted cost
per Python-level call plus a fitted share of it per call run from C++ (backward, a composite's parts).
On top of that physical base a ridge regression in log space corrects the bias per hardware (pooled per
device kind for hardware without measured steps); its inputs (category shares or not, or only a level per
mode) and the host costs are chosen by leave-one-family-out residuals (a kind stage's by leave-one-device-out
residuals, centred per device: its slopes serve other devices; it fits them within devices, each device with a
level of its own, and takes the median device level), and the family residuals' quantiles give the intervals.
A CPU kind stage's host cost scales with each CPU's tiny-op time (:data:`HOST_SCALED_KINDS`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flopcast.predictor.op_model import QUANTILES, check_fitted

STEP_FRAME_COLUMNS = ("hardware", "kind", "mode", "ops_s", "ops_p10_s", "ops_p90_s", "n_ops", "n_calls",
                      "n_python_calls", "launch_bound_share", "launch_overhead_s")
"""Columns of a step frame (see :func:`flopcast.predictor.compose.step_frame`; ``launch_overhead_s`` may be
missing: host costs are then not scaled, :func:`host_scale`)."""

HOST_COST_GRID_S = (0.0, *np.logspace(-7, -3.5, 22).tolist())
"""Host cost per op tried by the fit, s."""

PRIOR_HOST_COST_S = {"gpu": 1.5e-5, "cpu": 3e-6, "other": 1.5e-5}
"""Host (framework) cost per Python-level op of a device kind never measured, s."""

INTERNAL_RATIO_GRID = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
"""Host cost of an op run from C++ (a composite's parts, backward ops), as a share of a Python-level op's, tried
by the fit; a kind never measured uses 1 (every call costs the same)."""

HOST_SCALED_KINDS = ("cpu",)
"""Device kinds whose host cost per call scales with the device's fitted tiny-op time (``launch_overhead_s``).

On a CPU the framework dispatches each call on the core that then runs it, and the microbenchmarked time of a
tiny op is mostly that dispatch (our CPUs: host cost per Python-level call 2.8-3.1x their tiny-op time, which
differs 2x between them). A kind stage states its host cost for its median device and carries it to another CPU
in proportion to that CPU's tiny-op time (a ``calibrate --quick`` CPU measures it). A GPU's tiny-op time is the
accelerator's launch path, not the speed of the host that runs Python: GPU host costs stay in seconds.
"""

PRIOR_LOG_INTERVAL = (math.log(0.5), math.log(2.0))
"""Residual quantiles (10 %, 90 %) of a stage with no measured steps: a factor of 2 either way."""

MIN_STEPS = 4
"""Fewest measured steps for a stage of its own (fewer: pooled by device kind, or the prior)."""

MIN_STEPS_FULL = 24
"""Fewest steps for the full design; with fewer, a stage fits only its intercept and train/infer offset."""


def sized_design(z: np.ndarray) -> np.ndarray:
    """The design a stage can afford for its row count.

    With fewer than :data:`MIN_STEPS_FULL` rows only the intercept and the last column (the train flag) are
    kept; the others are zeroed, so their coefficients are 0.
    """
    z = np.asarray(z, float)
    if len(z) >= MIN_STEPS_FULL:
        return z
    out = np.zeros_like(z)
    out[:, 0], out[:, -1] = z[:, 0], z[:, -1]
    return out


def _ridge_levels(z: np.ndarray, y: np.ndarray, alpha: float, weights: np.ndarray | None = None,
                  devices: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """Ridge coefficients, rows weighted by ``weights`` (default 1), and with ``devices`` the level of each device.

    The intercept (first column) is not penalised. ``devices`` (a kind stage's rows): each device gets a level of
    its own and the slopes are fitted within devices: a device that measured only training steps says nothing of
    training against inference, its level takes its whole offset. The intercept is then the median of the device
    levels: a typical device of the kind, not one whose harness or op-model level stands apart.
    """
    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    if devices is None:
        penalty = alpha * np.eye(z.shape[1])
        penalty[0, 0] = 0.0
        return np.linalg.solve(z.T @ (w[:, None] * z) + penalty, z.T @ (w * y)), {}
    names, index = np.unique(np.asarray(devices).astype(str), return_inverse=True)
    x = np.column_stack([np.eye(len(names))[index], z[:, 1:]])
    penalty = alpha * np.eye(x.shape[1])
    penalty[:len(names), :len(names)] = 0.0
    c = np.linalg.solve(x.T @ (w[:, None] * x) + penalty, x.T @ (w * y))
    levels = dict(zip(names.tolist(), c[:len(names)].tolist(), strict=True))
    return np.concatenate([[np.median(c[:len(names)])], c[len(names):]]), levels


def device_balanced_weights(hardware: np.ndarray) -> np.ndarray:
    """Row weights under which each device counts as much as any other, summing to the row count.

    A kind stage stands for a typical device of its kind, not for the device that measured the most steps.
    """
    names, index, counts = np.unique(np.asarray(hardware).astype(str), return_inverse=True, return_counts=True)
    return len(index) / (len(names) * counts[index])


class LogLinearStage:
    """Ridge regression of a log ratio (measured / physical base) with residual quantiles.

    Inputs are clipped to the training range at prediction, so the correction stays bounded for steps far
    larger than those measured: the physical base carries the scaling.

    Args:
        alpha: ridge penalty of the non-intercept coefficients.
        quantiles: residual quantile levels for intervals.
    """

    def __init__(self, alpha: float = 1.0, quantiles: Sequence[float] = QUANTILES):
        self.alpha = alpha
        self.quantiles = tuple(quantiles)

    def fit(self, z: np.ndarray, log_ratio: np.ndarray, groups: np.ndarray | None = None,
            weights: np.ndarray | None = None, devices: np.ndarray | None = None) -> LogLinearStage:
        """Fit coefficients on all rows; residual quantiles from leave-one-group-out predictions.

        Args:
            z: design matrix, intercept column first.
            log_ratio: ``ln(measured / base)``.
            groups: group of each row (model family); ``None`` or one group: in-sample residuals.
            weights: row weights of the coefficients' fit (``None``: equal; a kind stage:
                :func:`device_balanced_weights`).
            devices: a kind stage's device of each row: slopes within devices, the intercept the median
                device level (:func:`_ridge_levels`).

        Returns:
            ``self``.
        """
        z, y = sized_design(z), np.asarray(log_ratio, float)
        self.coef_ = _ridge_levels(z, y, self.alpha, weights, devices)[0]
        self.z_min_, self.z_max_ = z.min(axis=0), z.max(axis=0)
        resid = held_out_residuals(z, y, groups, self.alpha, devices)
        self.resid_q_ = [float(np.quantile(resid, q)) for q in self.quantiles]
        self.held_out_ = bool(groups is not None and len(set(groups)) > 1)
        self.n_rows_ = len(y)
        return self

    def shifted(self, z: np.ndarray, log_ratio: np.ndarray) -> LogLinearStage:
        """A copy with this stage's slopes and an intercept moved to fit a few rows of another device.

        A device with fewer than :data:`MIN_STEPS_FULL` measured steps (a ``calibrate --quick`` CPU) borrows
        the slopes its device kind learned from many models and fits only its own level: the median
        residual of its rows, one per mode (train, infer) when it measured both. Intervals keep the kind's
        held-out residual quantiles.
        """
        check_fitted(self, "coef_")
        out = copy.deepcopy(self)
        z, y = np.asarray(z, float), np.asarray(log_ratio, float)
        resid = y - np.clip(z, self.z_min_, self.z_max_) @ self.coef_
        train = z[:, -1] > 0.5  # the design's last column is the train flag
        if train.any() and (~train).any():  # both modes measured: a level for each
            out.coef_[0] += float(np.median(resid[~train]))
            out.coef_[-1] += float(np.median(resid[train]) - np.median(resid[~train]))
        else:
            out.coef_[0] += float(np.median(resid))
        out.n_rows_ = len(y)
        return out

    def measured_one_mode(self) -> bool:
        """Whether every fitted row had the same train flag (a device that measured training or inference only)."""
        check_fitted(self, "coef_")
        return bool(self.z_min_[-1] == self.z_max_[-1])

    def with_mode_offset(self, train_offset: float) -> LogLinearStage:
        """A copy of a one-mode stage (:meth:`measured_one_mode`) with ``train_offset`` (ln) between its modes.

        A device that measured one mode says nothing of the other: its fit puts the whole level in the intercept,
        and the train flag, constant in its rows, is clipped to that mode at prediction. The copy predicts the
        measured mode as before and the other mode ``train_offset`` away from it (its kind's within-device
        train-over-inference offset, :meth:`_StageSet._lend_mode_offset`).
        """
        out = self.with_train_offset(train_offset)
        if self.z_min_[-1] > 0.5:  # training measured: its rows' level (intercept + flag) stays where it was
            out.coef_[0] += self.coef_[-1] - train_offset
        out.z_min_[-1], out.z_max_[-1] = 0.0, 1.0
        return out

    def with_train_offset(self, train_offset: float) -> LogLinearStage:
        """A copy whose train flag is ``train_offset`` (ln), everything else as fitted (a software stack's offset)."""
        check_fitted(self, "coef_")
        out = copy.deepcopy(self)
        out.coef_[-1] = float(train_offset)
        return out

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Predicted log-ratio quantiles, shape ``(n, 3)``."""
        check_fitted(self, "coef_")
        mid = np.clip(np.asarray(z, float), self.z_min_, self.z_max_) @ self.coef_  # no linear extrapolation
        lo, _, hi = self.resid_q_
        return np.stack([mid + min(lo, 0.0), mid, mid + max(hi, 0.0)], axis=1)

    def state(self) -> dict[str, Any]:
        """JSON-able learned state."""
        check_fitted(self, "coef_")
        return {"coef": self.coef_.tolist(), "resid_q": self.resid_q_, "held_out": self.held_out_,
                "n_rows": self.n_rows_, "z_min": self.z_min_.tolist(), "z_max": self.z_max_.tolist()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], alpha: float = 1.0) -> LogLinearStage:
        """Rebuild from :meth:`state`."""
        stage = cls(alpha)
        stage.coef_ = np.asarray(state["coef"], float)
        stage.resid_q_ = [float(x) for x in state["resid_q"]]
        stage.held_out_ = bool(state["held_out"])
        stage.n_rows_ = int(state["n_rows"])
        stage.z_min_, stage.z_max_ = np.asarray(state["z_min"], float), np.asarray(state["z_max"], float)
        return stage


def held_out_residuals(z: np.ndarray, y: np.ndarray, groups: np.ndarray | None, alpha: float,
                       devices: np.ndarray | None = None) -> np.ndarray:
    """Residuals of each row predicted by a ridge fit without its group (in-sample with < 2 groups).

    ``devices``: a level per device (:func:`_ridge_levels`); a held-out row of a device the fit saw takes that
    device's level, one of a device it did not see the median level.
    """
    if groups is None or len(set(groups)) < 2:
        coef, levels = _ridge_levels(z, y, alpha, devices=devices)
        return y - _with_levels(z, coef, levels, devices)
    groups = np.asarray(groups)
    resid = np.empty_like(y)
    for g in set(groups):
        out = groups == g
        coef, levels = _ridge_levels(z[~out], y[~out], alpha, devices=None if devices is None else devices[~out])
        resid[out] = y[out] - _with_levels(z[out], coef, levels, None if devices is None else devices[out])
    return resid


def _with_levels(z: np.ndarray, coef: np.ndarray, levels: Mapping[str, float], devices: np.ndarray | None
                 ) -> np.ndarray:
    """``z @ coef`` with each row's intercept its device's level where ``levels`` has it."""
    pred = z @ coef
    if devices is not None and levels:
        own = np.array([levels.get(str(d), coef[0]) for d in devices])
        pred = pred + z[:, 0] * (own - coef[0])
    return pred


def held_out_loss(z: np.ndarray, y: np.ndarray, groups: np.ndarray | None, alpha: float, centred: bool = False,
                  devices: np.ndarray | None = None) -> float:
    """Mean absolute held-out log residual (:func:`held_out_residuals`).

    ``centred``: each group's residuals less their median (how slopes carry to a held-out device, not the level
    every design misses alike).
    """
    r = held_out_residuals(z, y, groups, alpha, devices)
    if centred and groups is not None:
        for g in np.unique(groups):
            rows = groups == g
            r[rows] -= np.median(r[rows])
    return float(np.mean(np.abs(r)))


def stack_of(f: pd.DataFrame) -> str:
    """The software stack of a frame's (first) device: its ``stack`` column, "" without one."""
    if "stack" not in f or not len(f):
        return ""
    value = f["stack"].iloc[0]
    return value if isinstance(value, str) else ""


class _StageSet:
    """Stages keyed by hardware name, pooled ``kind:<kind>`` and ``kind:<kind>:<stack>`` stages, and the prior.

    A ``kind:<kind>:<stack>`` stage is its kind's with the train-over-inference offset of the devices of one
    software stack (:meth:`_fit_stacks`); a device without a stage of its own takes its stack's, else its kind's.
    """

    stages_: dict[str, dict[str, Any]] | None = None

    def __init__(self, alpha: float = 1.0, min_steps: int = MIN_STEPS):
        self.alpha = alpha
        self.min_steps = min_steps

    def _borrowed_kind(self, key: str, f: pd.DataFrame) -> dict[str, Any] | None:
        """The pooled stage of ``f``'s device (:meth:`_kind_entry`) when device ``key`` has too few steps of its own.

        Such a device keeps the kind's slopes and fits only its own level (:meth:`LogLinearStage.shifted`).
        Kind stages are fitted first (:meth:`_keys` lists them first), so the kind's entry already exists.
        """
        if key.startswith("kind:") or len(f) >= MIN_STEPS_FULL:
            return None
        return self._kind_entry(f)

    @staticmethod
    def _pooled_keys(kind: str, stack: str) -> tuple[str, ...]:
        """Keys of the pooled stages a device of ``kind`` and ``stack`` may take, first choice first."""
        return (*([f"kind:{kind}:{stack}"] if stack else []), f"kind:{kind}")

    def _kind_entry(self, f: pd.DataFrame) -> dict[str, Any] | None:
        """The pooled stage of ``f``'s device: its software stack's (:meth:`_fit_stacks`), else its kind's."""
        keys = self._pooled_keys(str(f["kind"].iloc[0]), stack_of(f))
        return next((self.stages_[k] for k in keys if k in self.stages_), None)

    def _fit_stacks(self, key: str, f: pd.DataFrame, z: np.ndarray, log_ratio: np.ndarray) -> None:
        """Beside kind stage ``key``, one stage per software stack with that stack's train-over-inference offset.

        A kind stage learns one train offset within its devices that measured both modes. That offset is a
        property of the framework's backward kernels as much as of the chip: in NeuSight's labels a training step
        over its summed ops runs 0.09-0.13 ln above inference on the AMD GPUs (ROCm), 0.04 on the V100 (CUDA).
        Each stack whose devices measured both modes gets a copy of the kind stage whose train flag is moved by the
        median over those devices of their own offset against the kind's (train less inference median residual);
        the kind stage stays for devices of other stacks.
        """
        if not key.startswith("kind:") or "stack" not in f:
            return
        entry = self.stages_[key]
        stage: LogLinearStage = entry["stage"]
        resid = np.asarray(log_ratio, float) - stage.predict(z)[:, 1]
        hardware, stacks = f["hardware"].astype(str).to_numpy(), f["stack"].fillna("").astype(str).to_numpy()
        train = (f["mode"] == "train").to_numpy()
        for stack in sorted(set(stacks) - {""}):
            offsets = [float(np.median(resid[(hardware == h) & train]) - np.median(resid[(hardware == h) & ~train]))
                       for h in np.unique(hardware[stacks == stack])
                       if ((hardware == h) & train).any() and ((hardware == h) & ~train).any()]
            if offsets:
                self.stages_[f"{key}:{stack}"] = {
                    **entry, "stage": stage.with_train_offset(stage.coef_[-1] + float(np.median(offsets)))}

    def _lend_mode_offset(self, key: str, f: pd.DataFrame, stage: LogLinearStage) -> LogLinearStage:
        """``stage`` (device ``key``'s own), given its pooled stage's train offset (:meth:`_kind_entry`) if one mode.

        The kind stage learns that offset within devices that measured both modes (:func:`_ridge_levels`); a
        device with steps of one mode only (our H200 trained, never ran inference) otherwise prices the other
        mode at the measured mode's level. Kept as fitted: a kind stage, a stage that measured both modes, or a
        kind whose own stage does not span both.
        """
        if key.startswith("kind:") or not stage.measured_one_mode():
            return stage
        kind = self._kind_entry(f)
        if kind is None or kind["stage"].measured_one_mode():
            return stage
        return stage.with_mode_offset(float(kind["stage"].coef_[-1]))

    @staticmethod
    def _choice_groups(key: str, f: pd.DataFrame, groups: np.ndarray | None) -> tuple[np.ndarray | None, bool]:
        """What a stage's design choice holds out at a time, and whether its residuals are centred per group.

        A device's own stage predicts that device's other models: one model family at a time (``groups``).
        A kind stage serves other devices (it lends its slopes to devices with few steps, which fit their own
        level, and prices devices with no steps): one *device* at a time when it pools two or more, each held-out
        device's residuals centred on their median, so that the choice weighs how its slopes carry to another
        device and not the level every design misses alike. Chosen by families, a kind stage keeps corrections
        that hold on the device with the most steps (the category shares of one GPU's op-model errors) and
        carries them to devices where they do not hold.
        """
        if key.startswith("kind:") and f["hardware"].nunique() >= 2:
            return f["hardware"].astype(str).to_numpy(), True
        return groups, False

    @staticmethod
    def _kind_fit(key: str, f: pd.DataFrame) -> dict[str, np.ndarray]:
        """A kind stage's fit options; none for a device's stage.

        Each device counts once (:func:`device_balanced_weights`) and has a level of its own (``devices``).
        """
        if not key.startswith("kind:"):
            return {}
        devices = f["hardware"].astype(str).to_numpy()
        return {"weights": device_balanced_weights(devices), "devices": devices}

    def _keys(self, frame: pd.DataFrame, kinds: Mapping[str, dict[str, Any]] | None = None
              ) -> list[tuple[str, np.ndarray]]:
        """Stage keys to fit with their rows; sets ``stages_`` to the given kind stages (fitted before)."""
        self.stages_ = {k: v for k, v in (kinds or {}).items() if k.startswith("kind:")}
        keys = [] if kinds is not None else [
            (f"kind:{k}", (frame["kind"] == k).to_numpy()) for k in sorted(frame["kind"].unique())]
        keys += [(str(h), (frame["hardware"] == h).to_numpy()) for h in sorted(frame["hardware"].unique())]
        return [(k, rows) for k, rows in keys if rows.sum() >= self.min_steps]

    def stage_key(self, hardware: str, kind: str, stack: str = "") -> str | None:
        """The stage used for a device: its own, its software stack's, its kind's, or ``None`` (prior)."""
        check_fitted(self, "stages_")
        for key in (hardware, *self._pooled_keys(kind, stack)):
            if key in self.stages_:
                return key
        return None

    def state(self) -> dict[str, Any]:
        """JSON-able learned state."""
        check_fitted(self, "stages_")
        return {"stages": {k: {**{n: v for n, v in s.items() if n != "stage"}, "stage": s["stage"].state()}
                           for k, s in self.stages_.items()}}

    def set_state(self, state: Mapping[str, Any]) -> _StageSet:
        """Restore from :meth:`state`."""
        self.stages_ = {k: {**{n: v for n, v in s.items() if n != "stage"},
                            "stage": LogLinearStage.from_state(s["stage"], self.alpha)}
                        for k, s in state["stages"].items()}
        return self


def _stage_design(frame: pd.DataFrame, lead: list[np.ndarray] | None, shares: bool) -> np.ndarray:
    """A stage's design matrix: intercept, ``lead`` columns, category shares, train flag last.

    ``lead`` ``None`` gives a level per mode only; ``shares`` adds the frame's ``share_<cat>`` columns.
    :func:`sized_design` keeps the first and last columns.
    """
    ones, train = np.ones(len(frame)), (frame["mode"] == "train").to_numpy(float)
    if lead is None:
        return np.column_stack([ones, train])
    cats = [frame[c].to_numpy(float) for c in frame.columns if str(c).startswith("share_")] if shares else []
    return np.column_stack([ones, *lead, *cats, train])


TIME_DESIGNS = ("full", "no_shares", "level")
"""Nested designs of the time stage, richest first; the fit keeps, per device, the one whose
leave-one-family-out residuals are smallest (:meth:`StepTimeModel.fit`)."""


def time_design(frame: pd.DataFrame, base_s: np.ndarray, design: str = "full") -> np.ndarray:
    """Design matrix of the time stage.

    Columns (``full``): intercept, log10 base time, launch-bound share, the share of predicted op time of
    each category (``share_<cat>`` columns where the frame has them: corrects a category the op model gets
    wrong on real models' shapes), and the train flag last (:func:`sized_design` keeps the first and last).
    ``no_shares`` drops the category shares; ``level`` keeps only the intercept and the train flag (the
    physical base with one level per mode). A correction learned on some model families may not carry over
    to another: the fit chooses the design by held-out families.

    Raises:
        ValueError: for a design not in :data:`TIME_DESIGNS`.
    """
    if design not in TIME_DESIGNS:
        raise ValueError(f"unknown time-stage design {design!r}; expected one of {', '.join(TIME_DESIGNS)}")
    lead = None if design == "level" else [np.log10(np.maximum(base_s, 1e-9)),
                                           frame["launch_bound_share"].to_numpy(float)]
    return _stage_design(frame, lead, shares=design == "full")


def host_scale(frame: pd.DataFrame, reference_s: float | None) -> np.ndarray:
    """Per row, the device's tiny-op time (``launch_overhead_s``) over ``reference_s`` (:data:`HOST_SCALED_KINDS`).

    1 where the reference, the column or the row's value is missing.
    """
    ones = np.ones(len(frame))
    if reference_s is None or not reference_s > 0 or "launch_overhead_s" not in frame:
        return ones
    o = frame["launch_overhead_s"].to_numpy(float)
    return np.where(np.isfinite(o) & (o > 0), o / reference_s, ones)


def host_reference_s(key: str, f: pd.DataFrame) -> float | None:
    """A kind stage's reference tiny-op time, s: the median over its devices (one value each).

    ``None`` for a device's own stage, a kind not in :data:`HOST_SCALED_KINDS` or a frame without
    ``launch_overhead_s``.
    """
    if not key.startswith("kind:") or key[5:] not in HOST_SCALED_KINDS or "launch_overhead_s" not in f:
        return None
    per_device = f.groupby("hardware")["launch_overhead_s"].median().to_numpy(float)
    per_device = per_device[np.isfinite(per_device) & (per_device > 0)]
    return float(np.median(per_device)) if len(per_device) else None


def base_step_time_s(frame: pd.DataFrame, host_cost_s: float | np.ndarray, internal_ratio: float = 1.0
                     ) -> np.ndarray:
    """Physical step time, s: op sum plus host time (CPU) or the larger of the two (GPU).

    Host time is paid by every dispatched aten call (``n_calls``, views included; ``n_ops`` in older frames):
    ``host_cost_s`` per Python-level call (``n_python_calls``; every call in older frames) and
    ``internal_ratio`` of that per call run from C++.
    """
    ops = frame["ops_s"].to_numpy(float)
    calls = (frame["n_calls"] if "n_calls" in frame else frame["n_ops"]).to_numpy(float)
    python = frame["n_python_calls"].to_numpy(float) if "n_python_calls" in frame else calls
    host = (python + internal_ratio * (calls - python)) * np.asarray(host_cost_s, float)
    return np.where(frame["kind"].to_numpy() == "gpu", np.maximum(ops, host), ops + host)


class StepTimeModel(_StageSet):
    """Step time from composed op predictions, with a fitted host cost per op and a log-linear correction.

    Args:
        alpha: ridge penalty.
        min_steps: fewest measured steps for a stage of its own.
    """

    def fit(self, frame: pd.DataFrame, time_s: np.ndarray, groups: np.ndarray | None = None,
            kinds: Mapping[str, dict[str, Any]] | None = None) -> StepTimeModel:
        """Fit one stage per hardware (and per device kind) with enough measured steps.

        Args:
            frame: step frame (:data:`STEP_FRAME_COLUMNS`).
            time_s: measured step times, s.
            groups: model family of each step (held-out residuals leave one family out).
            kinds: device-kind stages of a model fitted before (``stages_`` entries ``kind:<kind>``): kept
                as they are, and a device with few steps borrows from them (``predict --calibration``
                without the training data).

        Returns:
            ``self``.
        """
        y_all = np.log(np.asarray(time_s, float))
        groups = None if groups is None else np.asarray(groups)
        for key, rows in self._keys(frame, kinds):
            f, y, g = frame[rows], y_all[rows], None if groups is None else groups[rows]
            kind = self._borrowed_kind(key, f)
            reference = None
            if kind is not None:  # the kind's slopes and host costs (scaled to this device), the device's own level
                scale = float(np.median(host_scale(f, kind.get("host_reference_s"))))
                cost, ratio = kind["host_cost_s"] * scale, kind.get("internal_ratio", 1.0)
                design = kind.get("design", "full")
                base = base_step_time_s(f, cost, ratio)
                stage = kind["stage"].shifted(time_design(f, base, design), y - np.log(base))
            else:
                held, centred = self._choice_groups(key, f, g)
                reference = host_reference_s(key, f)
                scale = host_scale(f, reference)
                grid = [(c, r, dz) for c in HOST_COST_GRID_S for r in INTERNAL_RATIO_GRID for dz in TIME_DESIGNS]
                cost, ratio, design = min(grid, key=lambda crd, f=f, y=y, h=held, c=centred, k=scale: self._loss(
                    f, y, h, crd[0] * k, *crd[1:], centred=c))
                base = base_step_time_s(f, cost * scale, ratio)
                stage = self._lend_mode_offset(key, f, LogLinearStage(self.alpha).fit(
                    time_design(f, base, design), y - np.log(base), g, **self._kind_fit(key, f)))
            self.stages_[key] = {"host_cost_s": float(cost), "internal_ratio": float(ratio), "design": design,
                                 "host_reference_s": reference, "stage": stage}
            self._fit_stacks(key, f, time_design(f, base, design), y - np.log(base))
        return self

    def _loss(self, f: pd.DataFrame, y: np.ndarray, groups: np.ndarray | None, cost: float | np.ndarray,
              ratio: float, design: str, centred: bool = False) -> float:
        """Mean absolute held-out log residual of one host cost (per row or one), ratio and design.

        What is held out: :meth:`_choice_groups`.
        """
        base = base_step_time_s(f, cost, ratio)
        z = sized_design(time_design(f, base, design))
        return held_out_loss(z, y - np.log(base), groups, self.alpha, centred, groups if centred else None)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Step time quantiles, s, shape ``(n, 3)``; without a stage, at least as wide as the op-sum interval.

        Raises:
            NotFittedError: before ``fit``.
        """
        out = np.empty((len(frame), 3))
        for i, (_, row) in enumerate(frame.iterrows()):
            one = frame.iloc[[i]]
            key = self.stage_key(str(row["hardware"]), str(row["kind"]), stack_of(one))
            if key is None:
                base = base_step_time_s(one, PRIOR_HOST_COST_S.get(str(row["kind"]), 1.5e-5))
                log_q = np.array([[PRIOR_LOG_INTERVAL[0], 0.0, PRIOR_LOG_INTERVAL[1]]])
            else:
                s = self.stages_[key]
                cost = s["host_cost_s"] * host_scale(one, s.get("host_reference_s"))
                base = base_step_time_s(one, cost, s.get("internal_ratio", 1.0))
                log_q = s["stage"].predict(time_design(one, base, s.get("design", "full")))
            q = base[0] * np.exp(log_q[0])
            if key is None:  # no measured steps: at least as wide as the summed op intervals
                ops = max(row["ops_s"], 1e-30)
                q = [min(q[0], q[1] * row["ops_p10_s"] / ops), q[1], max(q[2], q[1] * row["ops_p90_s"] / ops)]
            out[i] = q
        return out


ENERGY_DESIGNS = ("physical", "shares", "level")
"""Designs of the energy stage, chosen per device by held-out families (see :func:`energy_design`)."""


def energy_design(frame: pd.DataFrame, base_j: np.ndarray, design: str = "physical") -> np.ndarray:
    """Design matrix of the energy stage.

    Columns (``physical``): intercept, log10 base energy, dynamic power share, train flag last. ``shares``
    adds the share of predicted op time of each category (``share_<cat>``): a device's power differs by
    kind of work (dense convolutions draw more than element-wise kernels) beyond what the op power model
    gives. ``level`` keeps only the intercept and the train flag. As for time, a correction learned on some
    model families may not carry over to others: the fit chooses the design by held-out families.

    Raises:
        ValueError: for a design not in :data:`ENERGY_DESIGNS`.
    """
    if design not in ENERGY_DESIGNS:
        raise ValueError(f"unknown energy-stage design {design!r}; expected one of {', '.join(ENERGY_DESIGNS)}")
    lead = None if design == "level" else [np.log10(np.maximum(base_j, 1e-12)), frame["power_share"].to_numpy(float)]
    return _stage_design(frame, lead, shares=design == "shares")


class StepEnergyModel(_StageSet):
    """Step energy: a physical base (idle power x time + dynamic power x time) with a log-linear correction.

    The frame needs ``energy_base_j`` (J) and ``power_share`` (time-weighted dynamic share) besides
    :data:`STEP_FRAME_COLUMNS`.
    """

    def fit(self, frame: pd.DataFrame, energy_j: np.ndarray, groups: np.ndarray | None = None,
            kinds: Mapping[str, dict[str, Any]] | None = None) -> StepEnergyModel:
        """Fit one stage per hardware (and kind) with enough steps with measured energy.

        ``kinds``: device-kind stages fitted before, as in :meth:`StepTimeModel.fit`.

        Returns:
            ``self``.
        """
        y_all = np.log(np.asarray(energy_j, float))
        groups = None if groups is None else np.asarray(groups)
        for key, rows in self._keys(frame, kinds):
            f, base = frame[rows], frame["energy_base_j"].to_numpy(float)[rows]
            y, g = y_all[rows] - np.log(base), None if groups is None else groups[rows]
            kind = self._borrowed_kind(key, f)
            if kind is not None:
                design = kind.get("design", "physical")
                stage = kind["stage"].shifted(energy_design(f, base, design), y)
            else:
                held, centred = self._choice_groups(key, f, g)
                design = min(ENERGY_DESIGNS, key=lambda dz, f=f, base=base, y=y, h=held, c=centred: self._loss(
                    energy_design(f, base, dz), y, h, c))
                stage = self._lend_mode_offset(key, f, LogLinearStage(self.alpha).fit(
                    energy_design(f, base, design), y, g, **self._kind_fit(key, f)))
            self.stages_[key] = {"design": design, "stage": stage}
            self._fit_stacks(key, f, energy_design(f, base, design), y)
        return self

    def _loss(self, z: np.ndarray, y: np.ndarray, groups: np.ndarray | None, centred: bool = False) -> float:
        """Mean absolute held-out log residual of one design (:meth:`_choice_groups`)."""
        return held_out_loss(sized_design(z), y, groups, self.alpha, centred, groups if centred else None)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Step energy quantiles, J, shape ``(n, 3)``.

        Raises:
            NotFittedError: before ``fit``.
        """
        base = frame["energy_base_j"].to_numpy(float)
        out = np.empty((len(frame), 3))
        for i, (_, row) in enumerate(frame.iterrows()):
            key = self.stage_key(str(row["hardware"]), str(row["kind"]), stack_of(frame.iloc[[i]]))
            if key is None:
                log_q = np.array([PRIOR_LOG_INTERVAL[0], 0.0, PRIOR_LOG_INTERVAL[1]])
            else:
                s = self.stages_[key]
                log_q = s["stage"].predict(energy_design(frame.iloc[[i]], base[[i]], s.get("design", "physical")))[0]
            out[i] = base[i] * np.exp(log_q)
        return out
