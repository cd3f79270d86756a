from __future__ import annotations

import copy
import math
from dataclasses import replace

import pandas as pd
import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.datasets.loader import load_datasets
from flopcast.predictor.carbon import UnknownRegionError, carbon_intensity_g_per_kwh
from flopcast.predictor.predict import max_batch_size, predict_on, run_totals, widen
from tests.datasets.synthetic import DEVICES
from tests.predictor.conftest import synthetic_analyse

GPU = HardwareDescriptor.from_dict(DEVICES["test-gpu"])


def _width(q):
    return math.log(q[2] / q[0])


def test_trained_device_is_calibrated_with_ordered_intervals(model):
    p = predict_on(model, synthetic_analyse("b2", 1, "train", "fp32", "adamw", "cuda"), GPU, "fp32", "train")
    assert p.calibrated and not p.extrapolated
    assert p.step_time_s[0] <= p.step_time_s[1] <= p.step_time_s[2]
    assert p.step_energy_j[0] <= p.step_energy_j[1] <= p.step_energy_j[2]
    assert p.fits and p.peak_memory_bytes > p.est_peak_memory_bytes


def test_uncalibrated_device_gets_wider_intervals(model):
    step = synthetic_analyse("b2", 4, "train", "fp32", "adamw", "cuda")
    known = predict_on(model, step, GPU, "fp32", "train")
    other = predict_on(model, step, replace(GPU, name="other-gpu", calibrated=False), "fp32", "train")
    assert not other.calibrated
    assert _width(other.step_time_s) > _width(known.step_time_s)
    assert _width(other.step_energy_j) > _width(known.step_energy_j)


def test_a_device_matched_under_another_name_says_which_it_was_priced_as(model):
    step = synthetic_analyse("b2", 4, "train", "fp32", "adamw", "cuda")
    named = copy.copy(model)  # the trained GPU as a release names it: with the vendor name a probe reports
    named.hardware = copy.deepcopy(model.hardware)
    named.hardware["test-gpu"]["descriptor"]["vendor_name"] = "Test GPU"
    gpu = replace(GPU, vendor_name="Test GPU")
    same = predict_on(named, step, gpu, "fp32", "train")
    probed = predict_on(named, step, replace(gpu, name="local-gpu-probed"), "fp32", "train")
    other = predict_on(named, step, replace(gpu, name="other-gpu", vendor_name="Other GPU"), "fp32", "train")
    assert same.calibrated_as == "test-gpu" and same.to_dict()["calibrated_as"] == "test-gpu"
    assert probed.calibrated and probed.calibrated_as == "test-gpu" and probed.hardware == "local-gpu-probed"
    assert probed.step_time_s == same.step_time_s
    assert not other.calibrated and other.calibrated_as is None


def test_a_prediction_says_who_measured_its_device(model):
    from flopcast.predictor.cli import calibrated_cell

    step = synthetic_analyse("b2", 4, "train", "fp32", "adamw", "cuda")
    imported = copy.copy(model)
    imported.hardware = copy.deepcopy(model.hardware)
    imported.hardware["test-gpu"]["descriptor"]["extra"] = {"measured_by": "NeuSight (external)"}
    own, theirs = predict_on(model, step, GPU, "fp32", "train"), predict_on(imported, step, GPU, "fp32", "train")
    spec = predict_on(model, step, replace(GPU, name="other-gpu"), "fp32", "train")
    assert (own.measured_by, theirs.measured_by, spec.measured_by) == ("flopcast", "NeuSight (external)", None)
    assert calibrated_cell(own.to_dict()) == "yes"
    assert calibrated_cell(theirs.to_dict()) == "yes, measured by NeuSight (external)"
    assert calibrated_cell(spec.to_dict()) == "no: spec sheet (wider intervals)"


def test_widen_keeps_the_median():
    lo, mid, hi = widen((1.0, 2.0, 3.0))
    assert mid == 2.0 and lo < 1.0 and hi > 3.0


def test_unknown_category_falls_back_to_roofline(model):
    step = synthetic_analyse("b2", 4, "train", "fp32", "adamw", "cuda")
    ops = step.ops.copy()
    ops.loc[0, "category"] = "softmax"
    p = predict_on(model, replace(step, ops=ops), GPU, "fp32", "train")
    assert p.composed.fallback == {"softmax": 1}
    assert any("predicted from the roofline" in n for n in p.notes)


def test_device_beyond_the_training_range_is_extrapolated(model):
    future = replace(GPU, name="future-gpu", peak_flops_per_s={"fp32": 6e15}, memory_bandwidth_bytes_per_s=3e14)
    p = predict_on(model, synthetic_analyse("a1", 4, "train", "fp32", "adamw", "cuda"), future, "fp32", "train")
    assert p.extrapolated and any("extrapolated" in n for n in p.notes)


@pytest.mark.parametrize("guess", [1, 7, 50, 10_000])
def test_max_batch_finds_the_largest_fitting_batch(guess):
    assert max_batch_size(lambda b: 100 + 10 * b <= 1000, guess) == 90


def test_max_batch_is_monotone_in_memory():
    results = [max_batch_size(lambda b, cap=cap: 100 + 10 * b <= cap, 3) for cap in (50, 120, 1000, 5000, 10**9)]
    assert results[0] == 0 and results == sorted(results) and results[-1] == 1 << 20


