"""Op training keeps trusted rows named after the op they time, and drops whole-closure rows named otherwise."""

from __future__ import annotations

import pandas as pd

from flopcast.calibration.microbench import get_family
from flopcast.datasets.loader import trusted_rows
from flopcast.predictor.op_rows import named_after_main_op, op_training_rows


def _rows(*rows: tuple[str, str, bool]) -> pd.DataFrame:
    return pd.DataFrame([{"family": f, "op": op, "trusted": trusted, "time_s": 1e-5} for f, op, trusted in rows])


def test_whole_cell_and_decomposed_norm_rows_are_left_out():
    assert get_family("rnn_cell").main_ops and get_family("norm").main_ops and not get_family("optimizer").main_ops
    mb = _rows(
        ("rnn_cell", "aten.addmm.default", True),  # a CPU LSTM cell step named after its costliest GEMM
        ("rnn_cell", "aten._thnn_fused_lstm_cell.default", True),  # the fused cell: times what it names
        ("norm", "aten.pow.Tensor_Scalar", True),  # a decomposed RMS norm named after its first op
        ("norm", "aten.native_layer_norm.default", True),
        ("optimizer", "aten._foreach_addcdiv_.Scalar", True),  # no main ops: a whole step by convention
        ("matmul", "aten.mm.default", True),
        ("matmul", "aten.mm.default", False),  # untrusted
        ("retired_family", "aten.add.Tensor", True),  # not in the registry (older data): kept
    )
    assert named_after_main_op(mb).tolist() == [False, True, False, True, True, True, True, True]
    kept = op_training_rows(mb)
    assert kept["op"].tolist() == ["aten._thnn_fused_lstm_cell.default", "aten.native_layer_norm.default",
                                   "aten._foreach_addcdiv_.Scalar", "aten.mm.default", "aten.add.Tensor"]


def test_released_cpu_data_loses_only_misnamed_rows():
    mb = pd.read_parquet("datasets/dev-cpu-amd-epyc-2c/microbench.parquet")
    dropped = mb[~named_after_main_op(mb).to_numpy(bool)]
    assert len(dropped) > 0
    assert set(dropped["family"]) <= {"rnn_cell", "norm", "data_movement"}
    trusted = trusted_rows(mb)
    assert len(op_training_rows(mb)) == len(trusted) - int((~named_after_main_op(trusted)).sum())
