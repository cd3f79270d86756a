"""A cost model calibrated for the device of one campaign folder (``predict --calibration DIR``).

The new-machine path is ``flopcast calibrate --quick`` then ``flopcast predict --hardware local``: the model
learns the device from the campaign. When the data the model was trained on is at hand (the released
``datasets/`` of the shipped model, or ``training=``), the whole model is refitted on it plus the campaign
(each device weighs the same in the op fit, so a 200-row quick campaign counts as much as a released CPU;
the device's few steps borrow the slopes of its kind's stage, fitted with them, and set its own levels per
mode). Otherwise the op models are kept and only the device's stages are fitted, on the model's kind
stages. The result is cached in the folder (``model-<key>/``, keyed by the model and its creation time, the
static-analysis source, the training data and the campaign), so the fit runs once. Without ``--calibration``,
``predict --hardware local`` takes this machine's campaign from the per-user store that ``calibrate`` fills
(:func:`calibrate_from_store`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.user_store import find_calibration
from flopcast.datasets.loader import Dataset, load_datasets, trusted_rows
from flopcast.predictor.analysis_cache import StepAnalysis, features_digest, zoo_step
from flopcast.predictor.featurize import HardwareView
from flopcast.predictor.io import ModelFileError, load_model, save_model
from flopcast.predictor.memory import MemoryModel
from flopcast.predictor.model import CostModel
from flopcast.predictor.step_model import StepEnergyModel, StepTimeModel
from flopcast.predictor.training import (
    FitConfig,
    FitError,
    composed_steps,
    descriptors_of,
    energy_source,
    fit_cost_model,
    fit_step_stages,
    fitted_overheads,
)

log = logging.getLogger(__name__)


def calibrate_model(model: CostModel, folder: str | Path, analyse: Callable[..., StepAnalysis] | None = None,
                    training: Dataset | None = None, cache: bool = True) -> tuple[CostModel, HardwareDescriptor]:
    """A copy of ``model`` calibrated for the device of one campaign folder.

    Args:
        model: the fitted model (left unchanged).
        folder: a ``flopcast calibrate --out`` folder of one device.
        analyse: zoo-step analysis function (``None``: :func:`~flopcast.predictor.analysis_cache.zoo_step`).
        training: the data ``model`` was trained on; ``None``: the released ``datasets/`` when their version
            is the model's, else the op models are kept as they are.
        cache: whether to keep the calibrated model in ``folder/model-<key>/`` and reuse it.

    Returns:
        The calibrated model and the folder's descriptor (renamed ``<name>-<6 hex>`` when another processor
        of the training data has its name). A device the model was trained on is returned as is.

    Raises:
        FitError: when the folder holds other than exactly one device.
    """
    analyse = analyse or zoo_step
    campaign = load_datasets([folder])
    if len(campaign.descriptors) != 1:
        raise FitError(f"--calibration {folder}: expected one device's campaign, found {len(campaign.descriptors)}")
    d = next(iter(descriptors_of(campaign).values()))
    if model.trained_name(d) is not None:
        return model, d
    if training is None:
        training = released_training_data(model)
    if training is not None:
        campaign = distinct_name(campaign, training)
    d = next(iter(descriptors_of(campaign).values()))
    key = hashlib.sha256("|".join([model.version, str(model.info.get("created")), features_digest(),
                                   training.version if training else "-", campaign.version]).encode())
    cached = Path(folder) / f"model-{key.hexdigest()[:12]}"
    if cache and cached.is_dir():
        try:
            return load_model(cached), d
        except ModelFileError as e:
            log.warning("recalibrating: %s", e)
    if training is not None and len(trusted_rows(campaign.microbench)):
        log.warning("calibrating the cost model for %s: a refit on its training data (%s) plus the campaign "
                    "in %s%s", d.name, training.version, folder,
                    " (once: cached there; the first time on a machine also analyses the training steps)"
                    if cache else "")
        out = fit_cost_model(merged(training, campaign), refit_config(model), analyse)
        out.info["calibrated_for"] = {"device": d.name, "campaign": campaign.version, "base_model": model.version}
    else:
        out = with_device_stages(model, campaign, d, analyse)
    if cache:
        try:
            save_model(out, cached)
        except OSError as e:  # a read-only folder only costs time
            log.warning("could not cache the calibrated model in %s: %s", cached, e)
    return out, d


def refit_config(model: CostModel) -> FitConfig:
    """The fit settings ``model`` was fitted with (its op model's hyperparameters and seed, its row cap)."""
    params = model.op_time.get_params()
    return FitConfig(n_estimators=int(params.pop("n_estimators")), progress=False, op_model_params=params,
                     max_rows_per_family=model.info.get("max_rows_per_family"))


def calibrate_from_store(model: CostModel, local: HardwareDescriptor,
                         analyse: Callable[..., StepAnalysis] | None = None, training: Dataset | None = None
                         ) -> tuple[CostModel, HardwareDescriptor | None, Path | None]:
    """``model`` calibrated with this machine's campaign from the per-user store, where there is one.

    Args:
        model: the fitted model (left unchanged).
        local: the probed local device; its stored campaign is found by the rule that decides ``calibrated``.
        analyse: zoo-step analysis function (``None``: :func:`~flopcast.predictor.analysis_cache.zoo_step`).
        training: as for :func:`calibrate_model`.

    Returns:
        The calibrated model, the campaign's descriptor and the entry's folder; ``(model, None, None)`` when
        the store holds no campaign of ``local`` or the stored one cannot be used (said in one warning line).
    """
    entry = find_calibration(local)
    if entry is None:
        return model, None, None
    try:
        calibrated, d = calibrate_model(model, entry.path, analyse, training)
    except Exception as e:  # a copy damaged in any way (DatasetError, FitError, pyarrow's, pandas' errors)
        reason = f"{type(e).__name__}: {' '.join(str(e).split())}"  # said, with its type: a bug stays visible
        log.warning("flopcast: warning: ignoring this machine's stored calibration in %s: %s; predicting it as "
                    "uncalibrated (rerun `flopcast calibrate` to replace it)", entry.path, reason)
        return model, None, None
    return calibrated, d, entry.path


def released_training_data(model: CostModel) -> Dataset | None:
    """The released ``datasets/`` when ``model`` was trained on exactly them, else ``None``."""
    try:
        ds = load_datasets(None)
    except (OSError, ValueError):
        return None
    return ds if ds.version == model.info.get("dataset_version") else None


def distinct_name(campaign: Dataset, training: Dataset) -> Dataset:
    """``campaign`` with its device renamed ``<name>-<6 hex>`` when a device of ``training`` has its name.

    Cloud CPUs of one brand share a probed name (``local-cpu-amd-epyc``) across generations; a campaign of
    another processor must not be merged into the released one's rows.
    """
    name, desc = next(iter(campaign.descriptors.items()))
    if name not in training.descriptors:
        return campaign
    new = f"{name}-{hashlib.sha256(repr(sorted(desc.items())).encode()).hexdigest()[:6]}"
    return Dataset(campaign.microbench.assign(hardware=new), campaign.steps.assign(hardware=new),
                   {new: {**desc, "name": new}}, campaign.checksums, campaign.meta, campaign.version)


def merged(a: Dataset, b: Dataset) -> Dataset:
    """Two datasets as one (devices of both; version from both)."""
    return Dataset(pd.concat([a.microbench, b.microbench], ignore_index=True),
                   pd.concat([a.steps, b.steps], ignore_index=True), {**a.descriptors, **b.descriptors},
                   {**a.checksums, **b.checksums}, {**a.meta, **b.meta}, f"{a.version}+{b.version}")


def with_device_stages(model: CostModel, campaign: Dataset, d: HardwareDescriptor,
                       analyse: Callable[..., StepAnalysis]) -> CostModel:
    """``model`` plus the campaign device's own stages, its op models kept (no training data at hand).

    The device's launch overhead comes from its op rows; its step time, energy and memory stages from its
    measured steps, borrowing ``model``'s kind stages (slopes, host costs) when it has few.
    """
    name = d.name
    mb = trusted_rows(campaign.microbench)
    view = HardwareView.of(d, None, model.imputed_eff.get(d.kind, {}))
    own = {"descriptor": campaign.descriptors[name], "op_rows": len(mb), "energy_source": "none",
           **fitted_overheads(mb, view)}
    local = CostModel(model.op_time, model.op_power, StepTimeModel(), StepEnergyModel(), MemoryModel(),
                      hardware={**model.hardware, name: own}, imputed_eff=model.imputed_eff, info=model.info)
    # the model's devices beside it: a GPU's steps are composed as predict composes them (the least GPU overhead)
    steps, frame = composed_steps(local, trusted_rows(campaign.steps), {name: d}, analyse)
    fit_step_stages(local, steps, frame, kinds_from=model)
    own.update(step_rows=len(steps), energy_source=energy_source(steps))
    out = CostModel(model.op_time, model.op_power, StepTimeModel(), StepEnergyModel(), MemoryModel(),
                    hardware={**model.hardware, name: own}, imputed_eff=model.imputed_eff,
                    info={**model.info, "calibrated_for": {"device": name, "campaign": campaign.version}})
    for part in ("step_time", "step_energy", "memory"):
        mine = {k: v for k, v in getattr(local, part).stages_.items() if k == name}
        getattr(out, part).stages_ = {**getattr(model, part).stages_, **mine}
    return out
