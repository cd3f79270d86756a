from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flopcast.predictor.op_model import NotFittedError
from flopcast.predictor.step_model import StepTimeModel


def _frame(hardware: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    ops = np.geomspace(1e-4, 1.0, n)
    return pd.DataFrame({"hardware": hardware, "kind": "cpu", "mode": np.where(np.arange(n) % 2, "train", "infer"),
                         "ops_s": ops * rng.uniform(0.9, 1.1, n), "ops_p10_s": ops * 0.7, "ops_p90_s": ops * 1.4,
                         "n_ops": 50, "n_calls": 100, "launch_bound_share": 0.1})


def test_a_device_with_few_steps_borrows_the_kind_slopes_and_fits_its_level():
    rng = np.random.default_rng(0)
    big, few = _frame("cpu-big", 60, rng), _frame("cpu-quick", 6, rng)
    # measured time grows as ops^0.8 on both CPUs; the quick CPU is 1.5x slower at every size
    t_big = big["ops_s"].to_numpy() ** 0.8
    t_few = 1.5 * few["ops_s"].to_numpy() ** 0.8
    model = StepTimeModel().fit(pd.concat([big, few], ignore_index=True), np.concatenate([t_big, t_few]),
                                np.array([f"fam{i % 5}" for i in range(66)]))
    probe = _frame("cpu-quick", 6, rng).assign(ops_s=[1e-4, 1e-3, 1e-2, 1e-1, 0.3, 1.0])
    predicted = model.predict(probe)[:, 1]
    expected = 1.5 * probe["ops_s"].to_numpy() ** 0.8
    assert np.median(np.abs(predicted / expected - 1)) < 0.15
    assert model.stages_["cpu-quick"]["stage"].n_rows_ == 6


def test_unfitted_model_refuses():
    with pytest.raises(NotFittedError):
        StepTimeModel().predict(_frame("x", 2, np.random.default_rng(0)))


def test_foreach_optimizer_kernels_are_priced_as_one_step_like_the_microbenchmark():
    from flopcast.predictor.compose import merged_optimizer_step

    ops = pd.DataFrame({"op": ["aten.mm", "aten._foreach_mul_", "aten._foreach_addcmul_", "aten._foreach_sqrt",
                               "aten.add_"],
                        "category": ["matmul", "optimizer", "optimizer", "optimizer", "elementwise"],
                        "flops": [100, 10, 30, 10, 5], "macs": [50, 0, 0, 0, 0],
                        "bytes_read": [1, 40, 120, 40, 8], "bytes_written": [1, 40, 40, 40, 4]})
    merged = merged_optimizer_step(ops)
    assert list(merged["op"]) == ["aten.mm", "aten._foreach_addcmul_", "aten.add_"]
    row = merged.iloc[1]
    assert (row["flops"], row["bytes_read"], row["bytes_written"]) == (50, 200, 120)
    # a per-parameter (CPU for-loop) optimizer has no optimizer-category kernels: nothing is merged
    assert merged_optimizer_step(ops.iloc[[0, 4]]).equals(ops.iloc[[0, 4]])


def test_host_costs_of_python_and_cxx_calls_are_fitted_apart():
    """A CPU step pays 4 us per Python-level call and a fifth of that per call run from C++."""
    rng = np.random.default_rng(1)
    n = 80
    frame = _frame("cpu-a", n, rng).assign(ops_s=np.geomspace(1e-4, 1e-2, n))
    frame["n_calls"] = rng.integers(100, 20_000, n)
    frame["n_python_calls"] = (frame["n_calls"] * rng.uniform(0.05, 1.0, n)).astype(int)
    cxx = frame["n_calls"] - frame["n_python_calls"]
    time_s = frame["ops_s"] + 4e-6 * (frame["n_python_calls"] + 0.2 * cxx)
    model = StepTimeModel().fit(frame, time_s.to_numpy(), np.array([f"fam{i % 6}" for i in range(n)]))
    stage = model.stages_["cpu-a"]
    assert stage["internal_ratio"] == pytest.approx(0.2)
    assert stage["host_cost_s"] == pytest.approx(4e-6, rel=0.25)
    assert np.median(np.abs(model.predict(frame)[:, 1] / time_s - 1)) < 0.05


def test_frames_without_python_call_counts_charge_every_call_alike():
    from flopcast.predictor.step_model import base_step_time_s

    frame = _frame("cpu-a", 3, np.random.default_rng(0))
    old = base_step_time_s(frame, 1e-5, internal_ratio=0.1)
    assert np.allclose(old, frame["ops_s"] + 100 * 1e-5)
    new = base_step_time_s(frame.assign(n_python_calls=10), 1e-5, internal_ratio=0.1)
    assert np.allclose(new, frame["ops_s"] + (10 + 0.1 * 90) * 1e-5)


def test_a_borrowing_device_fits_a_level_per_mode_when_it_measured_both():
    rng = np.random.default_rng(3)
    big, few = _frame("cpu-big", 60, rng), _frame("cpu-quick", 8, rng)
    t_big = big["ops_s"].to_numpy() ** 0.8
    # the quick CPU: 2x slower in train steps, 0.8x in infer steps, relative to the big one
    t_few = np.where(few["mode"] == "train", 2.0, 0.8) * few["ops_s"].to_numpy() ** 0.8
    model = StepTimeModel().fit(pd.concat([big, few], ignore_index=True), np.concatenate([t_big, t_few]),
                                np.array([f"fam{i % 5}" for i in range(68)]))
    probe = _frame("cpu-quick", 8, rng)
    expected = np.where(probe["mode"] == "train", 2.0, 0.8) * probe["ops_s"].to_numpy() ** 0.8
    assert np.max(np.abs(model.predict(probe)[:, 1] / expected - 1)) < 0.15


def _shared_frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Steps of six families on one CPU whose matmul share of op time differs from family to family."""
    family = np.array([f"fam{i % 6}" for i in range(n)])
    share = {f"fam{k}": v for k, v in enumerate(np.linspace(0.1, 0.9, 6))}
    frame = _frame("cpu-a", n, rng).assign(n_calls=0, n_python_calls=0)
    frame["share_matmul"] = [share[f] + rng.uniform(-0.05, 0.05) for f in family]
    frame["share_elementwise"] = 1 - frame["share_matmul"]
    return frame.assign(family=family)


def test_time_designs_are_nested_and_an_unknown_one_is_refused():
    from flopcast.predictor.step_model import time_design

    frame = _shared_frame(12, np.random.default_rng(0))
    base = frame["ops_s"].to_numpy()
    widths = {d: time_design(frame, base, d).shape[1] for d in ("full", "no_shares", "level")}
    assert widths == {"full": 6, "no_shares": 4, "level": 2}
    assert np.array_equal(time_design(frame, base, "level")[:, 1], (frame["mode"] == "train").to_numpy(float))
    with pytest.raises(ValueError, match="unknown time-stage design"):
        time_design(frame, base, "quadratic")


def test_the_fit_keeps_category_shares_only_when_they_help_held_out_families():
    rng = np.random.default_rng(3)
    frame = _shared_frame(72, rng)
    groups = frame.pop("family").to_numpy()
    # the op model is 2x slow on matmul time, whatever the family: the shares carry over to new families
    biased = frame["ops_s"] * (1 + frame["share_matmul"])
    model = StepTimeModel().fit(frame, biased.to_numpy(), groups)
    assert model.stages_["cpu-a"]["design"] == "full"
    # a per-family error unrelated to what the shares measure: fitting them would only chase noise
    noise = dict(zip(sorted(set(groups)), rng.uniform(-0.4, 0.4, 6), strict=True))
    noisy = frame["ops_s"] * np.exp([noise[g] for g in groups])
    model = StepTimeModel().fit(frame, noisy.to_numpy(), groups)
    chosen = model.stages_["cpu-a"]
    assert chosen["design"] != "full"
    losses = {d: model._loss(frame, np.log(noisy.to_numpy()), groups, chosen["host_cost_s"],
                             chosen["internal_ratio"], d) for d in ("full", "no_shares", "level")}
    assert losses[chosen["design"]] == min(losses.values())


def test_a_stage_saved_before_designs_existed_predicts_with_the_full_design():
    rng = np.random.default_rng(4)
    frame = _shared_frame(48, rng)
    groups = frame.pop("family").to_numpy()
    model = StepTimeModel().fit(frame, (frame["ops_s"] * (1 + frame["share_matmul"])).to_numpy(), groups)
    assert model.stages_["cpu-a"]["design"] == "full"
    before = model.predict(frame)
    old = StepTimeModel().set_state(model.state())
    for stage in old.stages_.values():
        stage.pop("design")
    assert np.allclose(old.predict(frame), before)


def _energy_frame(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    frame = _shared_frame(n, rng)
    groups = frame.pop("family").to_numpy()
    frame["power_share"] = rng.uniform(0.3, 0.7, n)
    frame["energy_base_j"] = frame["ops_s"] * 300.0
    return frame, groups


def test_energy_designs_are_nested_and_an_unknown_one_is_refused():
    from flopcast.predictor.step_model import energy_design

    frame, _ = _energy_frame(12, np.random.default_rng(5))
    base = frame["energy_base_j"].to_numpy()
    widths = {d: energy_design(frame, base, d).shape[1] for d in ("physical", "shares", "level")}
    assert widths == {"physical": 4, "shares": 6, "level": 2}
    with pytest.raises(ValueError, match="unknown energy-stage design"):
        energy_design(frame, base, "cubic")


def test_the_energy_fit_keeps_category_shares_only_when_they_help_held_out_families():
    from flopcast.predictor.step_model import ENERGY_DESIGNS, StepEnergyModel, energy_design

    rng = np.random.default_rng(6)
    frame, groups = _energy_frame(72, rng)
    base = frame["energy_base_j"].to_numpy()
    # matmul-heavy steps draw 1.8x the power the op power model gives, in every family: shares carry over
    hungry = base * (1 + 0.8 * frame["share_matmul"].to_numpy())
    model = StepEnergyModel().fit(frame, hungry, groups)
    assert model.stages_["cpu-a"]["design"] == "shares"
    assert np.median(np.abs(model.predict(frame)[:, 1] / hungry - 1)) < 0.03
    # a per-family error the shares do not explain: the fit leaves them out
    noise = dict(zip(sorted(set(groups)), rng.uniform(-0.4, 0.4, 6), strict=True))
    noisy = base * np.exp([noise[g] for g in groups])
    model = StepEnergyModel().fit(frame, noisy, groups)
    chosen = model.stages_["cpu-a"]["design"]
    assert chosen != "shares"
    y = np.log(noisy) - np.log(base)
    losses = {d: model._loss(energy_design(frame, base, d), y, groups) for d in ENERGY_DESIGNS}
    assert losses[chosen] == min(losses.values())
    # a stage saved before designs existed predicts with the physical design
    plain = frame.drop(columns=["share_matmul", "share_elementwise"])
    physical = StepEnergyModel().fit(plain, base ** 0.9, groups)
    assert physical.stages_["cpu-a"]["design"] == "physical"
    legacy = StepEnergyModel().set_state(physical.state())
    for stage in legacy.stages_.values():
        stage.pop("design")
    assert np.allclose(legacy.predict(plain), physical.predict(plain))


def test_a_kind_stage_is_chosen_by_held_out_devices_a_device_stage_by_held_out_families():
    rng = np.random.default_rng(5)
    a = _shared_frame(72, rng).assign(hardware="cpu-a")
    b = _shared_frame(36, rng).assign(hardware="cpu-b")
    frame = pd.concat([a, b], ignore_index=True)
    families = frame.pop("family").to_numpy()
    # the op model is 2x slow on matmul time on cpu-a only: a share correction that does not carry to cpu-b
    time_s = (frame["ops_s"] * np.where(frame["hardware"] == "cpu-a", 1 + frame["share_matmul"], 1.0)).to_numpy()
    model = StepTimeModel().fit(frame, time_s, families)
    assert model.stages_["cpu-a"]["design"] == "full"  # within cpu-a the shares help held-out families

    def losses(groups, centred):
        kind = model.stages_["kind:cpu"]
        return {d: model._loss(frame, np.log(time_s), groups, kind["host_cost_s"], kind["internal_ratio"], d,
                               centred=centred) for d in ("full", "no_shares", "level")}

    by_device, by_family = losses(frame["hardware"].to_numpy(), True), losses(families, False)
    chosen = model.stages_["kind:cpu"]["design"]
    assert min(by_family, key=by_family.get) == "full"  # what a choice by families would keep
    assert chosen != "full" and by_device[chosen] == min(by_device.values())


def test_a_kind_stage_counts_each_device_once_not_each_step():
    from flopcast.predictor.step_model import device_balanced_weights

    w = device_balanced_weights(np.array(["a"] * 6 + ["b"] * 2))
    assert w.sum() == pytest.approx(8) and w[0] * 6 == pytest.approx(w[-1] * 2)
    rng = np.random.default_rng(7)
    many, few = _frame("cpu-many", 60, rng), _frame("cpu-few", 12, rng)
    # the op sums are 1.5x short on the device that measured five times more steps, right on the other
    time_s = np.concatenate([1.5 * many["ops_s"].to_numpy(), few["ops_s"].to_numpy()])
    model = StepTimeModel().fit(pd.concat([many, few], ignore_index=True), time_s,
                                np.array([f"fam{i % 6}" for i in range(72)]))
    unseen = _frame("cpu-new", 6, rng).assign(n_calls=0)
    ratio = np.median(model.predict(unseen)[:, 1] / unseen["ops_s"].to_numpy())
    assert ratio == pytest.approx(np.sqrt(1.5), rel=0.05)  # halfway in log between the two, not 1.5^(5/6)


def test_a_kind_stage_learns_train_against_infer_within_devices_and_takes_the_median_device_level():
    rng = np.random.default_rng(3)
    both = [_frame(f"cpu-{i}", 30, rng) for i in range(3)]  # train steps 1.1x their op sums, inference 1.0x
    level = {"cpu-0": 1.0, "cpu-1": 1.05, "cpu-2": 0.95}
    train_only = _frame("cpu-train-only", 30, rng).assign(mode="train")  # a harness 1.6x longer, training only
    frame = pd.concat([*both, train_only], ignore_index=True)
    scale = frame["hardware"].map({**level, "cpu-train-only": 1.6}).to_numpy()
    time_s = frame["ops_s"].to_numpy() * scale * np.where(frame["mode"] == "train", 1.1, 1.0)
    model = StepTimeModel().fit(frame, time_s, np.array([f"fam{i % 5}" for i in range(len(frame))]))
    coef = model.stages_["kind:cpu"]["stage"].coef_
    assert coef[-1] == pytest.approx(np.log(1.1), abs=0.03)  # the train-only device does not inflate the train flag
    unseen = _frame("cpu-new", 8, rng).assign(n_calls=0)
    ratio = model.predict(unseen)[:, 1] / unseen["ops_s"].to_numpy()
    infer = (unseen["mode"] == "infer").to_numpy()
    assert np.median(ratio[infer]) == pytest.approx(1.0, rel=0.06)  # the median device level, not pulled to 1.6


def test_a_device_that_measured_one_mode_prices_the_other_with_its_kinds_train_offset():
    rng = np.random.default_rng(5)
    both = [_frame(f"cpu-{i}", 30, rng) for i in range(3)]  # train steps 1.2x inference on these
    train_only = _frame("cpu-train-only", 40, rng).assign(mode="train")  # its own stage, training only, 1.5x
    infer_only = _frame("cpu-infer-only", 40, rng).assign(mode="infer")  # its own stage, inference only, 0.8x
    frame = pd.concat([*both, train_only, infer_only], ignore_index=True)
    scale = frame["hardware"].map({"cpu-train-only": 1.5, "cpu-infer-only": 0.8}).fillna(1.0).to_numpy()
    time_s = frame["ops_s"].to_numpy() * scale * np.where(frame["mode"] == "train", 1.2, 1.0)
    model = StepTimeModel().fit(frame, time_s, np.array([f"fam{i % 5}" for i in range(len(frame))]))
    for device, level in (("cpu-train-only", 1.5), ("cpu-infer-only", 0.8)):
        assert model.stages_[device]["stage"].n_rows_ == 40  # its own stage, not the kind's
        probe = _frame(device, 8, rng).assign(n_calls=0)
        ratio = model.predict(probe)[:, 1] / probe["ops_s"].to_numpy()
        train = (probe["mode"] == "train").to_numpy()
        assert np.median(ratio[~train]) == pytest.approx(level, rel=0.06)
        assert np.median(ratio[train]) == pytest.approx(1.2 * level, rel=0.06)  # was its measured mode's level


def test_an_energy_stage_of_one_mode_takes_its_kinds_train_offset_too():
    from flopcast.predictor.step_model import StepEnergyModel

    rng = np.random.default_rng(8)
    parts = []
    for device, n in (("cpu-a", 40), ("cpu-b", 40), ("cpu-train-only", 40)):
        frame, _ = _energy_frame(n, rng)
        parts.append(frame.assign(hardware=device, kind="cpu"))
    frame = pd.concat(parts, ignore_index=True)
    frame.loc[frame["hardware"] == "cpu-train-only", "mode"] = "train"
    groups = np.array([f"fam{i % 5}" for i in range(len(frame))])
    base = frame["energy_base_j"].to_numpy()
    energy = base * np.where(frame["mode"] == "train", 1.3, 1.0)  # training draws 1.3x on every device
    model = StepEnergyModel().fit(frame, energy, groups)
    probe = frame[frame["hardware"] == "cpu-train-only"].head(8).assign(mode=["train", "infer"] * 4)
    ratio = model.predict(probe)[:, 1] / probe["energy_base_j"].to_numpy()
    train = (probe["mode"] == "train").to_numpy()
    assert np.median(ratio[train]) == pytest.approx(1.3, rel=0.05)
    assert np.median(ratio[~train]) == pytest.approx(1.0, rel=0.05)  # was 1.3: the measured mode's level


def test_a_one_mode_stage_keeps_its_measured_mode_and_moves_the_other_by_the_offset():
    from flopcast.predictor.step_model import LogLinearStage

    z = np.column_stack([np.ones(20), np.linspace(-1, 1, 20), np.ones(20)])  # intercept, a slope, train flag
    stage = LogLinearStage().fit(z, 0.3 + 0.1 * z[:, 1])
    assert stage.measured_one_mode()
    lent = stage.with_mode_offset(0.25)
    assert not lent.measured_one_mode()
    probe = np.array([[1.0, 0.5, 1.0], [1.0, 0.5, 0.0]])
    assert lent.predict(probe)[0, 1] == pytest.approx(stage.predict(probe)[0, 1])  # the measured mode as fitted
    assert lent.predict(probe)[0, 1] - lent.predict(probe)[1, 1] == pytest.approx(0.25)
    assert stage.predict(probe)[1, 1] == pytest.approx(stage.predict(probe)[0, 1])  # unlent: clipped to train


def _two_cpus_paying_three_tiny_ops_per_call(rng: np.random.Generator) -> StepTimeModel:
    """Steps of two CPUs whose per-call host cost is 3x their tiny-op time (2 us and 4 us); op sums exact."""
    frames = [_frame(name, 40, rng).assign(n_calls=400, n_python_calls=400, launch_overhead_s=tiny)
              for name, tiny in (("cpu-fast", 2e-6), ("cpu-slow", 4e-6))]
    frame = pd.concat(frames, ignore_index=True)
    time_s = (frame["ops_s"] + 3 * frame["launch_overhead_s"] * frame["n_calls"]).to_numpy()
    return StepTimeModel().fit(frame, time_s, np.array([f"fam{i % 5}" for i in range(80)]))


def test_a_cpu_kind_stage_carries_its_host_cost_in_proportion_to_each_cpus_tiny_op_time():
    from flopcast.predictor.step_model import host_scale

    rng = np.random.default_rng(5)
    model = _two_cpus_paying_three_tiny_ops_per_call(rng)
    assert model.stages_["kind:cpu"]["host_reference_s"] == pytest.approx(3e-6)
    # a new CPU measured a 1 us tiny op (a quick calibration): its small steps cost 3 us per call, not the kind's 9
    new = _frame("cpu-new", 8, rng).assign(ops_s=1e-5, n_calls=400, n_python_calls=400, launch_overhead_s=1e-6)
    predicted = model.predict(new)[:, 1]
    assert np.median(predicted / (1e-5 + 3e-6 * 400)) == pytest.approx(1.0, rel=0.2)
    assert host_scale(new.drop(columns="launch_overhead_s"), 3e-6).tolist() == [1.0] * 8  # no column: unscaled


def test_a_cpu_priced_with_its_kinds_tiny_op_time_takes_the_kinds_host_cost_unscaled():
    rng = np.random.default_rng(6)
    model = _two_cpus_paying_three_tiny_ops_per_call(rng)
    # a spec-only CPU: no tiny-op time of its own (NaN), so the kind's median device's host cost
    spec = _frame("cpu-spec", 8, rng).assign(ops_s=1e-5, n_calls=400, n_python_calls=400, launch_overhead_s=np.nan)
    predicted = model.predict(spec)[:, 1]
    assert np.median(predicted / (1e-5 + 9e-6 * 400)) == pytest.approx(1.0, rel=0.2)


def test_a_software_stack_takes_its_own_devices_train_offset_from_the_kind_stage():
    """Training runs 1.12x inference on two ROCm GPUs and 1.04x on one CUDA GPU (their op sums alike)."""
    rng = np.random.default_rng(7)
    offsets = {"gpu-rocm-a": 1.12, "gpu-rocm-b": 1.12, "gpu-cuda-a": 1.04}
    parts = [_frame(h, 30, rng).assign(kind="gpu", stack=h.split("-")[1]) for h in offsets]
    train_only = _frame("gpu-cuda-train-only", 40, rng).assign(kind="gpu", stack="cuda", mode="train")
    frame = pd.concat([*parts, train_only], ignore_index=True).assign(n_calls=0, n_python_calls=0)
    factor = frame["hardware"].map({**offsets, "gpu-cuda-train-only": 1.04}).to_numpy()
    time_s = frame["ops_s"].to_numpy() * np.where(frame["mode"] == "train", factor, 1.0)
    model = StepTimeModel().fit(frame, time_s, np.array([f"fam{i % 5}" for i in range(len(frame))]))
    kind_flag = model.stages_["kind:gpu"]["stage"].coef_[-1]
    assert kind_flag > np.log(1.07)  # pooled: the two ROCm devices weigh most
    assert model.stage_key("gpu-new", "gpu", "cuda") == "kind:gpu:cuda"
    assert model.stage_key("gpu-new", "gpu", "") == "kind:gpu"  # a GPU of no known stack: the kind's
    for stack, expected in (("cuda", 1.04), ("rocm", 1.12)):
        probe = _frame("gpu-new", 8, rng).assign(kind="gpu", stack=stack, n_calls=0, n_python_calls=0)
        ratio = model.predict(probe)[:, 1] / probe["ops_s"].to_numpy()
        train = (probe["mode"] == "train").to_numpy()
        assert np.median(ratio[train]) / np.median(ratio[~train]) == pytest.approx(expected, rel=0.02)
    # a CUDA device that measured training only lends inference its stack's offset, not the pooled one
    probe = _frame("gpu-cuda-train-only", 8, rng).assign(kind="gpu", stack="cuda", n_calls=0, n_python_calls=0)
    ratio = model.predict(probe)[:, 1] / probe["ops_s"].to_numpy()
    train = (probe["mode"] == "train").to_numpy()
    assert np.median(ratio[train]) / np.median(ratio[~train]) == pytest.approx(1.04, rel=0.02)
