from __future__ import annotations

import json
import logging
import shutil

import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.main import main
from tests.datasets.synthetic import DEVICES

TARGET = '''
import torch
INPUTS = ["float32[B,64]"]


def build():
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
'''

REQUIRED_KEYS = {
    "flops", "bytes_accessed", "params", "peak_memory_bytes", "fits", "step_time_s", "step_time_s_p10",
    "step_time_s_p90", "step_energy_j", "step_energy_j_p10", "step_energy_j_p90", "op_mix", "unsupported_ops",
    "hardware", "calibrated", "model_version",
}
RUN_KEYS = {"run_time_s", "run_energy_kwh", "run_co2_kg"}
CPU = HardwareDescriptor.from_dict(DEVICES["test-cpu"])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "net.py").write_text(TARGET)
    for name, d in DEVICES.items():
        (root / f"{name}.json").write_text(json.dumps(d))
    partial = {k: v for k, v in DEVICES["test-gpu"].items() if k not in ("memory_bytes", "kind")}
    (root / "partial.json").write_text(json.dumps(partial))
    return root


def _predict(files, model_dir, *extra):
    return main(["predict", str(files / "net.py:build"), "--batch-size", "8", "--model", str(model_dir), *extra])


def test_json_has_the_contract_keys(files, model_dir, capsys):
    code = _predict(files, model_dir, "--hardware", str(files / "test-gpu.json"), "--json",
                    "--dataset-size", "1000", "--epochs", "2", "--country", "FR", "--pue", "1.2")
    records = json.loads(capsys.readouterr().out)
    assert code == 0 and isinstance(records, list) and len(records) == 1  # one shape, whatever the device count
    out = records[0]
    assert set(out) >= REQUIRED_KEYS | RUN_KEYS
    assert out["hardware"] == "test-gpu" and out["calibrated"] is True and out["steps"] == 250
    assert out["run_co2_kg"] == pytest.approx(out["run_energy_kwh"] * 1.2 * out["carbon_intensity_g_per_kwh"] / 1000)


def test_several_devices_make_one_comparison(files, model_dir, capsys):
    devices = f"{files / 'test-gpu.json'},{files / 'test-cpu.json'},h100"
    assert _predict(files, model_dir, "--hardware", devices) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("test-gpu", "test-cpu", "h100-sxm")) and "step time" in out
    assert _predict(files, model_dir, "--hardware", devices, "--json") == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["hardware"] for r in records] == ["test-gpu", "test-cpu", "h100-sxm"]
    assert [r["calibrated"] for r in records] == [True, True, False]


def test_max_batch_in_json(files, model_dir, capsys):
    assert _predict(files, model_dir, "--hardware", str(files / "test-gpu.json"), "--json", "--max-batch") == 0
    assert json.loads(capsys.readouterr().out)[0]["max_batch_size"] > 8


@pytest.fixture
def corrupt_model(model_dir, tmp_path):
    copy = shutil.copytree(model_dir, tmp_path / "bad")
    (copy / "op_time.ubj").write_bytes(b"x")
    return copy


