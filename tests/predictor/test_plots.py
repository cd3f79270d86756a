from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from importlib import resources

import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.features.api import analyze_config
from flopcast.features.config import AnalyzeConfig
from flopcast.predictor.analysis_cache import StepAnalysis
from flopcast.predictor.main import main
from flopcast.predictor.physical import physical_device, physical_step
from flopcast.predictor.plots import ops_on_device
from flopcast.predictor.predict import predict_on
from tests.datasets.synthetic import DEVICES

PHOTONIC = resources.files("flopcast.predictor").joinpath("hypothetical", "photonic-matrix-engine.json")


@pytest.fixture(scope="module")
def files(small_net):
    return small_net


@pytest.fixture(scope="module")
def analysis(files):
    return analyze_config(AnalyzeConfig(target=f"{files / 'net.py'}:build", batch_size=8, device="cuda"))


def test_op_times_are_the_predictions_own(model, analysis):
    gpu = HardwareDescriptor.from_dict(DEVICES["test-gpu"])
    p = predict_on(model, StepAnalysis.of(analysis), gpu, "fp32", "train")
    ops = ops_on_device(model, analysis, gpu, "fp32")
    assert ops.frame["time_s"].sum() == pytest.approx(p.composed.ops_s)
    assert set(ops.frame["module"]) >= {"0", "2", "(root: loss, optimizer)"}
    photonic = HardwareDescriptor.load(str(PHOTONIC))
    on_photonic = ops_on_device(model, analysis, photonic, "fp32")
    step = physical_step(StepAnalysis.of(analysis).ops, physical_device(photonic))
    assert on_photonic.frame["time_s"].sum() == pytest.approx(step["time_s"][1])


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_plot_writes_every_figure_as_png_and_svg(files, model_dir, tmp_path, capsys):
    args = ["predict", f"{files / 'net.py'}:build", "--batch-size", "8", "--model", str(model_dir), "--hardware",
            f"{files / 'gpu.json'},{PHOTONIC}", "--dataset-size", "1000"]
    assert main([*args, "--plot", str(tmp_path / "a")]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    stems = {"roofline-test-gpu", "roofline-photonic-matrix-engine", "modules-time-test-gpu",
             "modules-time-photonic-matrix-engine", "op-mix-time", "devices"}
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("png", "svg"))
    assert all(_is_png(p) for p in (tmp_path / "a").glob("*.png"))
    for svg in (tmp_path / "a").glob("*.svg"):
        assert ET.parse(svg).getroot().tag.endswith("svg")
    assert main([*args, "--plot", str(tmp_path / "b")]) == 0  # the same figures, byte for byte
    assert (tmp_path / "a" / "devices.svg").read_bytes() == (tmp_path / "b" / "devices.svg").read_bytes()
    assert "wrote" in capsys.readouterr().err


def test_suggest_plot_compares_the_pool(files, model_dir, tmp_path):
    (files / "pool.yaml").write_text("gpus:\n  - {hardware: gpu.json, partition: p, gres: g}\n"
                                     "  - {hardware: t4, partition: q, gres: t4}\n")
    assert main(["suggest", f"{files / 'net.py'}:build", "--model", str(model_dir), "--pool", str(files / "pool.yaml"),
                 "--dataset-size", "100", "--json", "--plot", str(tmp_path)]) == 0
    assert _is_png(tmp_path / "suggest.png") and (tmp_path / "suggest.svg").is_file()


def test_missing_matplotlib_says_what_to_install(files, model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = main(["predict", f"{files / 'net.py'}:build", "--model", str(model_dir), "--hardware",
                 str(files / "gpu.json"), "--plot", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["flopcast: error: matplotlib is not installed: pip install 'flopcast[plots]'"]


def test_a_file_in_the_way_of_the_plot_folder_is_one_line(files, model_dir, tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    code = main(["predict", f"{files / 'net.py'}:build", "--model", str(model_dir), "--hardware",
                 str(files / "gpu.json"), "--plot", str(tmp_path / "taken")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot write the figures" in err[0]
