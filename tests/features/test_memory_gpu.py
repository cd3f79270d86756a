"""Peak memory estimate vs ``torch.cuda.max_memory_allocated`` of real GPU steps (skipped without CUDA)."""

import pytest
import torch

from flopcast.calibration.zoo import get
from flopcast.calibration.zoo_steps import StepConfig, steady_peak_memory_bytes
from flopcast.features.api import analyze

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CASES = [("resnet50-224", 32, "train", "fp32"), ("resnet50-224", 32, "train", "bf16"),
         ("gpt2-small", 4, "train", "bf16"), ("bert-base", 16, "train", "fp32"), ("vit-b16", 32, "infer", "bf16"),
         ("llama-300m", 2, "train", "bf16"), ("unet-256", 4, "train", "fp32")]


@pytest.mark.parametrize(("model", "batch", "mode", "precision"), CASES)
def test_estimate_close_to_max_memory_allocated(model, batch, mode, precision):
    zm = get(model)
    optimizer = "adamw" if mode == "train" else "none"
    real, _ = steady_peak_memory_bytes(StepConfig(model, batch, mode, precision, optimizer), "cuda")
    est = analyze(zm.build, zm.inputs, batch_size=batch, mode=mode, precision=precision, device="cuda",
                  optimizer=optimizer).peak_memory_bytes
    err = (est - real) / real
    print(f"{model} {mode} {precision} bs{batch}: estimate {est / 2**30:.3f} GiB, real {real / 2**30:.3f} GiB, "
          f"error {err:+.1%}")
    assert abs(err) < 0.15
