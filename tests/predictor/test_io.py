from __future__ import annotations

import json
import shutil

import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.io import ModelFileError, load_model
from flopcast.predictor.predict import predict_on
from tests.datasets.synthetic import DEVICES
from tests.predictor.conftest import synthetic_analyse


def test_round_trip_gives_identical_predictions(model, model_dir):
    loaded = load_model(model_dir)
    step = synthetic_analyse("a1", 4, "train", "fp32", "adamw", "cuda")
    d = HardwareDescriptor.from_dict(DEVICES["test-gpu"])
    before = predict_on(model, step, d, "fp32", "train").to_dict()
    assert predict_on(loaded, step, d, "fp32", "train").to_dict() == before
    assert loaded.version == model.version


@pytest.fixture
def copy(model_dir, tmp_path):
    return shutil.copytree(model_dir, tmp_path / "m")


@pytest.mark.parametrize(("damage", "message"), [
    ("booster_bytes", "checksum differs"),
    ("metadata_json", "not valid JSON"),
    ("format_version", "format version 999"),
    ("features", "other features"),
    ("missing_booster", "op_time.ubj is missing"),
    ("no_metadata", "metadata.json is missing"),
])
def test_damaged_model_is_refused_in_one_line(copy, damage, message):
    meta_path = copy / "metadata.json"
    meta = json.loads(meta_path.read_text())
    if damage == "booster_bytes":
        (copy / "op_time.ubj").write_bytes(b"garbage")
    elif damage == "metadata_json":
        meta_path.write_text("{not json")
    elif damage in ("format_version", "features"):
        meta.update({"format_version": 999} if damage == "format_version" else {"feature_names": ["x"]})
        meta_path.write_text(json.dumps(meta))
    elif damage == "missing_booster":
        (copy / "op_time.ubj").unlink()
    else:
        meta_path.unlink()
    with pytest.raises(ModelFileError, match=message) as e:
        load_model(copy)
    assert "\n" not in str(e.value)
