"""Save and load a cost model as XGBoost UBJ boosters plus one metadata JSON; never pickles.

A model directory holds ``op_time.ubj``, ``op_power.ubj`` (when fitted) and ``metadata.json``: format
version, feature names, every learned non-tree value, SHA-256 of each booster file, dataset version and
checksums, training metrics and the flopcast version. Loading refuses, in one line, a directory that is
incomplete, corrupt or of another format or feature set.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import xgboost as xgb

from flopcast.datasets.loader import sha256_file
from flopcast.features.version import flopcast_version
from flopcast.predictor.featurize import FEATURES
from flopcast.predictor.memory import MemoryModel
from flopcast.predictor.model import FORMAT_VERSION, CostModel
from flopcast.predictor.op_model import OpPowerModel, OpTimeModel
from flopcast.predictor.step_model import StepEnergyModel, StepTimeModel

METADATA = "metadata.json"
BOOSTERS = {"op_time": "op_time.ubj", "op_power": "op_power.ubj"}


class ModelFileError(ValueError):
    """A saved model is missing, corrupt, or of another format version or feature set."""


def default_model_dir() -> Path:
    """The model shipped in the package (``flopcast/predictor/default_model``)."""
    return Path(str(resources.files("flopcast.predictor").joinpath("default_model")))


def save_model(model: CostModel, out: str | Path) -> Path:
    """Write ``model`` to directory ``out`` (created; existing model files replaced).

    Returns:
        The directory.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    parts: dict[str, Any] = {"op_time": model.op_time, "op_power": model.op_power}
    for name, est in parts.items():
        path = out / BOOSTERS[name]
        if est is None:
            path.unlink(missing_ok=True)
            continue
        est.booster_.save_model(str(path))
        files[BOOSTERS[name]] = sha256_file(path)
    meta = {
        "format_version": FORMAT_VERSION,
        "flopcast_version": flopcast_version(),
        "feature_names": list(FEATURES),
        "files": files,
        "op_time": {"params": model.op_time.get_params(), "state": model.op_time.state()},
        "op_power": None if model.op_power is None else {"params": model.op_power.get_params(),
                                                         "state": model.op_power.state()},
        "step_time": model.step_time.state(),
        "step_energy": model.step_energy.state(),
        "memory": model.memory.state(),
        "hardware": model.hardware,
        "imputed_eff": model.imputed_eff,
        "info": model.info,
    }
    tmp = out / f"{METADATA}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True, default=float) + "\n")
    os.replace(tmp, out / METADATA)
    return out


def read_metadata(model_dir: str | Path) -> dict[str, Any]:
    """The checked metadata of a saved model.

    Raises:
        ModelFileError: missing or unreadable metadata, another format version or feature set, or a booster
            file whose checksum differs.
    """
    model_dir = Path(model_dir)
    path = model_dir / METADATA
    if not path.is_file():
        raise ModelFileError(f"no cost model in {model_dir}: {METADATA} is missing (train one with `flopcast fit`)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"corrupt model file {path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        found = meta.get("format_version") if isinstance(meta, dict) else None
        raise ModelFileError(f"model in {model_dir} has format version {found}, this flopcast reads version "
                             f"{FORMAT_VERSION}: retrain it with `flopcast fit`")
    if meta.get("feature_names") != list(FEATURES):
        raise ModelFileError(f"model in {model_dir} was trained on other features than this flopcast computes "
                             f"(flopcast {meta.get('flopcast_version')}): retrain it with `flopcast fit`")
    for name, digest in meta.get("files", {}).items():
        booster = model_dir / name
        if not booster.is_file():
            raise ModelFileError(f"model in {model_dir} is incomplete: {name} is missing")
        if sha256_file(booster) != digest:
            raise ModelFileError(f"corrupt model file {booster}: its checksum differs from {METADATA}")
    return meta


def _booster(path: Path) -> xgb.Booster:
    try:
        return xgb.Booster(model_file=str(path))
    except xgb.core.XGBoostError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
        raise ModelFileError(f"corrupt model file {path}: {first}") from None


def load_model(model_dir: str | Path | None = None) -> CostModel:
    """Load a saved model (the packaged default when ``model_dir`` is ``None``).

    Raises:
        ModelFileError: see :func:`read_metadata`; also for a booster XGBoost cannot read.
    """
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    meta = read_metadata(model_dir)
    try:
        op_time = OpTimeModel(**meta["op_time"]["params"]).set_state(
            _booster(model_dir / BOOSTERS["op_time"]), meta["op_time"]["state"])
        op_power = None
        if meta.get("op_power"):
            op_power = OpPowerModel(**meta["op_power"]["params"]).set_state(
                _booster(model_dir / BOOSTERS["op_power"]), meta["op_power"]["state"])
        return CostModel(
            op_time=op_time, op_power=op_power,
            step_time=StepTimeModel().set_state(meta["step_time"]),
            step_energy=StepEnergyModel().set_state(meta["step_energy"]),
            memory=MemoryModel().set_state(meta["memory"]),
            hardware=meta["hardware"], imputed_eff=meta["imputed_eff"], info=meta["info"],
        )
    except (KeyError, TypeError) as e:
        raise ModelFileError(f"corrupt model metadata in {model_dir}: missing or malformed {e}") from None
