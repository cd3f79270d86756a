from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.device_traits import TRAIT_NAMES
from flopcast.predictor.featurize import FEATURES, GEMM_TILES, HardwareView, featurize, peak_key
from flopcast.predictor.op_model import NotFittedError, OpPowerModel, OpTimeModel
from tests.datasets.synthetic import DEVICES, microbench, op_rows, true_time_s


@pytest.fixture(scope="module")
def gpu():
    return HardwareView.of(HardwareDescriptor.from_dict(DEVICES["test-gpu"]))


def test_featurize_is_deterministic_and_complete(gpu):
    ops = op_rows(20)
    a, b = featurize(ops, gpu), featurize(ops.copy(), gpu)
    assert list(a.columns[: len(FEATURES)]) == list(FEATURES)
    assert a.equals(b)
    unknown = ["hw_peak_eff", "hw_bw_eff", *TRAIT_NAMES, *(f"wave_eff_{t}" for t in GEMM_TILES)]
    assert np.isfinite(a.drop(columns=unknown).select_dtypes("number").to_numpy()).all()
    assert a["hw_peak_eff"].isna().all() and a["hw_bw_eff"].isna().all()  # a GPU is its spec sheet alone


def test_gemm_waves_count_blocks_of_the_output():
    from flopcast.predictor.featurize import gemm_wave_efficiency

    out = pd.DataFrame({"out_batch": [1.0, 1.0, 4.0], "out_rows": [256.0, 129.0, 128.0],
                        "out_cols": [256.0, 128.0, 128.0]})
    # 2 x 2 = 4 blocks on 8 SMs: half busy; 2 x 1 = 2 blocks: a quarter; 4 x 1 x 1 = 4 blocks: half
    np.testing.assert_allclose(gemm_wave_efficiency(out, 128, 8.0), [0.5, 0.25, 0.5])
    # 9 blocks on 8 SMs: two waves, the second nearly empty
    assert gemm_wave_efficiency(pd.DataFrame({"out_batch": [9.0], "out_rows": [1.0], "out_cols": [1.0]}), 128,
                                8.0)[0] == pytest.approx(9 / 16)


def test_gpu_traits_come_from_the_catalog_for_any_descriptor_of_that_gpu():
    from flopcast.calibration.catalog import get_hardware
    from flopcast.predictor.device_traits import traits

    t4 = traits(get_hardware("t4"))
    assert t4["hw_base_ratio"] == pytest.approx(585 / 1590)
    assert t4["hw_lanes"] == 64 and t4["hw_cc"] == pytest.approx(7.5)
    assert t4["hw_log_w_per_cu_ghz"] == pytest.approx(np.log10(70 / (40 * 1.59)))
    probed = HardwareDescriptor.from_dict({**get_hardware("l4").to_dict(), "name": "local-gpu", "extra": {}})
    assert traits(probed) == traits(get_hardware("l4"))  # matched by vendor name
    cpu = traits(get_hardware("cpu"))
    assert np.isnan([cpu[k] for k in ("hw_base_ratio", "hw_lanes", "hw_log_l2_per_cu", "hw_cc")]).all()
    assert np.isfinite(cpu["hw_log_w_per_cu_ghz"])  # a power limit, cores and a clock: known


def test_roofline_time_is_max_of_compute_and_memory(gpu):
    ops = op_rows(2)
    f = featurize(ops, gpu)
    mm = ops.iloc[0]
    expected = max(mm["flops"] / 6e13, (mm["bytes_read"] + mm["bytes_written"]) / 3e12)
    assert f["roofline_s"].iloc[0] == pytest.approx(expected)


def test_a_cpu_roofline_is_at_the_ceilings_it_sustains_a_gpu_at_its_spec_sheet(gpu):
    """A CPU's spec is a guess (a probe's bandwidth): its roofline takes its measured (or imputed) ceilings."""
    ops = op_rows(2)
    mm, add = ops.iloc[0], ops.iloc[1]
    cpu = HardwareView.of(HardwareDescriptor.from_dict(DEVICES["test-cpu"]))
    f = featurize(ops, cpu)
    assert f["roofline_s"].iloc[0] == pytest.approx(max(mm["flops"] / 1.5e11,
                                                        (mm["bytes_read"] + mm["bytes_written"]) / 3e10))
    assert f["roofline_s"].iloc[1] == pytest.approx(max(add["flops"] / 1.5e11,
                                                        (add["bytes_read"] + add["bytes_written"]) / 3e10))
    probe = {k: v for k, v in DEVICES["test-cpu"].items() if not k.startswith("measured")}
    imputed = HardwareView.of(HardwareDescriptor.from_dict(probe), imputed_eff={"peak": 0.5, "bw": 2.0})
    assert featurize(ops, imputed)["roofline_s"].iloc[1] == pytest.approx(
        max(add["flops"] / 1e11, (add["bytes_read"] + add["bytes_written"]) / 8e10))
    assert featurize(ops, gpu)["hw_bw_eff"].isna().all()  # a GPU: spec only (the test above)


