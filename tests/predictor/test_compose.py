"""compose.op_times: each op's predicted time, which compose sums into the step frame."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from flopcast.predictor.compose import compose, op_times
from tests.predictor.test_predict import GPU
from tests.predictor.test_recurrent import _ops


def test_op_times_are_what_compose_sums(model):
    ops = _ops(nn.LSTM, "cuda", steps=16, batch=4)
    per_op, step = op_times(model, ops, GPU, "fp32"), compose(model, ops, GPU, "fp32")
    assert per_op.q.shape == (len(per_op.work), 3) and len(per_op.features) == len(per_op.work)
    assert per_op.q[:, 1].sum() == pytest.approx(step.ops_s)
    assert per_op.q[:, 0].sum() == pytest.approx(step.ops_p10_s)
    assert per_op.q[:, 2].sum() == pytest.approx(step.ops_p90_s)
    assert per_op.repeat.sum() == step.n_ops
    assert (per_op.repeat == 16).any()  # the fused LSTM's per-step kernels, with their repeat count
    assert np.all(np.diff(per_op.q, axis=1) >= 0)  # quantiles ordered per op


def test_a_gpu_is_judged_against_the_trained_gpus_not_the_cpus_beside_them(model):
    from flopcast.calibration.catalog import get_hardware
    from tests.datasets.synthetic import op_rows

    ops = op_rows(8).assign(python_call=True)
    # the synthetic model trained a 2e11 FLOP/s CPU and a 6e13 FLOP/s GPU: a T4 (8.1e12) lies between the two,
    # inside the pooled range but far below the only trained GPU
    t4 = compose(model, ops, get_hardware("t4"), "fp32")
    assert t4.extrapolated and "hw_log_peak" in t4.hardware_out_of_range
    assert not compose(model, ops, GPU, "fp32").hardware_out_of_range  # the trained GPU itself: in range
    ranges = model.op_time.ranges_
    assert set(ranges) == {"cpu", "gpu"} and ranges["gpu"]["hw_log_peak"][0] > ranges["cpu"]["hw_log_peak"][1]



def test_a_step_backward_kernel_on_a_gpu_does_not_pay_the_microbenchmarks_autograd_call(dataset):
    import dataclasses

    from flopcast.predictor.training import FitConfig, fit_op_stage
    from tests.datasets.synthetic import op_rows

    mb = dataset.microbench.copy()
    backward = (mb["hardware"] == GPU.name).to_numpy() & (mb.index % 2 == 1)
    call_s = 80e-6  # the GPU's backward rows each time one autograd.grad call from Python
    mb.loc[backward, "phase"] = "backward"
    mb.loc[backward, "time_s"] += call_s
    model = fit_op_stage(dataclasses.replace(dataset, microbench=mb), FitConfig(n_estimators=30, progress=False))
    assert model.hardware[GPU.name]["backward_overhead_s"] > call_s
    tiny = op_rows(2).iloc[[1]].assign(python_call=False, flops=64, bytes_read=512, bytes_written=256)
    forward_s = op_times(model, tiny, GPU, "fp32").q[0, 1]
    backward_s = op_times(model, tiny.assign(phase="backward"), GPU, "fp32").q[0, 1]
    # the op model's backward time includes the call; the kernel a step's backward runs does not
    assert backward_s < 0.25 * call_s
    assert backward_s == pytest.approx(forward_s, rel=1.0)


def test_a_composed_step_carries_the_devices_own_tiny_op_time_and_nan_for_its_kinds(model):
    import math
    from dataclasses import replace

    from flopcast.calibration.catalog import get_hardware
    from tests.datasets.synthetic import op_rows

    ops = op_rows(8).assign(python_call=True)
    trained = compose(model, ops, GPU, "fp32")  # a trained device: its fitted overhead
    assert trained.launch_overhead_s == pytest.approx(model.view(GPU).launch_overhead_s)
    t4 = get_hardware("t4")  # no rows, no measured overhead: its kind's, which the step stage does not scale
    assert math.isnan(compose(model, ops, t4, "fp32").launch_overhead_s)
    assert compose(model, ops, replace(t4, launch_overhead_s=7e-6), "fp32").launch_overhead_s == pytest.approx(7e-6)


def test_a_gpu_step_is_composed_at_the_least_harness_overhead_of_the_models_gpus(model):
    import copy

    from tests.datasets.synthetic import op_rows

    ops = op_rows(40).assign(python_call=True)
    own = model.hardware[GPU.name]["overhead_s"]
    slow = copy.copy(model)  # the same GPU, timed by a harness with a 40x larger fixed cost per call
    slow.hardware = {**model.hardware, GPU.name: {**model.hardware[GPU.name], "overhead_s": 40 * own}}
    assert slow.view(GPU).launch_overhead_s == pytest.approx(40 * own)
    slow.hardware = {**slow.hardware, "other-gpu": {**model.hardware[GPU.name], "overhead_s": own}}  # another's
    # its kernels run as long whatever harness timed its microbenchmarks: the step's op times are the same
    assert compose(slow, ops, GPU, "fp32").ops_s == pytest.approx(compose(model, ops, GPU, "fp32").ops_s)
    assert compose(slow, ops, GPU, "fp32").launch_overhead_s == pytest.approx(40 * own)  # its own tiny-op time


def test_a_cpu_takes_the_prior_power_share_where_only_gpu_power_was_measured(dataset):
    import dataclasses

    from flopcast.calibration.descriptor import HardwareDescriptor
    from flopcast.predictor.power import prior_power_share
    from flopcast.predictor.training import FitConfig, fit_op_stage
    from tests.datasets.synthetic import DEVICES, op_rows

    mb = dataset.microbench.copy()
    cpu_rows = (mb["hardware"] == "test-cpu").to_numpy()
    mb.loc[cpu_rows, "energy_source"] = "codecarbon-tdp"  # an estimate, not a measurement: no CPU power learned
    model = fit_op_stage(dataclasses.replace(dataset, microbench=mb), FitConfig(n_estimators=30, progress=False))
    assert model.op_power.covers("gpu") and not model.op_power.covers("cpu")
    ops = op_rows(40).assign(python_call=True)
    cpu = HardwareDescriptor.from_dict(DEVICES["test-cpu"])
    for d, expected in ((cpu, prior_power_share), (GPU, model.op_power.predict)):
        t = op_times(model, ops, d, "fp32")
        share = expected(t.features)
        weighted = float(np.sum(share * t.q[:, 1]) / t.q[:, 1].sum())
        assert compose(model, ops, d, "fp32").power_share == pytest.approx(weighted)
    both = fit_op_stage(dataset, FitConfig(n_estimators=30, progress=False))  # CPU rows with RAPL power
    assert both.op_power.covers("cpu") and both.op_power.covers("gpu")
