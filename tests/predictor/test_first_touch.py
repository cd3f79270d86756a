"""first_touch: the page faults of large fresh outputs on a CPU."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flopcast.predictor.first_touch import MMAP_THRESHOLD_BYTES, first_touch_s, fresh_bytes

MIB = 2**20


def _ops(rows):
    return pd.DataFrame([{"op": op, "output_shapes": json.dumps(shapes), "bytes_written": written}
                         for op, shapes, written in rows])


def test_only_outputs_of_32_mib_and_more_that_the_op_allocates_count():
    ops = _ops([
        ("aten.sqrt", [[4096, 4096]], 64 * MIB),  # fresh, 64 MiB
        ("aten.sqrt", [[2048, 4095]], 4 * 2048 * 4095),  # just under 32 MiB: served from the heap again
        ("aten._to_copy", [[4096, 4096]], 32 * MIB),  # to bf16: exactly the threshold
        ("aten.mul_", [[4096, 4096]], 64 * MIB),  # in place: no allocation
        ("aten.t", [[4096, 4096]], 0),  # a view
        # two outputs: the 64 MiB input gradient is mapped anew, the 1 KiB weight gradient is not
        ("aten.convolution_backward", [[16, 64, 128, 128], [64, 4]], 64 * MIB + 1024),
    ])
    np.testing.assert_allclose(fresh_bytes(ops), [64 * MIB, 0, 32 * MIB, 0, 0, 64 * MIB], rtol=1e-6)
    assert fresh_bytes(ops)[1] == 0 and MMAP_THRESHOLD_BYTES > 4 * 2048 * 4095


def test_the_time_is_the_fresh_bytes_at_the_measured_rate_and_zero_unmeasured():
    ops = _ops([("aten.div", [[8192, 4096]], 128 * MIB)])
    assert first_touch_s(ops, 4e9)[0] == pytest.approx(128 * MIB / 4e9)
    assert first_touch_s(ops, None)[0] == 0.0


def test_a_cpu_with_a_measured_rate_prices_the_faults_a_gpu_never():
    from dataclasses import replace

    from flopcast.calibration.descriptor import HardwareDescriptor
    from flopcast.predictor.featurize import FEATURES, HardwareView, featurize
    from tests.datasets.synthetic import DEVICES, op_rows

    ops = op_rows(2).iloc[[1]].assign(op="aten.add", output_shapes=json.dumps([[8192, 4096]]),
                                       bytes_read=256 * MIB, bytes_written=128 * MIB)
    cpu = HardwareDescriptor.from_dict(DEVICES["test-cpu"])
    plain = featurize(ops, HardwareView.of(cpu))
    faulting = featurize(ops, HardwareView.of(replace(cpu, measured_first_touch_bytes_per_s=4e9)))
    assert plain["first_touch_s"].iloc[0] == 0.0
    assert faulting["first_touch_s"].iloc[0] == pytest.approx(128 * MIB / 4e9)
    assert faulting[[*FEATURES, "roofline_s"]].equals(plain[[*FEATURES, "roofline_s"]])  # what the ratio reads
    gpu = HardwareDescriptor.from_dict({**DEVICES["test-gpu"], "measured_first_touch_bytes_per_s": 4e9})
    assert featurize(ops, HardwareView.of(gpu))["first_touch_s"].iloc[0] == 0.0  # a caching allocator


def test_the_op_model_adds_the_first_touch_to_its_prediction_and_learns_without_it():
    from dataclasses import replace

    from flopcast.calibration.descriptor import HardwareDescriptor
    from flopcast.predictor.featurize import HardwareView, featurize
    from flopcast.predictor.op_model import OpTimeModel
    from tests.datasets.synthetic import DEVICES, microbench

    cpu = replace(HardwareDescriptor.from_dict(DEVICES["test-cpu"]), measured_first_touch_bytes_per_s=1e9)
    view = HardwareView.of(cpu)
    mb = microbench(DEVICES["test-cpu"], 200)
    big = mb.index % 2 == 0  # half the rows write one fresh 64 MiB output, which faults in 64 MiB / 1 GB/s
    mb["output_shapes"] = np.where(big, json.dumps([[4096, 4096]]), mb["output_shapes"])
    mb["bytes_written"] = np.where(big, 64 * MIB, mb["bytes_written"])
    f = featurize(mb, view)
    fault_s = 64 * MIB / 1e9
    np.testing.assert_allclose(f["first_touch_s"].to_numpy()[big], fault_s)
    np.testing.assert_allclose(f["first_touch_s"].to_numpy(), fresh_bytes(mb) / 1e9)  # and the large adds
    truth = mb["time_s"].to_numpy()
    model = OpTimeModel(n_estimators=60, learning_rate=0.2).fit(f, truth + f["first_touch_s"].to_numpy(),
                                                                view.launch_overhead_s)
    q = model.predict(f, view.launch_overhead_s)
    faults_off = model.predict(f.assign(first_touch_s=0.0), view.launch_overhead_s)
    # the fault time comes on top, as it is: the ratio was learned on the times without it
    np.testing.assert_allclose(q[:, 1] - faults_off[:, 1], f["first_touch_s"].to_numpy(), rtol=1e-9, atol=1e-12)
    assert np.median(np.abs(faults_off[:, 1] / truth - 1)) < 0.25
