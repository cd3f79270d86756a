from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.user_store import (
    ENTRY_FILE,
    HOME_ENV,
    CalibrationStoreError,
    calibrations_dir,
    find_calibration,
    list_calibrations,
    save_campaign,
    store_home,
)
from tests.datasets.synthetic import DEVICES, write_folder

CPU = HardwareDescriptor.from_dict(DEVICES["test-cpu"])


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    return tmp_path / "home"


def campaign(root: Path, **descriptor) -> Path:
    folder = write_folder(root, "test-cpu", n_ops=20)
    if descriptor:
        path = folder / "descriptor.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **descriptor}))
    return folder


def test_home_is_the_env_var_else_the_platform_user_data_dir(home, monkeypatch):
    assert store_home() == home and calibrations_dir() == home / "calibrations"
    monkeypatch.delenv(HOME_ENV)
    from platformdirs import user_data_dir

    assert store_home() == Path(user_data_dir("flopcast", appauthor=False))


def test_a_campaign_filed_in_one_directory_is_found_from_another(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    entry = save_campaign(campaign(tmp_path / "where-i-calibrated"))
    assert entry.path.parent == home / "calibrations" and entry.name == "test-cpu"
    assert entry.rows == {"microbench": 20, "steps": 48} and entry.source.endswith("where-i-calibrated/test-cpu")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = find_calibration(CPU)
    assert found is not None and found.path == entry.path
    assert (found.path / "descriptor.json").is_file() and (found.path / "microbench.parquet").is_file()


@pytest.mark.parametrize("other", [{"compute_units": 64}, {"extra": {"cpu_family": 26}}, {"kind": "gpu"}])
def test_another_processor_does_not_find_it(home, tmp_path, other):
    save_campaign(campaign(tmp_path, extra={"cpu_family": 25}))
    probed = HardwareDescriptor.from_dict({**DEVICES["test-cpu"], "extra": {"cpu_family": 25}, **other})
    assert find_calibration(probed) is None


def test_a_new_campaign_of_the_same_device_replaces_the_old_one(home, tmp_path):
    first = save_campaign(campaign(tmp_path / "a"))
    (first.path / "model-stale").mkdir()  # a cached calibrated model of the old campaign
    folder = campaign(tmp_path / "b")
    steps = pd.read_parquet(folder / "steps.parquet")
    steps.iloc[:10].to_parquet(folder / "steps.parquet", index=False)
    second = save_campaign(folder)
    assert second.path == first.path and second.rows["steps"] == 10 and "/b/" in second.source
    assert not (second.path / "model-stale").exists()
    entries, problems = list_calibrations()
    assert [e.path for e in entries] == [second.path] and problems == []
    assert not [p for p in (home / "calibrations").iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda p: (p / ENTRY_FILE).write_text("{not json"), "unreadable"),
    (lambda p: (p / "descriptor.json").unlink(), "descriptor.json is missing"),
    (lambda p: (p / ENTRY_FILE).write_text(json.dumps({**json.loads((p / ENTRY_FILE).read_text()),
                                                       "schema_version": "0"})), "stale"),
])
def test_a_corrupt_or_stale_entry_is_one_warning_line_and_not_used(home, tmp_path, caplog, damage, reason):
    entry = save_campaign(campaign(tmp_path))
    damage(entry.path)
    with caplog.at_level(logging.WARNING):
        assert find_calibration(CPU) is None
    (record,) = caplog.records
    assert reason in record.getMessage() and "\n" not in record.getMessage()
    assert "rerun `flopcast calibrate`" in record.getMessage()
    entries, problems = list_calibrations()
    assert entries == [] and len(problems) == 1 and reason in problems[0]


def test_a_corrupt_entry_of_another_device_is_not_reported_here(home, tmp_path, caplog):
    other = save_campaign(campaign(tmp_path, compute_units=64))
    (other.path / ENTRY_FILE).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert find_calibration(CPU) is None
    assert caplog.records == []


def test_nothing_stored_is_none_without_a_warning(home, caplog):
    with caplog.at_level(logging.WARNING):
        assert find_calibration(CPU) is None
    assert list_calibrations() == ([], []) and caplog.records == []


def test_a_campaign_without_trusted_rows_or_descriptor_is_refused(home, tmp_path):
    folder = campaign(tmp_path)
    for table in ("microbench", "steps"):
        df = pd.read_parquet(folder / f"{table}.parquet")
        df.assign(trusted=False).to_parquet(folder / f"{table}.parquet", index=False)
    with pytest.raises(CalibrationStoreError, match="no trusted rows"):
        save_campaign(folder)
    (folder / "descriptor.json").unlink()
    with pytest.raises(CalibrationStoreError, match=r"no readable descriptor\.json"):
        save_campaign(folder)
    assert list_calibrations() == ([], [])


def test_an_unwritable_home_is_a_one_line_error(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "a-file"))
    with pytest.raises(CalibrationStoreError, match="cannot write the calibration store") as info:
        save_campaign(campaign(tmp_path))
    assert "\n" not in str(info.value)


def test_campaign_jsonl_tables_are_copied_too(home, tmp_path):
    folder = campaign(tmp_path)
    rows = pd.read_parquet(folder / "steps.parquet").head(5)
    (folder / "steps.parquet").unlink()
    (folder / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows.to_dict("records")))
    entry = save_campaign(folder)
    assert (entry.path / "steps.jsonl").is_file() and entry.rows["steps"] == 5
