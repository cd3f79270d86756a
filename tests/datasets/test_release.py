"""Releasing a campaign folder as a ``datasets/`` folder: device renamed everywhere, provenance from the rows."""

from __future__ import annotations

import json

import pytest

from flopcast.datasets.loader import DatasetError, load_datasets
from flopcast.datasets.release import ReleaseConfig, main, release
from tests.datasets.synthetic import write_folder


def _campaign(tmp_path):
    folder = write_folder(tmp_path / "runs", "test-cpu")
    (folder / "meta.json").unlink()  # a calibrate folder has none
    return folder


def test_release_renames_the_device_and_reads_provenance_from_the_rows(tmp_path):
    campaign = _campaign(tmp_path)
    dest = tmp_path / "datasets" / "test-cpu-zen4"
    meta = release(ReleaseConfig(campaign, dest, "test-cpu-zen4", "a 2-core VM", "flopcast calibrate ..."))
    before, after = load_datasets([campaign]), load_datasets([dest])
    assert list(after.descriptors) == ["test-cpu-zen4"]
    assert set(after.microbench["hardware"]) == set(after.steps["hardware"]) == {"test-cpu-zen4"}
    assert len(after.microbench) == len(before.microbench) and len(after.steps) == len(before.steps)
    assert after.steps["time_s"].tolist() == before.steps["time_s"].tolist()
    assert json.loads((dest / "meta.json").read_text()) == meta
    assert meta["hardware"] == "test-cpu-zen4" and meta["device"] == "a 2-core VM"
    assert meta["rows"] == {"microbench": len(before.microbench), "steps": len(before.steps)}
    assert meta["campaigns"] and meta["measured_from"] <= meta["measured_to"]
    assert load_datasets([campaign, dest]).hardware == ["test-cpu", "test-cpu-zen4"]  # distinct names merge


def test_two_folders_naming_one_device_are_refused(tmp_path):
    campaign = _campaign(tmp_path)
    dest = tmp_path / "datasets" / "copy"
    release(ReleaseConfig(campaign, dest, None, "same device", "x"))
    with pytest.raises(DatasetError, match="both describe a device named 'test-cpu'"):
        load_datasets([campaign, dest])
    with pytest.raises(DatasetError, match="already holds"):
        release(ReleaseConfig(campaign, dest, "other", "same device", "x"))


def test_cli_bad_campaign_is_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), str(tmp_path / "out"), "--device", "d", "--command", "c"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("release: error:") and "no descriptor.json" in err and "\n" not in err
