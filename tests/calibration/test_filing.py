from __future__ import annotations

import json

import pytest

from flopcast.calibration import filing
from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.user_store import HOME_ENV, find_calibration
from tests.datasets.synthetic import DEVICES, write_folder

CPU = HardwareDescriptor.from_dict(DEVICES["test-cpu"])
GPU = HardwareDescriptor.from_dict(DEVICES["test-gpu"])


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    return tmp_path / "home"


def test_filed_campaign_prints_the_plain_predict_that_uses_it(home, tmp_path, monkeypatch):
    monkeypatch.setattr(filing, "probe_local", lambda: [CPU])
    out = filing.file_campaign(write_folder(tmp_path, "test-cpu", n_ops=20))
    filed, command = out.splitlines()
    entry = find_calibration(CPU)
    assert filed == f"filed as this machine's calibration in {entry.path}"
    assert command.startswith("predict with it: flopcast predict ") and command.endswith(" --hardware local")
    assert "tabular_mlp.py:build --batch-size 512" in command and "--calibration" not in command


def test_a_cpu_campaign_on_a_gpu_machine_names_the_cpu_and_its_folder(home, tmp_path, monkeypatch):
    monkeypatch.setattr(filing, "probe_local", lambda: [GPU, CPU])  # `local` is the first GPU there
    command = filing.file_campaign(write_folder(tmp_path, "test-cpu", n_ops=20)).splitlines()[1]
    assert f"--hardware test-cpu --calibration {find_calibration(CPU).path}" in command


def test_a_campaign_that_cannot_be_filed_says_why_and_how_to_use_the_folder(home, tmp_path, monkeypatch):
    folder = write_folder(tmp_path, "test-cpu", n_ops=20)
    (folder / "descriptor.json").write_text(json.dumps({"name": "broken"}))
    reason, command = filing.file_campaign(folder).splitlines()
    assert reason.startswith("not filed as this machine's calibration: ") and "descriptor.json" in reason
    assert command.endswith(f"--hardware local --calibration {folder}")


def test_the_example_target_is_relative_under_the_working_directory(monkeypatch, tmp_path):
    absolute = filing.example_target()
    assert absolute.endswith("features/examples/tabular_mlp.py:build")
    monkeypatch.chdir(tmp_path)
    assert filing.example_target().startswith("/")
