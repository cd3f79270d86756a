"""The step options traced for a CUDA target against a real CUDA run of the same step (skipped without CUDA).

The CPU-side checks (``test_step.py``) compare with a real CPU run; these check the emulated CUDA policy:
foreach and fused optimizer kernels, the scaler's kernels on CUDA, clipping, and the loss in float32
under CUDA autocast.
"""

from __future__ import annotations

import pytest
import torch

from flopcast.features.api import analyze
from flopcast.features.step import make_step_parts
from flopcast.features.step_options import StepOptions
from tests.features.models import torch_models as tm
from tests.features.test_step import OpLog

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize(
    ("options", "precision"),
    [
        (StepOptions(loss="cross-entropy"), "bf16"),
        (StepOptions(loss="cross-entropy", grad_clip=1.0, fused_optimizer=True), "fp32"),
        (StepOptions(loss="cross-entropy", grad_scaler=True), "fp16"),
        (StepOptions(loss="cross-entropy", grad_scaler=True, grad_clip=1.0, grad_accumulation=2,
                     fused_optimizer=True), "fp16"),
    ],
)
def test_cuda_target_trace_runs_the_kernels_of_a_real_cuda_step(options, precision):
    model = tm.mlp().cuda()  # linear layers only: the step's own kernels are what differs
    x = torch.randn(4, 16, device="cuda")
    parts = make_step_parts(model, [x], mode="train", precision=precision, device="cuda", options=options)
    parts.run()
    log = OpLog()
    with log:
        parts.run()
    a = analyze(tm.mlp, ["float32[B,16]"], batch_size=4, precision=precision, device="cuda", step=options)
    traced = [o.op for o in a.ops if o.op != "aten.detach"]
    assert traced == log.ops
