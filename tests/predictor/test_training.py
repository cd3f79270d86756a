"""Training helpers: measured steps are read with today's analysis of their config."""

from __future__ import annotations

from flopcast.predictor.training import composed_steps, descriptors_of
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
