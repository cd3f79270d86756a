from __future__ import annotations

import numpy as np
import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.featurize import FEATURES, HardwareView, featurize, peak_key
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
    assert np.isfinite(a.select_dtypes("number").to_numpy()).all()


def test_roofline_time_is_max_of_compute_and_memory(gpu):
    ops = op_rows(2)
    f = featurize(ops, gpu)
    mm = ops.iloc[0]
    expected = max(mm["flops"] / 6e13, (mm["bytes_read"] + mm["bytes_written"]) / 3e12)
    assert f["roofline_s"].iloc[0] == pytest.approx(expected)


@pytest.mark.parametrize(("dtype", "category", "precision", "kind", "key"), [
    ("float32", "matmul", "tf32", "gpu", "tf32"),
    ("float32", "elementwise", "tf32", "gpu", "fp32"),
    ("float32", "matmul", "tf32", "cpu", "fp32"),
    ("bfloat16", "matmul", "bf16", "gpu", "bf16"),
])
def test_peak_key(dtype, category, precision, kind, key):
    assert peak_key(dtype, category, precision, kind) == key


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

    vocab = ["aten.mul", "aten.relu", "aten.copy_", "aten.sum"]
    ops = pd.Series(["aten.sigmoid_backward", "aten.neg", "aten._to_copy", "aten.max_pool2d_with_indices",
                     "aten.mystery", "aten._softmax"])
    category = pd.Series(["elementwise", "elementwise", "data-movement", "reduction", "other", "softmax"])
    mapped = in_vocabulary_op(ops, vocab, category, pd.Series([2, 1, 1, 1, 1, 1]))
    # binary -> mul, casts -> copy, pooling -> sum; unary element-wise or no stand-in: unchanged (missing)
    assert mapped.tolist() == ["aten.mul", "aten.neg", "aten.copy_", "aten.sum", "aten.mystery", "aten._softmax"]
