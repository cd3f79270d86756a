"""experiments/evaluate.py: splits hold out what they say; steps are priced as ``flopcast predict`` prices them."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from flopcast.calibration.catalog import get_hardware
from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.datasets.loader import DATASETS_DIR, trusted_rows
from flopcast.predictor.predict import predict_on
from flopcast.predictor.training import FitConfig, descriptors_of, fit_cost_model
from tests.datasets.synthetic import DEVICES, FAMILIES, op_rows, write_folder
from tests.experiments.conftest import load_script
from tests.predictor.conftest import synthetic_analyse

CONFIG = FitConfig(n_estimators=10, progress=False)


@pytest.fixture(scope="module")
def evaluate():
    return load_script("evaluate")


@pytest.fixture
def synthetic(evaluate, monkeypatch):
    """The synthetic zoo: every analysis the script asks for comes from :func:`synthetic_analyse`."""
    monkeypatch.setattr(evaluate, "zoo_step", synthetic_analyse)
    return evaluate


def recorded(monkeypatch, module, name: str, seen: list, what):
    """Wrap ``module.name`` so that each call appends ``what(*args)`` to ``seen``."""
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: seen.append(what(*a)) or real(*a, **k))


def test_family_out_never_trains_on_the_held_out_family_nor_on_op_rows_derived_from_it(synthetic, data, monkeypatch):
    mb = data.microbench.copy()
    derived = mb.index[mb["hardware"] == "test-cpu"][:12]
    mb.loc[derived, "source_model"] = "a1"  # shapes taken from model a1 (family fa), as --ops-from records them
    ops, stage_families = [], []
    recorded(monkeypatch, synthetic, "fit_op_stage", ops, lambda ds, _: set(ds.microbench["key"]))
    recorded(monkeypatch, synthetic, "fit_step_stages", stage_families, lambda _, steps, __: set(steps["family"]))
    p = synthetic.family_out(replace(data, microbench=mb), CONFIG)
    keys = set(mb.loc[derived, "key"])
    assert len(ops) == 2 and keys <= ops[0] and not keys & ops[1]  # the shared op model; fa's without a1's shapes
    assert len(ops[1]) == len(mb) - len(keys)
    assert stage_families == [set(FAMILIES) - {f} for f in sorted(FAMILIES)]
    assert len(p) == len(trusted_rows(data.steps)) and set(p["split"]) == {"family-out"}  # each step scored once
    assert (p["leak_rows_left_out"] == np.where(p["family"] == "fa", 12, 0)).all()
    assert p["calibrated"].all()  # a trained device: priced as calibrated, no widening


def test_hardware_out_trains_without_the_device_and_prices_it_from_each_descriptor_as_uncalibrated(
        synthetic, data, monkeypatch):
    trained_on = []
    recorded(monkeypatch, synthetic, "fit_cost_model", trained_on, lambda ds, *_: sorted(ds.hardware))
    p, folds = synthetic.hardware_out(data, CONFIG)
    assert trained_on == [["test-gpu"], ["test-cpu"]]  # test-cpu held out first, then test-gpu
    assert set(folds) == {"test-cpu", "test-gpu"} and sorted(folds["test-cpu"][1].hardware) == ["test-gpu"]
    steps = trusted_rows(data.steps)
    for split in ("hardware-out, spec only", "hardware-out, measured ceilings"):  # both descriptors have measurements
        assert len(p[p["split"] == split]) == len(steps)
    assert not p["calibrated"].any()  # no data of the device in the model: widened as `predict` widens
    spec = p[p["split"] == "hardware-out, spec only"]
    assert spec["linreg_flops"].isna().all()  # a regression per device has no training steps of a held-out one


def test_steps_are_priced_by_predict_on_with_the_widening_of_an_untrained_device(synthetic, data):
    model = fit_cost_model(synthetic.subset(data, hardware=["test-gpu"]), CONFIG, synthetic_analyse)
    test = trusted_rows(data.steps)
    test = test[test["hardware"] == "test-cpu"].head(3)
    d = descriptors_of(data)["test-cpu"]
    p = synthetic.predicted_steps(model, test, {"test-cpu": d})
    assert len(p) == 3
    for (_, r), (_, row) in zip(test.iterrows(), p.iterrows(), strict=True):
        step = synthetic_analyse(r["model"], int(r["batch_size"]), r["mode"], r["precision"], r["optimizer"], "cpu")
        q = predict_on(model, step, d, r["precision"], r["mode"])
        assert [row["time_p10"], row["time_p50"], row["time_p90"]] == pytest.approx(q.step_time_s)
        assert [row["energy_p10"], row["energy_p50"], row["energy_p90"]] == pytest.approx(q.step_energy_j)
        assert row["memory_pred"] == q.peak_memory_bytes and not q.calibrated
        raw = predict_on(model, step, d, r["precision"], r["mode"], calibrated=True)  # what it would be unwidened
        assert row["time_p90"] / row["time_p50"] > raw.step_time_s[2] / raw.step_time_s[1]


def test_quick_calibrated_refits_from_a_model_without_the_device_and_scores_the_steps_it_did_not_measure(
        synthetic, data, tmp_path, monkeypatch):
    folder = write_folder(tmp_path, "test-cpu", n_ops=40)
    steps = pd.read_parquet(folder / "steps.parquet")
    steps = steps[steps["model"].isin(["a1", "b1"])]  # a quick campaign measures a few steps
    steps.to_parquet(folder / "steps.parquet", index=False)
    bases = []
    recorded(monkeypatch, synthetic, "calibrate_model", bases, lambda model, *_: sorted(model.hardware))
    p = synthetic.quick_calibrated(data, folder, CONFIG, {})
    assert bases == [["test-gpu"]]  # calibrated from a model that never saw the device
    released = trusted_rows(data.steps)
    released = released[(released["hardware"] == "test-cpu") & ~released["model"].isin(["a1", "b1"])]
    assert sorted(p["model"]) == sorted(released["model"]) and p["calibrated"].all()  # the steps it did not measure
    assert p["linreg_flops"].notna().all()  # fitted on the quick campaign's steps


def test_the_final_split_trains_on_everything_else_and_scores_only_its_steps(synthetic, data, monkeypatch):
    split = synthetic.FrozenSplit(families=("fa",), device_steps=("test-gpu",))
    trained = []
    recorded(monkeypatch, synthetic, "fit_cost_model", trained, lambda ds, *_: ds)
    rows, p = synthetic.final_level(data, synthetic.EvalConfig(seeds=(0, 1), n_estimators=10), split)
    assert len(trained) == 2  # one model per seed
    for ds in trained:
        assert len(ds.steps) and not split.is_test_step(ds.steps).any()
    test = synthetic.final_test_steps(data, split)
    assert len(p) == 2 * len(test) and set(p["seed"]) == {0, 1} and set(p["split"]) == {"final"}
    assert ((p["family"] == "fa") | (p["hardware"] == "test-gpu")).all()
    assert {r["seed"] for r in rows} == {0, 1}


def test_energy_is_scored_apart_by_measured_and_estimated_source(evaluate):
    p = pd.DataFrame({"hardware": ["a", "a", "b", "b"], "time_s": 1.0, "time_p10": 0.9, "time_p50": 1.0,
                      "time_p90": 1.1, "energy_j": [10.0, 20.0, 30.0, np.nan],
                      "energy_source": ["nvml", "rapl", "codecarbon-tdp", "none"], "energy_p10": 9.0,
                      "energy_p50": [11.0, 20.0, 60.0, 1.0], "energy_p90": 70.0,
                      "measured_peak_memory_bytes": np.nan, "memory_pred": 1.0, "est_peak_memory_bytes": 1.0,
                      **{b: 1.0 for b in evaluate.TIME_BASELINES},
                      **{f"energy_{b}": 1.0 for b in evaluate.TIME_BASELINES}})
    rows = pd.DataFrame(evaluate.step_metric_rows(p, "family-out"))
    flopcast = rows[(rows["predictor"] == "flopcast") & (rows["hardware"] == "all")].set_index("quantity")
    assert flopcast.loc["energy, measured (NVML/RAPL)", "n"] == 2
    assert flopcast.loc["energy, measured (NVML/RAPL)", "median_ape_pct"] == pytest.approx(5.0)  # 10 % and 0 %
    assert flopcast.loc["energy, estimated (CodeCarbon TDP)", "median_ape_pct"] == pytest.approx(100.0)
    assert "peak memory" not in flopcast.index  # nothing measured


def test_seed_spread_is_the_median_with_the_range_and_collapses_for_seed_free_baselines(evaluate):
    keys = {"level": "step", "split": "family-out", "hardware": "h200", "quantity": "time"}
    rows = pd.DataFrame([{**keys, "predictor": "flopcast", "seed": s, "n": 10, "median_ape_pct": m,
                          "within_25_pct": w} for s, m, w in ((0, 10.0, 70.0), (1, 14.0, 60.0), (2, 12.5, 65.0))]
                        + [{**keys, "predictor": "roofline", "seed": s, "n": 10, "median_ape_pct": 50.0,
                            "within_25_pct": 5.0} for s in (0, 1, 2)])
    summary = evaluate.with_seed_spread(rows.assign(mean_ape_pct=1.0, within_10_pct=1.0, spearman=1.0,
                                                    coverage_pct=80.0))
    shown = evaluate.shown(summary).set_index("predictor")
    assert shown.loc["flopcast", "median % [seeds]"] == "12.5 [10.0, 14.0]"
    assert shown.loc["flopcast", "within 25 % [seeds]"] == "65.0 [60.0, 70.0]"
    assert shown.loc["roofline", "median % [seeds]"] == "50.0"
    head = evaluate.headline(summary)
    assert head.loc[0, "roofline"] == 50.0 and head.loc[0, "flopcast median % [seeds]"] == "12.5 [10.0, 14.0]"


def test_nonnegative_fit_recovers_a_line_and_clips_negative_slopes(evaluate):
    x = np.array([[1.0, 5.0], [2.0, 1.0], [3.0, 4.0], [4.0, 2.0]])
    y = 2 + 3 * x[:, 0] + 0.5 * x[:, 1]
    assert evaluate.nonnegative_fit(x, y) == pytest.approx([2.0, 3.0, 0.5])
    falling = evaluate.nonnegative_fit(x[:, :1], 10 - x[:, 0])  # time cannot fall with FLOPs: a level only
    assert falling == pytest.approx([7.5, 0.0])
    assert evaluate.nonnegative_fit(np.zeros((0, 1)), np.zeros(0)).tolist() == [0.0, 0.0]


def test_the_calibrated_roofline_prices_each_working_op_at_the_measured_ceilings_plus_a_launch(evaluate):
    ops = op_rows(2)  # one fp32 mm, one add
    view = ops.iloc[:1].assign(op="aten.view", flops=0, bytes_read=0, bytes_written=0)  # launches nothing
    step = synthetic_analyse("a1", 1, "train", "fp32", "adamw", "cpu")
    step = replace(step, ops=pd.concat([ops, view], ignore_index=True)[step.ops.columns])
    d = HardwareDescriptor.from_dict(DEVICES["test-cpu"])  # measured: 1.5e11 FLOP/s fp32, 3e10 B/s, 3 us launch
    nbytes = ops["bytes_read"] + ops["bytes_written"]
    expected = np.maximum(ops["flops"] / 1.5e11, nbytes / 3e10).sum() + 2 * 3e-6
    assert evaluate.calibrated_roofline_s(step, d, "fp32") == pytest.approx(expected)


def test_spec_only_is_the_catalog_entry_else_the_descriptor_without_its_measurements(evaluate):
    released = HardwareDescriptor.from_dict(json.loads((DATASETS_DIR / "h200" / "descriptor.json").read_text()))
    assert released.launch_overhead_s and released.measured_peak_flops_per_s
    assert evaluate.spec_only(released) == get_hardware("h200")
    assert set(evaluate.descriptor_variants(released)) == {"spec only", "measured ceilings"}
    cpu = HardwareDescriptor.from_dict(DEVICES["test-cpu"])
    probed = evaluate.spec_only(cpu)  # no catalog entry: what `hardware probe` gives without --measure
    assert probed.peak_flops_per_s == cpu.peak_flops_per_s and not probed.calibrated
    assert (probed.measured_peak_flops_per_s, probed.measured_bandwidth_bytes_per_s, probed.launch_overhead_s,
            probed.idle_power_w) == ({}, None, None, None)
    assert set(evaluate.descriptor_variants(get_hardware("t4"))) == {"spec only"}  # nothing measured to score apart


def test_neusight_gpus_are_held_out_in_groups_and_every_other_device_alone(evaluate):
    folds = evaluate.hardware_out_folds(["h200", "h100-sxm", "l4", "t4", "local-cpu-amd-epyc", "mi210"])
    assert folds == [("h200",), ("local-cpu-amd-epyc",), ("h100-sxm", "l4"), ("t4",), ("mi210",)]


@pytest.mark.slow
def test_the_command_writes_every_split_with_seed_ranges(synthetic, data_root, tmp_path):
    out = tmp_path / "results"
    assert synthetic.main(["--data", str(data_root), "--seeds", "0", "1", "--n-estimators", "5",
                           "--max-rows-per-family", "20", "--out", str(out)]) == 0
    summary = pd.read_csv(out / "eval_summary.csv")
    assert {"family-out (5 folds)", "random rows (5 folds)", "hardware-out", "family-out",
            "hardware-out, spec only", "hardware-out, measured ceilings"} <= set(summary["split"])
    step = summary[summary["level"] == "step"]
    assert (step["seeds"] == 2).all() and (step["median_ape_pct_min"] <= step["median_ape_pct_max"]).all()
    assert set(step["predictor"]) >= {"flopcast", "flops_035", "roofline", "calibrated_roofline", "linreg_flops",
                                      "linreg_flops_ops"}
    steps = pd.read_csv(out / "eval_steps.csv")
    assert set(steps["seed"]) == {0, 1}
    text = (out / "eval_summary.md").read_text()
    assert "at most 20 op rows per (device, microbenchmark family)" in text and "PARTIAL" not in text
    assert (out / "eval_step_time.png").is_file()