def test_run_totals_arithmetic(model):
    p = predict_on(model, synthetic_analyse("a1", 4, "train", "fp32", "adamw", "cuda"), GPU, "fp32", "train")
    r = run_totals(p, batch_size=4, dataset_size=1001, epochs=3, region="FR", pue=1.2)
    assert r["steps"] == 251 * 3
    assert r["run_time_s"] == pytest.approx(p.step_time_s[1] * 753)
    assert r["run_energy_kwh"] == pytest.approx(p.step_energy_j[1] * 753 / 3.6e6)
    intensity, code = carbon_intensity_g_per_kwh("FRA")
    assert code == "FRA" and r["carbon_intensity_g_per_kwh"] == intensity
    assert r["run_co2_kg"] == pytest.approx(r["run_energy_kwh"] * intensity / 1000 * 1.2)


def test_carbon_intensity_lookup():
    assert carbon_intensity_g_per_kwh("FR") == carbon_intensity_g_per_kwh("fra")
    assert carbon_intensity_g_per_kwh(None)[1] == "world"
    with pytest.raises(UnknownRegionError, match="unknown --country"):
        carbon_intensity_g_per_kwh("XX")


def test_memory_fit_learns_allocator_overhead(model):
    est = 500 * 2**20
    assert model.memory.predict("test-gpu", "gpu", est) == pytest.approx(1.1 * est + 2**20, rel=0.05)
    assert model.memory.predict("unknown", "other", est) == est


def test_step_time_is_close_on_a_trained_device(model, dataset):
    steps = dataset.steps[(dataset.steps["hardware"] == "test-cpu") & (dataset.steps["model"] == "c1")]
    cpu = HardwareDescriptor.from_dict(DEVICES["test-cpu"])
    errors = []
    for _, r in steps.iterrows():
        step = synthetic_analyse(r["model"], int(r["batch_size"]), r["mode"], "fp32", "adamw", "cpu")
        errors.append(abs(predict_on(model, step, cpu, "fp32", r["mode"]).step_time_s[1] / r["time_s"] - 1))
    assert pd.Series(errors).median() < 0.25


def test_calibration_folder_makes_a_new_device_calibrated(dataset, data_root, tmp_path):
    from flopcast.predictor.calibrated import calibrate_model
    from flopcast.predictor.training import FitConfig, fit_cost_model
    from tests.datasets.synthetic import write_folder
    from tests.predictor.conftest import synthetic_analyse as analyse

    gpu_only = fit_cost_model(load_datasets([data_root / "test-gpu"]), FitConfig(n_estimators=20, progress=False),
                              analyse=analyse)
    cpu = HardwareDescriptor.from_dict(DEVICES["test-cpu"])
    step = analyse("a1", 1, "train", "fp32", "adamw", "cpu")
    before = predict_on(gpu_only, step, cpu, "fp32", "train")
    calibrated, d = calibrate_model(gpu_only, write_folder(tmp_path, "test-cpu", n_ops=40), analyse=analyse)
    after = predict_on(calibrated, step, d, "fp32", "train")
    assert not before.calibrated and after.calibrated
    assert calibrated.step_time.stage_key("test-cpu", "cpu") == "test-cpu"
    assert "test-cpu" not in gpu_only.hardware  # the original model is left alone


def test_a_front_end_without_a_memory_estimate_reports_it_unknown_not_zero(model):
    step = synthetic_analyse("b2", 4, "infer", "fp32", "none", "cuda")
    p = predict_on(model, replace(step, memory_estimated=False), GPU, "fp32", "infer")
    assert p.peak_memory_bytes is None and p.est_peak_memory_bytes is None and p.fits is None
    assert any("peak memory not estimated" in n for n in p.notes)
    assert p.step_time_s[1] > 0  # time and energy are still predicted
    assert predict_on(model, step, GPU, "fp32", "infer").fits is True


def test_a_gpu_peak_holds_the_cublas_workspace_the_fitted_step_peak_does_not(model):
    step = synthetic_analyse("b2", 4, "infer", "fp32", "none", "cuda")  # matmuls in the forward phase only
    p = predict_on(model, step, GPU, "fp32", "infer")
    assert p.workspace_bytes == 4096 * 1024 * 2 + 16 * 1024 * 8  # one thread, not Hopper: torch's :4096:2:16:8
    fitted = int(model.memory.predict("test-gpu", "gpu", step.peak_memory_bytes))
    assert p.peak_memory_bytes == fitted + p.workspace_bytes
    assert p.to_dict()["workspace_bytes"] == p.workspace_bytes
    cpu = predict_on(model, step, HardwareDescriptor.from_dict(DEVICES["test-cpu"]), "fp32", "infer")
    assert cpu.workspace_bytes == 0


def test_max_batch_leaves_room_for_the_workspace(model):
    from flopcast.predictor.memory import CONTEXT_BYTES
    from flopcast.predictor.predict import predict_max_batch

    def analyse(b):
        return synthetic_analyse("b2", b, "infer", "fp32", "none", "cuda")

    per_sample = analyse(2).peak_memory_bytes - analyse(1).peak_memory_bytes
    workspace = 4096 * 1024 * 2 + 16 * 1024 * 8
    small = replace(GPU, memory_bytes=CONTEXT_BYTES["gpu"] + workspace + 100 * per_sample)
    best = predict_max_batch(model, small, "test-gpu", analyse, 4, analyse(4).peak_memory_bytes)
    peak = model.memory.predict("test-gpu", "gpu", analyse(best).peak_memory_bytes) + workspace
    over = model.memory.predict("test-gpu", "gpu", analyse(best + 1).peak_memory_bytes) + workspace
    assert peak + CONTEXT_BYTES["gpu"] <= small.memory_bytes < over + CONTEXT_BYTES["gpu"]
