"""Training helpers: measured steps are read with today's analysis of their config."""

from __future__ import annotations

import copy

import numpy as np

from flopcast.predictor.memory import MemoryModel
from flopcast.predictor.step_model import StepEnergyModel, StepTimeModel
from flopcast.predictor.training import composed_steps, descriptors_of, with_energy_base
from tests.predictor.conftest import synthetic_analyse


def test_composed_steps_take_flops_and_peak_estimate_from_the_analysis(model, dataset):
    steps = dataset.steps.head(4).copy()
    steps["flops"] = 1024  # stale: what an early tracer wrote for inference steps
    steps["est_peak_memory_bytes"] = 1
    kept, frame = composed_steps(model, steps, descriptors_of(dataset), synthetic_analyse)
    assert len(kept) == len(frame) == 4
    for (_, r), flops, est in zip(steps.iterrows(), kept["flops"], kept["est_peak_memory_bytes"], strict=True):
        step = synthetic_analyse(r["model"], int(r["batch_size"]), r["mode"], r["precision"], r["optimizer"], "cpu")
        assert flops == step.ops["flops"].sum() > 1024
        assert est == step.peak_memory_bytes


def test_steps_of_unknown_hardware_are_skipped(model, dataset):
    steps = dataset.steps.head(3).assign(hardware="no-such-device")
    kept, frame = composed_steps(model, steps, descriptors_of(dataset), synthetic_analyse)
    assert len(kept) == len(frame) == 0


def test_the_energy_base_is_taken_at_the_measured_times(model, dataset):
    steps = dataset.steps.head(4)
    _, frame = composed_steps(model, steps, descriptors_of(dataset), synthetic_analyse)
    measured = np.array([0.01, 0.02, 0.04, 0.08])
    at_measured = with_energy_base(model, frame, measured)
    assert np.allclose(at_measured["step_time_s"], measured)
    doubled = with_energy_base(model, frame, 2 * measured)["energy_base_j"].to_numpy()
    cpu = (frame["kind"] == "cpu").to_numpy()  # a CPU is busy the whole step: its base scales with the time
    assert cpu.any() and np.allclose(doubled[cpu], 2 * at_measured["energy_base_j"].to_numpy()[cpu])


def test_the_energy_stage_is_fitted_at_the_measured_step_times(model, dataset, monkeypatch):
    import flopcast.predictor.training as training

    fresh = copy.copy(model)  # the session's model keeps its fitted stages
    fresh.step_time, fresh.step_energy, fresh.memory = StepTimeModel(), StepEnergyModel(), MemoryModel()
    seen = []
    real = training.with_energy_base
    monkeypatch.setattr(training, "with_energy_base", lambda m, f, t=None: seen.append(t) or real(m, f, t))
    steps = dataset.steps[dataset.steps["energy_j"].astype(float) > 0].head(12)
    kept, frame = composed_steps(model, steps, descriptors_of(dataset), synthetic_analyse)
    training.fit_step_stages(fresh, kept, frame)
    assert len(seen) == 1 and np.allclose(seen[0], kept["time_s"].to_numpy(float))


def test_composed_steps_analyse_each_row_with_its_step_options(model, dataset):
    seen = []

    def analyse(*args, **options):
        seen.append(options)
        return synthetic_analyse(*args)

    steps = dataset.steps.head(2).copy()
    steps.loc[steps.index[1], ["loss", "grad_accumulation"]] = ["cross-entropy", 4]
    composed_steps(model, steps, descriptors_of(dataset), analyse)
    assert seen == [{}, {"loss": "cross-entropy", "grad_accumulation": 4}]  # a plain row passes none


