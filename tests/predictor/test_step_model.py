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
