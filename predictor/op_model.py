"""Op-level cost models: time as a quantile XGBoost over log(time / roofline) and power as a share of TDP.

Both follow scikit-learn conventions: ``__init__`` stores hyperparameters only, ``fit`` returns ``self``,
learned state ends in ``_``, and predicting with an unfitted model raises :class:`NotFittedError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from flopcast.predictor.featurize import CATEGORICAL, FEATURES, encode, feature_ranges

QUANTILES = (0.1, 0.5, 0.9)


class NotFittedError(ValueError):
    """A model was used before ``fit`` (or loading) gave it learned state."""


def check_fitted(model: object, attribute: str) -> None:
    """Raise :class:`NotFittedError` unless ``model`` has the learned ``attribute``."""
    if getattr(model, attribute, None) is None:
        raise NotFittedError(f"this {type(model).__name__} is not fitted yet: call fit() or load a saved model first")


class _Booster:
    """Shared state of the XGBoost estimators: hyperparameters, vocabularies and the booster."""

    booster_: xgb.Booster | None = None
    vocab_: dict[str, list[str]] | None = None

    def __init__(self, n_estimators: int = 300, max_depth: int = 6, learning_rate: float = 0.05,
                 min_child_weight: float = 2.0, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 n_jobs: int = 2, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.n_jobs = n_jobs
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__``."""
        return {k: getattr(self, k) for k in ("n_estimators", "max_depth", "learning_rate", "min_child_weight",
                                             "subsample", "colsample_bytree", "n_jobs", "random_state")}

    def _params(self, **objective: Any) -> dict[str, Any]:
        return {"tree_method": "hist", "max_depth": self.max_depth, "eta": self.learning_rate,
                "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                "colsample_bytree": self.colsample_bytree, "nthread": self.n_jobs, "seed": self.random_state,
                "max_cat_to_onehot": 1, **objective}

    def _matrix(self, features: pd.DataFrame, label: np.ndarray | None = None,
                weight: np.ndarray | None = None, margin: np.ndarray | None = None) -> xgb.DMatrix:
        return xgb.DMatrix(encode(features, self.vocab_ or {}), label=label, weight=weight, base_margin=margin,
                           enable_categorical=True, feature_names=list(FEATURES))

    def _learn_vocab(self, features: pd.DataFrame) -> None:
        self.vocab_ = {name: sorted(features[name].astype(str).unique().tolist()) for name in CATEGORICAL}