@pytest.mark.parametrize(("args", "message"), [
    (["--hardware", "h1000"], "did you mean"),
    (["--hardware", "{partial}"], "missing field(s): kind, memory_bytes"),
    (["--hardware", "h100", "--dataset-size", "10", "--country", "ZZZ"], "unknown --country"),
    (["--hardware", "h100", "--epochs", "3"], "--epochs 3 needs --dataset-size"),
    (["--hardware", "h100", "--dataset-size", "0"], "--dataset-size must be >= 1, not 0"),
    (["--hardware", "h100", "--pue", "0.5"], "--pue must be >= 1"),
    (["--hardware", "h100", "--model", "{bad}"], "checksum differs"),
])
def test_bad_input_is_one_line_and_exit_2(files, model_dir, corrupt_model, capsys, args, message):
    args = [a.format(partial=files / "partial.json", bad=corrupt_model) for a in args]
    code = main(["predict", str(files / "net.py:build"), "--model", str(model_dir), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0], err


def test_extrapolation_warns(files, model_dir, capsys):
    future = dict(DEVICES["test-gpu"], name="future", peak_flops_per_s={"fp32": 1e17},
                  memory_bandwidth_bytes_per_s=1e15, calibrated=False)
    (files / "future.json").write_text(json.dumps(future))
    assert _predict(files, model_dir, "--hardware", str(files / "future.json"), "--json") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["extrapolated"] is True
    assert "warning: future: prediction extrapolates" in captured.err


def test_region_is_a_deprecated_alias_of_country(files, model_dir, capsys):
    assert _predict(files, model_dir, "--hardware", "h100", "--dataset-size", "100", "--region", "DE", "--json") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["region"] == "DEU"
    assert captured.err.strip() == "flopcast: warning: --region is deprecated, use --country"


def test_fit_writes_a_loadable_model(data_root, tmp_path, capsys):
    data = shutil.copytree(data_root / "test-gpu", tmp_path / "data" / "test-gpu")
    (data / "steps.parquet").unlink()
    out = tmp_path / "model"
    assert main(["fit", "--data", str(tmp_path / "data"), "--out", str(out), "--n-estimators", "5",
                 "--no-progress"]) == 0
    assert "wrote model" in capsys.readouterr().out and (out / "metadata.json").is_file()
    assert main(["fit", "--data", str(tmp_path / "nothing"), "--out", str(out)]) == 2


@pytest.fixture(scope="module")
def gpu_only_dir(data_root, tmp_path_factory):
    """A model that has never seen ``test-cpu``: the new machine of the store tests."""
    from flopcast.datasets.loader import load_datasets
    from flopcast.predictor.io import save_model
    from flopcast.predictor.training import FitConfig, fit_cost_model
    from tests.predictor.conftest import synthetic_analyse

    model = fit_cost_model(load_datasets([data_root / "test-gpu"]), FitConfig(n_estimators=20, progress=False),
                           analyse=synthetic_analyse)
    return save_model(model, tmp_path_factory.mktemp("gpu-only"))


@pytest.fixture
def this_machine(tmp_path, monkeypatch):
    """This machine probes as ``test-cpu``; a private store; zoo steps analysed synthetically."""
    from flopcast.calibration import probe
    from flopcast.calibration.user_store import HOME_ENV
    from flopcast.predictor import calibrated
    from tests.predictor.conftest import synthetic_analyse

    monkeypatch.setattr(probe, "probe_local", lambda device="auto": [CPU])
    monkeypatch.setattr(calibrated, "zoo_step", synthetic_analyse)
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    return tmp_path


def _plain_local(files, model_dir, capsys):
    code = _predict(files, model_dir, "--hardware", "local", "--json")
    captured = capsys.readouterr()
    (record,) = json.loads(captured.out)  # --json: a list, one object per device
    return code, record, captured.err


def test_a_plain_predict_uses_the_campaign_calibrate_filed_from_another_directory(files, gpu_only_dir, this_machine,
                                                                                   monkeypatch, capsys):
    from flopcast.calibration.user_store import find_calibration, save_campaign
    from tests.datasets.synthetic import write_folder

    code, before, _ = _plain_local(files, gpu_only_dir, capsys)
    assert code == 0 and before["calibrated"] is False and "calibration" not in before
    monkeypatch.chdir(this_machine)
    save_campaign(write_folder(this_machine / "calibrated-here", "test-cpu", n_ops=40))
    elsewhere = this_machine / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, after, _ = _plain_local(files, gpu_only_dir, capsys)
    entry = find_calibration(CPU)
    assert code == 0 and after["calibrated"] is True and after["calibrated_as"] == "test-cpu"
    assert after["calibration"] == str(entry.path) and f"calibrated on {entry.path}" in after["model_version"]
    assert after["step_time_s_p90"] / after["step_time_s_p10"] < before["step_time_s_p90"] / before["step_time_s_p10"]


def test_a_corrupt_store_warns_once_and_predicts_uncalibrated(files, gpu_only_dir, this_machine, capsys, caplog):
    from flopcast.calibration.user_store import save_campaign
    from tests.datasets.synthetic import write_folder

    entry = save_campaign(write_folder(this_machine / "c", "test-cpu", n_ops=40))
    (entry.path / "microbench.parquet").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        code, out, _ = _plain_local(files, gpu_only_dir, capsys)
    assert code == 0 and out["calibrated"] is False
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.startswith(f"flopcast: warning: ignoring this machine's stored calibration in {entry.path}: ")
    assert "\n" not in line


def test_calibration_dir_overrides_the_store(files, gpu_only_dir, this_machine, capsys, caplog):
    from flopcast.calibration.user_store import save_campaign
    from tests.datasets.synthetic import write_folder

    entry = save_campaign(write_folder(this_machine / "c", "test-cpu", n_ops=40))
    (entry.path / "microbench.parquet").write_bytes(b"garbage")  # the store is not even read
    folder = write_folder(this_machine / "explicit", "test-cpu", n_ops=40)
    with caplog.at_level(logging.WARNING):
        assert _predict(files, gpu_only_dir, "--hardware", "local", "--calibration", str(folder), "--json") == 0
    (out,) = json.loads(capsys.readouterr().out)
    assert out["calibrated"] is True and out["calibration"] == str(folder)
    assert not [r for r in caplog.records if "stored calibration" in r.getMessage()]


def test_the_prediction_table_never_cuts_a_device_name(files, model_dir, capsys, monkeypatch):
    long = dict(DEVICES["test-cpu"], name="local-cpu-intel-r-xeon-r-processor-887cb3")
    (files / "long.json").write_text(json.dumps(long))
    monkeypatch.setenv("COLUMNS", "80")
    devices = f"{files / 'test-gpu.json'},h100,{files / 'long.json'}"
    assert _predict(files, model_dir, "--hardware", devices) == 0
    out = capsys.readouterr().out
    assert "…" not in out and max(map(len, out.splitlines())) <= 80
    assert "local-cpu-intel-r-xeon-r-processor-887cb3" in out and "h100-sxm" in out