@pytest.mark.parametrize(("dtype", "category", "precision", "kind", "key"), [
    ("float32", "matmul", "tf32", "gpu", "tf32"),
    ("float32", "elementwise", "tf32", "gpu", "fp32"),
    ("float32", "matmul", "tf32", "cpu", "fp32"),
    ("bfloat16", "matmul", "bf16", "gpu", "bf16"),
    ("float32", "conv", "fp32", "gpu", "tf32"),  # cuDNN's default: TF32 convolutions
    ("float32", "matmul", "fp32", "gpu", "fp32"),  # ... but fp32 matmuls
    ("float32", "conv", "fp32-strict", "gpu", "fp32"),  # TF32 off for both
    ("float32", "conv", "fp32", "cpu", "fp32"),
])
def test_peak_key(dtype, category, precision, kind, key):
    assert peak_key(dtype, category, precision, kind) == key


@pytest.mark.parametrize(("dtype", "precision"), [("float32", "fp32"), ("float32", "tf32"), ("tf32", "fp32")])
def test_a_gpu_without_tf32_runs_fp32_work_on_its_fp32_peak(dtype, precision):
    assert peak_key(dtype, "conv", precision, "gpu", has_tf32=False) == "fp32"


@pytest.mark.parametrize("cls", [OpTimeModel, OpPowerModel])
def test_unfitted_model_refuses_to_predict(cls, gpu):
    with pytest.raises(NotFittedError, match="not fitted"):
        cls().predict(featurize(op_rows(2), gpu), *([1e-6] if cls is OpTimeModel else []))


def test_fit_returns_self_and_learns_the_roofline_ratio(gpu):
    mb = microbench(DEVICES["test-gpu"], 200)
    f = featurize(mb, gpu)
    model = OpTimeModel(n_estimators=60, learning_rate=0.2)
    assert model.fit(f, mb["time_s"].to_numpy(), gpu.launch_overhead_s) is model
    assert model.booster_ is not None and model.vocab_["category"] == ["elementwise", "matmul"]
    test = op_rows(40, seed=7)
    q = model.predict(featurize(test, gpu), gpu.launch_overhead_s)
    assert (q[:, 0] <= q[:, 1]).all() and (q[:, 1] <= q[:, 2]).all()
    err = np.abs(q[:, 1] / true_time_s(test, DEVICES["test-gpu"]) - 1)
    assert np.median(err) < 0.25


def test_bad_targets_are_refused(gpu):
    f = featurize(op_rows(4), gpu)
    with pytest.raises(ValueError, match="finite and > 0"):
        OpTimeModel(n_estimators=2).fit(f, np.array([1.0, 0.0, 1.0, 1.0]), 1e-6)


def test_in_place_ops_are_encoded_as_their_out_of_place_kernel():
    import pandas as pd

    from flopcast.predictor.featurize import CATEGORICAL, NUMERIC, encode

    rows = pd.DataFrame({**{n: [0.0] * 4 for n in NUMERIC}, **{n: ["x"] * 4 for n in CATEGORICAL}})
    rows["op"] = ["aten.mul_", "aten.mul", "aten.copy_", "aten.lerp_"]
    codes = encode(rows, {"op": ["aten.mul", "aten.copy_"]})["op"]
    assert list(codes.astype(object).where(codes.notna(), None)) == ["aten.mul", "aten.mul", "aten.copy_", None]


def test_an_unseen_op_name_takes_its_categorys_trained_kernel():
    import pandas as pd

    from flopcast.predictor.featurize import in_vocabulary_op

    vocab = ["aten.mul", "aten.relu", "aten.tanh", "aten.copy_", "aten.sum"]
    ops = pd.Series(["aten.sigmoid_backward", "aten.digamma", "aten._to_copy", "aten.max_pool2d_with_indices",
                     "aten.mystery", "aten._softmax", "aten.neg", "aten.rsqrt", "aten.cos"])
    category = pd.Series(["elementwise", "elementwise", "data-movement", "reduction", "other", "softmax"]
                         + ["elementwise"] * 3)
    mapped = in_vocabulary_op(ops, vocab, category, pd.Series([2, 1, 1, 1, 1, 1, 1, 1, 1]))
    # binary -> mul, casts -> copy, pooling -> sum; a listed unary op -> the trained kernel of its per-element
    # cost (copy-like -> relu, transcendental -> tanh); another unary element-wise op or no stand-in: missing
    assert mapped.tolist() == ["aten.mul", "aten.digamma", "aten.copy_", "aten.sum", "aten.mystery", "aten._softmax",
                               "aten.relu", "aten.tanh", "aten.tanh"]


