from __future__ import annotations

from flopcast.datasets.releases import OWN, released_devices


def test_the_release_says_who_measured_each_device():
    devices = released_devices()
    assert devices["h200"].measured_by == OWN and not devices["h200"].external
    t4 = devices["t4"]
    assert t4.external and t4.measured_by.startswith("NeuSight") and t4.op_rows > 1000 and t4.steps >= 1
    assert t4.describe().startswith("NeuSight (external): ") and t4.describe().endswith(f"{t4.steps} steps")


def test_a_folder_without_a_readable_descriptor_is_skipped(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "descriptor.json").write_text("{not json")
    assert released_devices(tmp_path) == {}
