"""``predict --calibration``: a model refitted with a campaign's rows (or, without training data, restaged)."""

from __future__ import annotations

import json
import logging

import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.datasets.loader import load_datasets
from flopcast.predictor.calibrated import calibrate_from_store, calibrate_model, distinct_name
from flopcast.predictor.predict import predict_on
from flopcast.predictor.training import FitConfig, fit_cost_model
from tests.datasets.synthetic import DEVICES, write_folder
from tests.predictor.conftest import synthetic_analyse as analyse


@pytest.fixture(scope="module")
def gpu_data(data_root):
    return load_datasets([data_root / "test-gpu"])


@pytest.fixture(scope="module")
def gpu_only(gpu_data):
    return fit_cost_model(gpu_data, FitConfig(n_estimators=20, progress=False), analyse=analyse)


def test_with_its_training_data_the_model_is_refitted_with_the_campaign_and_cached(gpu_only, gpu_data, tmp_path):
    folder = write_folder(tmp_path, "test-cpu", n_ops=40)
    model, d = calibrate_model(gpu_only, folder, analyse=analyse, training=gpu_data)
    assert d.name == "test-cpu" and model.trained_name(d) == "test-cpu"
    assert model.hardware["test-cpu"]["op_rows"] == 40 and model.hardware["test-cpu"]["step_rows"] > 0
    assert model.op_time is not gpu_only.op_time  # refitted with the campaign's op rows
    assert "test-cpu" not in gpu_only.hardware
    cached = [p for p in folder.iterdir() if p.name.startswith("model-")]
    assert len(cached) == 1 and (cached[0] / "metadata.json").is_file()
    again, _ = calibrate_model(gpu_only, folder, analyse=analyse, training=gpu_data)
    step = analyse("a1", 4, "train", "fp32", "adamw", "cpu")
    first = predict_on(model, step, d, "fp32", "train").step_time_s
    assert predict_on(again, step, d, "fp32", "train").step_time_s == pytest.approx(first)


def test_without_training_data_only_the_device_stages_are_fitted(gpu_only, tmp_path):
    folder = write_folder(tmp_path, "test-cpu", n_ops=40)
    model, d = calibrate_model(gpu_only, folder, analyse=analyse, cache=False)  # released data: another version
    assert model.op_time is gpu_only.op_time and model.trained_name(d) == "test-cpu"
    assert not [p for p in folder.iterdir() if p.name.startswith("model-")]


def test_a_campaign_named_like_another_processor_of_the_training_data_is_renamed(data_root, tmp_path):
    training = load_datasets([data_root / "test-cpu", data_root / "test-gpu"])
    folder = write_folder(tmp_path, "test-cpu", n_ops=10)
    desc = json.loads((folder / "descriptor.json").read_text())
    (folder / "descriptor.json").write_text(json.dumps({**desc, "extra": {"cpu_family": 25}}))
    campaign = distinct_name(load_datasets([folder]), training)
    (name,) = campaign.descriptors
    assert name.startswith("test-cpu-") and campaign.descriptors[name]["name"] == name
    assert set(campaign.microbench["hardware"]) == set(campaign.steps["hardware"]) == {name}
    assert distinct_name(campaign, training) is campaign  # no clash: unchanged


def test_the_refit_keeps_the_models_own_fit_settings(gpu_data, tmp_path):
    seeded = fit_cost_model(gpu_data, FitConfig(n_estimators=12, progress=False, max_rows_per_family=15,
                                                op_model_params={"random_state": 7, "max_depth": 4}), analyse=analyse)
    folder = write_folder(tmp_path, "test-cpu", n_ops=40)
    model, _ = calibrate_model(seeded, folder, analyse=analyse, training=gpu_data, cache=False)
    params = model.op_time.get_params()
    assert (params["n_estimators"], params["random_state"], params["max_depth"]) == (12, 7, 4)
    assert model.info["max_rows_per_family"] == 15
    assert model.hardware["test-cpu"]["op_rows"] == 30  # the campaign's 20 + 20 rows of two families, 15 each


@pytest.fixture
def filed(tmp_path, monkeypatch):
    """A ``test-cpu`` campaign filed in a private store, as ``flopcast calibrate`` leaves it."""
    from flopcast.calibration.user_store import HOME_ENV, save_campaign

    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    return save_campaign(write_folder(tmp_path / "calibrated-here", "test-cpu", n_ops=40))


CPU = HardwareDescriptor.from_dict(DEVICES["test-cpu"])


def test_the_stored_campaign_of_this_machine_calibrates_the_model(gpu_only, filed):
    model, d, path = calibrate_from_store(gpu_only, CPU, analyse=analyse)
    assert path == filed.path and d.name == "test-cpu" and model.trained_name(d) == "test-cpu"
    assert gpu_only.trained_name(CPU) is None  # left alone
    assert [p.name for p in filed.path.iterdir() if p.name.startswith("model-")]  # cached in the entry


def test_another_processor_is_not_calibrated_by_it(gpu_only, filed):
    other = HardwareDescriptor.from_dict({**DEVICES["test-cpu"], "compute_units": 64})
    assert calibrate_from_store(gpu_only, other, analyse=analyse) == (gpu_only, None, None)


def test_a_corrupt_stored_table_is_one_warning_and_no_calibration(gpu_only, filed, caplog):
    (filed.path / "steps.parquet").write_bytes(b"PAR1 not a parquet file")
    with caplog.at_level(logging.WARNING):
        assert calibrate_from_store(gpu_only, CPU, analyse=analyse) == (gpu_only, None, None)
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    message = record.getMessage()
    assert message.startswith("flopcast: warning: ignoring this machine's stored calibration in ")
    assert "\n" not in message and "uncalibrated" in message
