from __future__ import annotations

import copy
import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.main import main
from flopcast.predictor.physical import PhysicalDescriptorError, physical_device, physical_step

DEVICE = {
    "name": "toy-photonic", "kind": "other", "peak_flops_per_s": {"fp32": 1e12}, "memory_bandwidth_bytes_per_s": 1e9,
    "memory_bytes": 2**30,
    "extra": {"physical": {
        "energy_per_mac_j": 1e-12, "energy_per_byte_j": 1e-10, "static_power_w": 2.0,
        "host": {"peak_flops_per_s": {"fp32": 1e10}, "memory_bandwidth_bytes_per_s": 1e8, "energy_per_mac_j": 1e-11,
                 "energy_per_byte_j": 2e-10, "static_power_w": 3.0},
        "placement": {"matmul": "accelerator", "default": "host"}, "utilisation": [1.0, 0.5, 0.25],
        "energy_factor": 2.0, "per_op_overhead_s": 1e-6, "assumptions": ["toy figures"]}},
}
EXAMPLES = ("photonic-matrix-engine.json", "analog-in-memory-pcm.json")


def _ops() -> pd.DataFrame:
    return pd.DataFrame({
        "op": ["aten.mm", "aten.add", "aten.view"], "category": ["matmul", "elementwise", "data-movement"],
        "phase": "forward", "dtype": "float32", "input_shapes": "[]", "output_shapes": "[]",
        "flops": [2_000_000, 1000, 0], "bytes_read": [8000, 8000, 0], "bytes_written": [4000, 4000, 0],
        "outcome": ["formula", "formula", "zero"]})


def test_step_matches_the_hand_count():
    s = physical_step(_ops(), physical_device(HardwareDescriptor.from_dict(DEVICE)))
    mm = max(2e6 / 1e12, 12_000 / 1e9)  # 2 us compute, 12 us memory on the accelerator -> 12 us
    add = max(1000 / 1e10, 12_000 / 1e8)  # host: 0.1 us compute, 120 us memory -> 120 us
    median = (mm + add + 2 * 1e-6) / 0.5  # 1 us per op (the view does no work), all at utilisation 0.5
    assert s["time_s"][1] == pytest.approx(median)
    assert s["time_s"][0] == pytest.approx(mm + add + 2e-6)
    assert s["time_s"][2] == pytest.approx((mm + add + 2e-6) / 0.25)
    dynamic = 1e6 * 1e-12 + 12_000 * 1e-10 + 500 * 1e-11 + 12_000 * 2e-10  # MACs x J/MAC + bytes x J/B, each engine
    assert s["energy_j"][1] == pytest.approx(dynamic + 5.0 * median)  # static: 2 W + 3 W
    assert s["energy_j"][0] == pytest.approx(dynamic / 2 + 5.0 * s["time_s"][0])
    assert s["engine_s"]["accelerator"] == pytest.approx((mm + 1e-6) / 0.5)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "net.py").write_text('import torch\nINPUTS = ["float32[B,64]"]\n\n\ndef build():\n'
                                     '    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU())\n')
    (tmp_path / "toy.json").write_text(json.dumps(DEVICE))
    return tmp_path


def test_predict_marks_a_physical_device_uncalibrated_with_its_assumptions(files, model_dir, capsys):
    code = main(["predict", str(files / "net.py:build"), "--batch-size", "4", "--model", str(model_dir),
                 "--hardware", str(files / "toy.json"), "--json", "--dataset-size", "100"])
    r = json.loads(capsys.readouterr().out)[0]
    assert code == 0 and r["calibrated"] is False and r["energy_source"] == "physical-model"
    assert r["physical_model"] is True and "toy figures" in r["notes"]
    assert r["step_time_s_p10"] < r["step_time_s"] < r["step_time_s_p90"]
    assert r["run_time_s"] == pytest.approx(r["step_time_s"] * 25)  # the run totals of every other device


@pytest.mark.parametrize("name", EXAMPLES)
def test_shipped_examples_are_valid_and_sourced(name):
    text = resources.files("flopcast.predictor").joinpath("hypothetical", name).read_text()
    d = HardwareDescriptor.from_dict(json.loads(text))
    device = physical_device(d)
    assert d.source and device.assumptions and "host" in device.engines


@pytest.mark.parametrize(("path", "value", "message"), [
    (("energy_per_mac_j",), None, "missing field energy_per_mac_j"),
    (("energy_per_byte_j",), 0, "field energy_per_byte_j must be a number > 0, not 0"),
    (("host", "static_power_w"), -1, "extra.physical.host: field static_power_w must be a number >= 0, not -1"),
    (("host", "peak_flops_per_s"), {"fp32": 0}, "peak_flops_per_s: field fp32 must be a number > 0"),
    (("placement",), {"matmul": "gpu"}, "matmul runs on 'gpu'"),
])
def test_bad_descriptor_is_one_line_naming_the_field(files, model_dir, capsys, path, value, message):
    bad = copy.deepcopy(DEVICE)
    section = bad["extra"]["physical"]
    for key in path[:-1]:
        section = section[key]
    if value is None:
        del section[path[-1]]
    else:
        section[path[-1]] = value
    (files / "bad.json").write_text(json.dumps(bad))
    code = main(["predict", str(files / "net.py:build"), "--model", str(model_dir), "--hardware",
                 str(files / "bad.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_zero_memory_is_named():
    with pytest.raises(PhysicalDescriptorError, match="memory_bytes must be a number > 0"):
        physical_device(HardwareDescriptor.from_dict(dict(DEVICE, memory_bytes=0)))


def test_utilisation_must_fall_from_fast_to_slow():
    bad = copy.deepcopy(DEVICE)
    bad["extra"]["physical"]["utilisation"] = [0.5, 1.0, 0.25]
    with pytest.raises(PhysicalDescriptorError, match="utilisation"):
        physical_device(HardwareDescriptor.from_dict(bad))
    assert np.isfinite(physical_step(_ops(), physical_device(HardwareDescriptor.from_dict(DEVICE)))["time_s"]).all()