class OpTimeModel(_Booster):
    """Quantile model of an op's time relative to its roofline-plus-launch time.

    The target is ``ln(time_s / (roofline_s + overhead_s))``; one booster predicts the 10/50/90 %
    quantiles (``reg:quantileerror``), so ``predict`` gives ordered intervals in seconds.

    A GPU's own level is kept apart from the shape effects all GPUs share: its rows see no feature that tells
    one GPU from another (:data:`~flopcast.predictor.featurize.GPU_IDENTITY_FEATURES` are hidden), and each GPU
    of the training data gets two offsets of the log ratio (:data:`REGIMES`: compute-bound and memory-bound
    ops), fitted as the median residual of its rows that are not launch-bound and added to the booster's margin
    while it is refitted. A GPU the data does not hold is given offsets predicted from its spec sheet
    (:mod:`flopcast.predictor.device_offsets`), so what the trees learned carries to it whole.

    Args:
        n_estimators: boosting rounds.
        max_depth: tree depth.
        learning_rate: shrinkage.
        min_child_weight: minimum hessian weight of a leaf.
        subsample: row share per tree.
        colsample_bytree: feature share per tree.
        quantiles: quantile levels (three, increasing).
        n_jobs: threads.
        random_state: seed.
    """

    def __init__(self, n_estimators: int = 300, max_depth: int = 6, learning_rate: float = 0.05,
                 min_child_weight: float = 2.0, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 quantiles: Sequence[float] = QUANTILES, n_jobs: int = 2, random_state: int = 0):
        super().__init__(n_estimators, max_depth, learning_rate, min_child_weight, subsample, colsample_bytree,
                         n_jobs, random_state)
        self.quantiles = tuple(quantiles)

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__``."""
        return {**super().get_params(), "quantiles": list(self.quantiles)}

    def fit(self, features: pd.DataFrame, time_s: np.ndarray, overhead_s: np.ndarray,
            sample_weight: np.ndarray | None = None, devices: np.ndarray | None = None) -> OpTimeModel:
        """Fit on measured ops.

        Args:
            features: :func:`~flopcast.predictor.featurize.featurize` rows (with ``roofline_s``).
            time_s: measured time per op call, s (finite, > 0).
            overhead_s: launch overhead of each row's device, s.
            sample_weight: optional row weights (e.g. equalising hardware).
            devices: each row's device name: a GPU's rows get its own offsets (``None``: no offsets).

        Returns:
            ``self``.

        Raises:
            ValueError: with no rows, or non-positive times.
        """
        time_s = np.asarray(time_s, float)
        if len(time_s) == 0:
            raise ValueError("no measured op rows to fit the op model on")
        if not np.all(np.isfinite(time_s) & (time_s > 0)):
            raise ValueError("op times must be finite and > 0 (filter untrusted rows first)")
        y = np.log(self.modelled_time_s(features, time_s) / self.base_time_s(features, overhead_s))
        self._learn_vocab(features)
        self.intercept_ = float(np.median(y))
        self.offsets_: dict[str, list[float]] = {}
        params = self._params(objective="reg:quantileerror", quantile_alpha=np.array(self.quantiles))
        gpu = (features["hw_gpu"].to_numpy(float) > 0.5) & (devices is not None)
        self.booster_ = xgb.train(params, self._matrix(features, y, sample_weight, self._margin(features)),
                                  num_boost_round=self.n_estimators)
        if gpu.any():  # each GPU's level apart from the shared shape effects, then the trees refitted around it
            names = np.asarray(devices).astype(str)
            resid = y - self.predict_log_ratio(features)[:, 1]
            self.offsets_ = device_offsets(resid, names, gpu, features)
            margin = self._margin(features, [self.offsets_.get(n) for n in names])
            self.booster_ = xgb.train(params, self._matrix(features, y, sample_weight, margin),
                                      num_boost_round=self.n_estimators)
            pred = self.predict_log_ratio(features, [self.offsets_.get(n) for n in names])[:, 1]
        else:
            pred = self.predict_log_ratio(features)[:, 1]
        self.fallback_log_ratio_ = float(np.median(y))
        self.ranges_ = feature_ranges(features)
        self.train_metrics_ = {"rows": len(y), "median_abs_pct_error": _median_ape(np.exp(pred - y))}
        return self

    def _margin(self, features: pd.DataFrame, offsets: Sequence[Sequence[float] | None] | None = None
                ) -> np.ndarray:
        """The booster's starting log ratio of each row: the intercept plus its device's offset for its regime."""
        margin = np.full(len(features), getattr(self, "intercept_", 0.0))
        if offsets is not None:
            regime = regime_of(features)
            margin = margin + np.array([o[r] if o is not None else 0.0 for o, r in zip(offsets, regime, strict=True)])
        return np.repeat(margin[:, None], len(self.quantiles), axis=1)

    @staticmethod
    def base_time_s(features: pd.DataFrame, overhead_s: np.ndarray | float) -> np.ndarray:
        """The normaliser of the target: roofline time plus launch overhead, s."""
        return features["roofline_s"].to_numpy(float) + np.asarray(overhead_s, float)

    @staticmethod
    def first_touch_s(features: pd.DataFrame) -> np.ndarray:
        """Each row's page-fault time for fresh large outputs (a CPU's, where measured; else 0), s.

        Added to the predicted time as it is, not scaled by the learned ratio: it is the kernel's, not the op's
        (:mod:`flopcast.predictor.first_touch`).
        """
        if "first_touch_s" not in features:
            return np.zeros(len(features))
        return features["first_touch_s"].to_numpy(float)

    @classmethod
    def modelled_time_s(cls, features: pd.DataFrame, time_s: np.ndarray) -> np.ndarray:
        """The part of measured times the ratio models, s: the time less its first touch (at least a tenth)."""
        return np.maximum(time_s - cls.first_touch_s(features), FIRST_TOUCH_FLOOR * time_s)

    def predict_log_ratio(self, features: pd.DataFrame, offsets: Sequence[Sequence[float] | None] | None = None
                          ) -> np.ndarray:
        """Predicted ``ln(time / base time)`` quantiles, shape ``(n, 3)``, sorted along each row.

        Args:
            features: featurized ops.
            offsets: per row, its device's offsets (one per regime), or ``None`` (no offset).

        Raises:
            NotFittedError: before ``fit``.
        """
        check_fitted(self, "booster_")
        if len(features) == 0:
            return np.zeros((0, len(self.quantiles)))
        raw = self.booster_.predict(self._matrix(features, margin=self._margin(features, offsets)))
        raw = raw.reshape(len(features), -1)
        return np.sort(raw, axis=1)  # quantile crossing is rare but possible: keep p10 <= p50 <= p90

    def predict(self, features: pd.DataFrame, overhead_s: np.ndarray | float,
                offsets: Sequence[float] | None = None) -> np.ndarray:
        """Predicted time quantiles per op of one device, s, shape ``(n, 3)``.

        Args:
            features: featurized ops.
            overhead_s: the device's launch overhead, s.
            offsets: the device's offsets (one per regime: its own, or predicted for a GPU without data).

        Raises:
            NotFittedError: before ``fit``.
        """
        rows = None if offsets is None else [offsets] * len(features)
        modelled = self.base_time_s(features, overhead_s)[:, None] * np.exp(self.predict_log_ratio(features, rows))
        return modelled + self.first_touch_s(features)[:, None]

    def known_categories(self) -> set[str]:
        """Op categories present in the training data.

        Raises:
            NotFittedError: before ``fit``.
        """
        check_fitted(self, "vocab_")
        return set(self.vocab_["category"])

    def state(self) -> dict[str, Any]:
        """Learned state other than the booster (JSON-able)."""
        check_fitted(self, "booster_")
        return {"vocab": self.vocab_, "fallback_log_ratio": self.fallback_log_ratio_, "ranges": self.ranges_,
                "train_metrics": self.train_metrics_, "intercept": self.intercept_, "offsets": self.offsets_}

    def set_state(self, booster: xgb.Booster, state: Mapping[str, Any]) -> OpTimeModel:
        """Restore a fitted model from its booster and :meth:`state`."""
        self.booster_ = booster
        self.vocab_ = {k: list(v) for k, v in state["vocab"].items()}
        self.intercept_ = float(state["intercept"])
        self.offsets_ = {k: [float(x) for x in v] for k, v in state["offsets"].items()}
        self.fallback_log_ratio_ = float(state["fallback_log_ratio"])
        self.ranges_ = {kind: {k: list(v) for k, v in r.items()} for kind, r in state["ranges"].items()}
        self.train_metrics_ = dict(state["train_metrics"])
        return self


FIRST_TOUCH_FLOOR = 0.1
"""Share of a measured time the op model keeps when the measured first touch would take all of it (a row timed while
the kernel faulted faster than the device's first-touch measurement)."""


class OpPowerModel(_Booster):
    """Dynamic power of an op as a share of the device's dynamic range: ``(P - idle) / (TDP - idle)`` in [0, 1].

    Fitted on microbenchmark rows with a measured average power (NVML, RAPL). It prices ops of the device kinds
    it learned from (:meth:`covers`): a GPU's share of its power range per op says nothing of a CPU's, whose
    ops take the prior (:func:`~flopcast.predictor.power.prior_power_share`) until a CPU's power is measured.
    """

    def __init__(self, n_estimators: int = 120, max_depth: int = 4, learning_rate: float = 0.1,
                 min_child_weight: float = 2.0, subsample: float = 0.9, colsample_bytree: float = 0.9,
                 n_jobs: int = 2, random_state: int = 0):
        super().__init__(n_estimators, max_depth, learning_rate, min_child_weight, subsample, colsample_bytree,
                         n_jobs, random_state)

    def fit(self, features: pd.DataFrame, power_share: np.ndarray, kinds: Sequence[str] = ("gpu",)) -> OpPowerModel:
        """Fit on measured power shares (clipped to [0, 1]).

        Args:
            features: featurized op rows.
            power_share: their measured dynamic power shares.
            kinds: the device kinds of those rows (``gpu``, ``cpu``): the kinds the model prices.

        Returns:
            ``self``.

        Raises:
            ValueError: with no rows.
        """
        share = np.clip(np.asarray(power_share, float), 0.0, 1.0)
        if len(share) == 0:
            raise ValueError("no op rows with measured power to fit the power model on")
        self._learn_vocab(features)
        params = self._params(objective="reg:logistic")
        self.booster_ = xgb.train(params, self._matrix(features, share), num_boost_round=self.n_estimators)
        self.kinds_ = sorted(set(kinds))
        self.train_metrics_ = {"rows": len(share),
                               "mean_abs_error": float(np.mean(np.abs(self.predict(features) - share)))}
        return self

    def covers(self, kind: str) -> bool:
        """Whether the model learned from measured power of devices of ``kind``.

        Raises:
            NotFittedError: before ``fit``.
        """
        check_fitted(self, "kinds_")
        return kind in self.kinds_

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Predicted dynamic power share per op, in [0, 1].

        Raises:
            NotFittedError: before ``fit``.
        """
        check_fitted(self, "booster_")
        if len(features) == 0:
            return np.zeros(0)
        return np.clip(self.booster_.predict(self._matrix(features)), 0.0, 1.0)

    def state(self) -> dict[str, Any]:
        """Learned state other than the booster (JSON-able)."""
        check_fitted(self, "booster_")
        return {"vocab": self.vocab_, "train_metrics": self.train_metrics_, "kinds": self.kinds_}

    def set_state(self, booster: xgb.Booster, state: Mapping[str, Any]) -> OpPowerModel:
        """Restore a fitted model from its booster and :meth:`state` (a state without kinds: GPU rows only)."""
        self.booster_ = booster
        self.vocab_ = {k: list(v) for k, v in state["vocab"].items()}
        self.kinds_ = list(state.get("kinds", ["gpu"]))
        self.train_metrics_ = dict(state["train_metrics"])
        return self


REGIMES = ("compute", "memory")
"""The two levels a GPU gets: ops bound by its FLOP/s (the roofline's compute time is the larger) and ops
bound by its bandwidth; a GPU sustains a different share of each peak."""
MIN_OFFSET_ROWS = 20
"""Fewest rows of a GPU in a regime for an offset of that regime (fewer: the GPU's offset over all its rows)."""
LAUNCH_BOUND_LOG10 = 1.0
"""Rows whose roofline time is below 10^this launch overheads are launch-bound: they tell the host, not the
GPU, so they fit no offset."""


def regime_of(features: pd.DataFrame) -> np.ndarray:
    """Each op's regime index in :data:`REGIMES`: 0 where compute time bounds its roofline, else 1."""
    return np.where(features["bound_margin"].to_numpy(float) >= 0, 0, 1)


def device_offsets(resid: np.ndarray, devices: np.ndarray, gpu: np.ndarray, features: pd.DataFrame
                   ) -> dict[str, list[float]]:
    """Median residual (ln units) of each GPU's rows per regime, from rows that are not launch-bound.

    Args:
        resid: ``ln`` target minus the offset-free prediction, per row.
        devices: device name per row.
        gpu: whether each row is a GPU's.
        features: featurized rows (regime and launch-bound share).
    """
    regime = regime_of(features)
    busy = features["log_roof_over_launch"].to_numpy(float) >= LAUNCH_BOUND_LOG10
    out = {}
    for name in np.unique(devices[gpu]):
        mine = (devices == name) & busy
        overall = float(np.median(resid[mine])) if mine.any() else 0.0
        out[str(name)] = [float(np.median(resid[mine & (regime == r)])) if (mine & (regime == r)).sum()
                          >= MIN_OFFSET_ROWS else overall for r in range(len(REGIMES))]
    return out


def _median_ape(ratio: np.ndarray) -> float:
    """Median absolute percentage error of predicted / measured ratios, %."""
    return float(np.median(np.abs(ratio - 1.0)) * 100) if len(ratio) else math.nan