def test_each_gpu_gets_its_own_level_and_the_trees_learn_what_gpus_share(gpu):
    from flopcast.calibration.descriptor import HardwareDescriptor

    # two GPUs with one shape law: the second runs every op at half the first's efficiency
    slow = HardwareDescriptor.from_dict({**DEVICES["test-gpu"], "name": "slow-gpu", "tdp_w": 300.0})
    rows = op_rows(400)
    fast_t, slow_t = true_time_s(rows, DEVICES["test-gpu"]), true_time_s(rows, DEVICES["test-gpu"]) * 2
    views = [gpu, HardwareView.of(slow)]
    f = pd.concat([featurize(rows, v) for v in views], ignore_index=True)
    times = np.concatenate([fast_t, slow_t])
    devices = np.array(["test-gpu"] * len(rows) + ["slow-gpu"] * len(rows))
    model = OpTimeModel(n_estimators=150).fit(f, times, gpu.launch_overhead_s, devices=devices)
    gap = np.array(model.offsets_["slow-gpu"]) - np.array(model.offsets_["test-gpu"])
    busy = f["log_roof_over_launch"].iloc[: len(rows)] > 1
    assert np.all(np.abs(gap - np.log(2)) < 0.15)  # each regime's offset holds the factor 2
    for name, t in (("test-gpu", fast_t), ("slow-gpu", slow_t)):
        q = model.predict(featurize(rows, gpu), gpu.launch_overhead_s, model.offsets_[name])
        assert np.median(np.abs(q[busy.to_numpy(), 1] / t[busy.to_numpy()] - 1)) < 0.1


def test_gpu_identity_features_are_hidden_on_gpu_rows_only(gpu):
    from flopcast.predictor.featurize import GPU_IDENTITY_FEATURES, encode

    cpu = HardwareView.of(HardwareDescriptor.from_dict(DEVICES["test-cpu"]))
    x = encode(pd.concat([featurize(op_rows(4), gpu), featurize(op_rows(4), cpu)], ignore_index=True), {})
    assert x.loc[:3, list(GPU_IDENTITY_FEATURES)].isna().all().all()
    assert x.loc[4:, ["hw_log_peak", "hw_log_bw", "hw_log_clock"]].notna().all().all()


def test_a_gpu_without_rows_takes_the_offsets_of_its_silicon_else_its_spec_sheets():
    from flopcast.calibration.catalog import get_hardware
    from flopcast.predictor.device_offsets import fit_offset_model, predicted_offsets, silicon_key

    trained = [(get_hardware("h200"), [0.3, 0.1]), (get_hardware("t4"), [0.7, 0.3]),
               (get_hardware("v100-pcie-32gb"), [0.1, 0.1]), (get_hardware("a100-pcie-40gb"), [0.2, 0.2])]
    model = fit_offset_model(trained)
    assert silicon_key(get_hardware("h100-sxm")) == silicon_key(get_hardware("h200"))  # one GH100 at one clock
    h100 = predicted_offsets(get_hardware("h100-sxm"), model)
    assert h100 == [0.3, pytest.approx(0.15)]  # its silicon's compute offset; memory (HBM3, not HBM3e): the median
    l4 = predicted_offsets(get_hardware("l4"), model)  # no silicon like it: the base / boost fit
    assert l4[0] > 0.2 and l4[1] == pytest.approx(0.15)  # closer to the throttled T4 (base / boost 0.37) than to a V100
    assert predicted_offsets(get_hardware("cpu"), model) is None


def test_cuda_fused_dropout_streams_like_a_trained_scaling_kernel():
    import pandas as pd

    from flopcast.predictor.featurize import in_vocabulary_op

    ops = pd.Series(["aten.native_dropout", "aten.native_dropout_backward", "aten.native_dropout"])
    category = pd.Series(["elementwise"] * 3)
    # one input, yet a stand-in (a unary op without one stays missing); a trained name of its own wins
    assert in_vocabulary_op(ops, ["aten.mul"], category, pd.Series([1, 2, 1])).tolist() == ["aten.mul"] * 3
    assert in_vocabulary_op(ops[:1], ["aten.mul", "aten.native_dropout"], category[:1]).tolist() == [
        "aten.native_dropout"]
