"""Peak memory: the static estimate against real CPU runs of zoo models, and the allocator arithmetic."""

import pytest

from flopcast.calibration.zoo import get
from flopcast.calibration.zoo_steps import StepConfig, steady_peak_memory_bytes
from flopcast.features.api import analyze
from flopcast.features.memory import KINDS, allocator_bytes

# (model, batch): at least five architectures; both train (AdamW) and infer steps.
CASES = [("mlp-small", 8), ("resnet18", 4), ("gpt2-mini", 4), ("lstm-lm", 4), ("vit-tiny", 4), ("unet", 2),
         ("dlrm", 16), ("mobilenetv2", 4)]


@pytest.mark.parametrize("mode", ["train", "infer"])
@pytest.mark.parametrize(("model", "batch"), CASES)
def test_estimate_within_15_percent_of_a_real_cpu_run(model, batch, mode):
    zm = get(model)
    optimizer = "adamw" if mode == "train" else "none"
    real, _ = steady_peak_memory_bytes(StepConfig(model, batch, mode, "fp32", optimizer), "cpu")
    est = analyze(zm.build, zm.inputs, batch_size=batch, mode=mode, device="cpu", optimizer=optimizer)
    err = (est.peak_memory_bytes - real) / real
    print(f"{model:12s} {mode:5s} estimate {est.peak_memory_bytes / 2**20:8.2f} MiB  real {real / 2**20:8.2f} MiB  "
          f"error {err:+.1%}")
    assert abs(err) < 0.15


def test_breakdown_sums_to_peak():
    zm = get("gpt2-mini")
    m = analyze(zm.build, zm.inputs, batch_size=2, device="cuda").memory
    assert set(m.breakdown_bytes) == set(KINDS)
    assert sum(m.breakdown_bytes.values()) == m.peak_bytes
    assert m.breakdown_bytes["optimizer_state"] == 2 * m.breakdown_bytes["parameters"]  # AdamW: exp_avg, exp_avg_sq


@pytest.mark.parametrize(("request_bytes", "accounted"), [(0, 0), (1, 512), (512, 512), (513, 1024), (4000, 4096)])
def test_allocator_rounding(request_bytes, accounted):
    assert allocator_bytes(request_bytes) == accounted