def test_imputed_bandwidth_efficiency_keeps_the_specs_meaning_apart():
    from flopcast.calibration.catalog import get_hardware
    from flopcast.calibration.descriptor import HardwareDescriptor
    from flopcast.predictor.featurize import HardwareView
    from flopcast.predictor.training import imputed_efficiencies

    def device(name, kind, spec, measured, estimated):
        return HardwareDescriptor(name=name, kind=kind, peak_flops_per_s={"fp32": 1e12}, memory_bytes=1e10,
                                  memory_bandwidth_bytes_per_s=spec, measured_bandwidth_bytes_per_s=measured,
                                  extra={"memory_bandwidth_estimated": True} if estimated else {})

    descs = {"gpu": device("gpu", "gpu", 4.8e12, 4.2e12, False),  # 0.875 of the spec sheet
             "vm": device("vm", "cpu", 1e10, 4e10, True)}  # 4x a probe's a-priori guess
    eff = imputed_efficiencies(descs)
    assert eff["cpu"]["bw_estimated"] == 4.0 and eff["cpu"]["bw"] == 0.875  # the GPU's sheet ratio, borrowed
    catalog_cpu = get_hardware("cpu-epyc-genoa-32c")  # a spec-sheet bandwidth: the sheet's ratio, not 4x
    assert HardwareView.of(catalog_cpu, imputed_eff=eff["cpu"]).bw_eff == 0.875
    probed = device("local-cpu", "cpu", 1e10, None, True)
    assert HardwareView.of(probed, imputed_eff=eff["cpu"]).bw_eff == 4.0


def test_a_device_never_measured_gets_its_kinds_fitted_launch_overhead(model):
    from flopcast.calibration.catalog import get_hardware

    fitted = [h["overhead_s"] for h in model.hardware.values() if h["descriptor"]["kind"] == "cpu"]
    assert model.imputed_eff["cpu"]["launch_overhead_s"] == float(np.median(fitted))
    catalog_cpu = get_hardware("cpu-epyc-genoa-32c")  # no measured overhead: no typed prior either
    assert catalog_cpu.launch_overhead_s is None
    assert model.view(catalog_cpu).launch_overhead_s == float(np.median(fitted))


def test_backward_rows_fit_their_own_call_overhead():
    import pytest

    from flopcast.calibration.descriptor import HardwareDescriptor
    from flopcast.predictor.featurize import HardwareView
    from flopcast.predictor.training import fitted_overheads
    from tests.datasets.synthetic import DEVICES, microbench

    gpu = DEVICES["test-gpu"]
    rows = microbench(gpu, n=200, noise=0.0)
    backward = rows.index % 4 == 1  # a quarter of the rows timed through one autograd.grad call each
    call_s = 80e-6
    rows.loc[backward, "phase"] = "backward"
    rows.loc[backward, "time_s"] += call_s
    view = HardwareView.of(HardwareDescriptor.from_dict(gpu))
    fitted = fitted_overheads(rows, view)
    # the launch overhead from the tiniest rows of all; the backward call's from the backward rows alone
    assert fitted["backward_overhead_s"] == pytest.approx(gpu["launch_overhead_s"] + call_s, rel=0.05)
    assert fitted["overhead_s"] < 0.2 * fitted["backward_overhead_s"]
    assert "backward_overhead_s" not in fitted_overheads(rows[~backward], view)  # no backward rows: none


def test_only_backward_rows_carry_the_backward_call_overhead():
    import pandas as pd

    from flopcast.calibration.descriptor import HardwareDescriptor
    from flopcast.predictor.featurize import HardwareView
    from tests.datasets.synthetic import DEVICES

    d = HardwareDescriptor.from_dict(DEVICES["test-gpu"])
    f = pd.DataFrame({"phase": ["forward", "backward", "any", "optimizer"]})
    view = HardwareView.of(d, 1e-5, None, 9e-5)
    assert view.row_overheads_s(f).tolist() == [1e-5, 9e-5, 1e-5, 1e-5]  # a GEMM ("any") keeps the launch's
    assert HardwareView.of(d, 1e-5).row_overheads_s(f).tolist() == [1e-5] * 4  # none fitted: the launch's
    kind = HardwareView.of(d, 1e-5, {"backward_overhead_s": 7e-5})  # a device without backward rows: its kind's
    assert kind.row_overheads_s(f)[1] == 7e-5
