"""The train step as users write it: loss, clipping, accumulation, fused optimizer, gradient scaler.

Each option is traced on shape-only tensors and checked against a real CPU run of the same step
(:func:`make_step_parts` runs both), against CUDA's kernels where the target is CUDA, and against FLOP
counts worked out by hand.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import flopcast.features.trace_model as trace_model
from flopcast.features.api import analyze
from flopcast.features.step import choose_loss, loss_labels, make_step, make_step_parts
from flopcast.features.step_options import StepOptionError, StepOptions
from tests.features.models import torch_models as tm

aten = torch.ops.aten
B = 8


def linear() -> torch.nn.Module:
    return torch.nn.Linear(16, 4)


class OpLog(TorchDispatchMode):
    """aten op names of a real run (``.item()`` and ``detach`` left out: the trace needs neither)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "aten" and func not in (aten._local_scalar_dense.default, aten.detach.default):
            self.ops.append(f"aten.{func.overloadpacket.__name__}")
        return func(*args, **(kwargs or {}))


def traced_ops(build, spec, options, precision="fp32", device="cpu", optimizer="adamw"):
    a = analyze(build, [spec], batch_size=B, precision=precision, device=device, optimizer=optimizer, step=options)
    return a, [o.op for o in a.ops if o.op != "aten.detach"]


@pytest.mark.parametrize(
    ("options", "precision"),
    [
        (StepOptions(loss="cross-entropy"), "fp32"),
        (StepOptions(loss="mse"), "fp32"),
        (StepOptions(loss="cross-entropy", grad_clip=1.0), "fp32"),
        (StepOptions(loss="cross-entropy", grad_accumulation=3), "fp32"),
        (StepOptions(loss="cross-entropy", fused_optimizer=True), "fp32"),
        (StepOptions(loss="cross-entropy", grad_scaler=True), "fp16"),
        (StepOptions(loss="cross-entropy", grad_scaler=True, grad_clip=0.5, grad_accumulation=2), "fp16"),
    ],
)
def test_trace_runs_the_ops_of_a_real_cpu_step(options, precision):
    torch.manual_seed(0)
    model = tm.mlp()
    x = torch.randn(B, 16)
    parts = make_step_parts(model, [x], mode="train", precision=precision, device="cpu", options=options)
    parts.run()  # first step: optimizer state, labels and the scaler's scale exist afterwards
    log = OpLog()
    with log:
        parts.run()
    _, traced = traced_ops(tm.mlp, "float32[B,16]", options, precision)
    assert traced == log.ops


def test_options_emit_their_kernels_for_a_cuda_target():
    _, plain = traced_ops(linear, "float32[B,16]", StepOptions(loss="cross-entropy"), device="cuda")
    _, fused = traced_ops(linear, "float32[B,16]", StepOptions(loss="cross-entropy", fused_optimizer=True),
                          device="cuda")
    assert "aten._foreach_addcdiv_" in plain and "aten._fused_adamw_" not in plain
    assert fused.count("aten._fused_adamw_") == 1 and "aten._foreach_addcdiv_" not in fused
    a, scaled = traced_ops(linear, "float32[B,16]", StepOptions(loss="cross-entropy", grad_scaler=None),
                           precision="fp16", device="cuda")
    assert a.target.step.grad_scaler  # on by default for fp16 training
    tail = scaled[scaled.index("aten._amp_foreach_non_finite_check_and_unscale_"):]
    # the optimizer ran (the scaler's overflow check reads finite on fake tensors), then the scale update
    assert "aten._foreach_addcdiv_" in tail and tail[-1] == "aten._amp_update_scale_"
    _, clipped = traced_ops(linear, "float32[B,16]", StepOptions(loss="cross-entropy", grad_clip=1.0), device="cuda")
    assert {"aten._foreach_norm", "aten.linalg_vector_norm", "aten._foreach_mul_"} <= set(clipped)


def phase_flops(options, phase, **kw):
    a = analyze(linear, ["float32[B,16]"], batch_size=B, device="cpu", step=options, **kw)
    return sum(o.flops for o in a.ops if o.phase.value == phase)


def test_loss_flops_by_hand():
    mean = phase_flops(StepOptions(loss="mean"), "forward")
    matmul = 2 * B * 16 * 4 + B * 4  # addmm: 2 x 8 x 16 x 4, + 8 x 4 bias adds
    assert mean == matmul + B * 4  # mean: one add per output element
    # cross-entropy: log_softmax 8 per logit (max, sub, exp=4, sum, sub log) + nll 1 per target
    assert phase_flops(StepOptions(loss="cross-entropy"), "forward") == matmul + 8 * B * 4 + B
    # mse: sub, square, sum per element
    assert phase_flops(StepOptions(loss="mse"), "forward") == matmul + 3 * B * 4


def test_grad_clip_flops_by_hand():
    plain = phase_flops(StepOptions(loss="mean"), "optimizer")
    clipped = phase_flops(StepOptions(loss="mean", grad_clip=1.0), "optimizer")
    params = 16 * 4 + 4
    # _foreach_norm 2/element, norm of the 2 norms 2 x 2, + 1e-6, max_norm / total (reciprocal + mul),
    # clamp to 1, _foreach_mul_ of every gradient
    assert clipped - plain == 2 * params + 2 * 2 + 1 + 2 + 1 + params


def test_grad_accumulation_repeats_forward_and_backward():
    one = {p: phase_flops(StepOptions(loss="mean"), p) for p in ("forward", "backward", "optimizer")}
    three = {p: phase_flops(StepOptions(loss="mean", grad_accumulation=3), p) for p in one}
    assert three["forward"] == 3 * (one["forward"] + 1)  # + the loss divided by 3 in each micro-batch
    # + the division's backward (one scalar FLOP) per micro-batch; micro-batches 2 and 3 add their
    # gradients to the ones accumulated: one add per parameter element
    assert three["backward"] == 3 * (one["backward"] + 1) + 2 * (16 * 4 + 4)
    assert three["optimizer"] == one["optimizer"]


def test_accumulated_step_copied_from_two_traced_micro_batches_equals_the_full_trace(monkeypatch):
    options = StepOptions(loss="cross-entropy", grad_accumulation=5)
    copied = analyze(tm.cnn, ["float32[B,3,8,8]"], batch_size=2, device="cpu", step=options)
    monkeypatch.setattr(trace_model, "TRACED_MICRO_BATCHES", 5)
    full = analyze(tm.cnn, ["float32[B,3,8,8]"], batch_size=2, device="cpu", step=options)
    assert copied.ops == full.ops
    assert copied.memory == full.memory and copied.memory.live_by_op_bytes == full.memory.live_by_op_bytes


def test_run_totals_count_samples_per_accumulated_step():
    a = analyze(linear, ["float32[B,16]"], batch_size=4, device="cpu", step=StepOptions(grad_accumulation=5))
    assert a.target.samples_per_step == 20
    assert a.scaled_to_run(1000, epochs=2)["steps"] == 100  # ceil(1000 / (4 x 5)) x 2
    assert a.to_dict()["step"]["samples_per_step"] == 20


def test_fused_optimizer_keeps_step_counters_on_the_cuda_device():
    kw = {"batch_size": B, "device": "cuda"}
    plain = analyze(linear, ["float32[B,16]"], step=StepOptions(loss="mean"), **kw)
    fused = analyze(linear, ["float32[B,16]"], step=StepOptions(loss="mean", fused_optimizer=True), **kw)
    state = lambda a: a.memory.start_bytes[2]  # noqa: E731  (optimizer_state, KINDS order)
    assert state(fused) - state(plain) == 2 * 512  # two float32 step counters, one 512-byte block each


def test_hf_lm_cross_entropy_in_fp32_under_cuda_autocast():
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("gpt2", n_layer=1, n_embd=64, n_head=4, vocab_size=300)
    a = analyze(lambda: AutoModelForCausalLM.from_config(cfg), ["int64[B,16]<300"], batch_size=2, precision="bf16",
                device="cuda", optimizer="none", step=StepOptions(loss="auto"))
    assert a.target.step.loss == "cross-entropy" and "logits" in a.target.step.loss_rule
    ops = {o.op: o for o in a.ops}
    # CUDA autocast runs cross_entropy_loss in float32: bf16 logits [2, 16, 300] are cast up first
    assert ops["aten._log_softmax"].outputs[0].dtype == "float32"
    assert ops["aten._log_softmax"].flops == 8 * 2 * 16 * 300
    assert ops["aten.nll_loss_forward"].flops == 2 * 16  # one pick per token: the input ids are the labels
    assert "aten.nll_loss_backward" in ops and "aten._log_softmax_backward_data" in ops
    assert not [o for o in a.ops if o.phase.value == "optimizer" and o.flops]


@pytest.mark.parametrize(
    ("out", "inputs", "loss"),
    [
        (torch.zeros(4, 10), [torch.zeros(4, 3)], "cross-entropy"),  # [batch, classes]
        (torch.zeros(4, 1), [torch.zeros(4, 3)], "mean"),  # a regression / click head
        (torch.zeros(4, 7, 50), [torch.zeros(4, 7, dtype=torch.long)], "cross-entropy"),  # token logits
        (torch.zeros(4, 7, 50), [torch.zeros(4, 7)], "mean"),  # features, no ids to classify
        (torch.zeros(4, 3, 8, 8), [torch.zeros(4, 3, 8, 8)], "mean"),  # an image
    ],
)
def test_auto_loss_choice(out, inputs, loss):
    assert choose_loss(out, inputs)[0] == loss


def test_labels_from_the_inputs():
    ids = torch.randint(0, 50, (4, 7))
    assert loss_labels(torch.zeros(4, 7, 50), [ids], "cross-entropy") is ids
    too_big = torch.full((4, 7), 60)
    labels = loss_labels(torch.zeros(4, 7, 50), [too_big], "cross-entropy")
    assert labels.shape == (4, 7) and int(labels.max()) < 50
    assert loss_labels(torch.zeros(4, 10), [], "cross-entropy").shape == (4,)
    assert loss_labels(torch.zeros(4, 10), [], "mse").shape == (4, 10)


def test_measured_step_runs_every_option():
    torch.manual_seed(0)
    model = tm.mlp()
    options = StepOptions(loss="cross-entropy", grad_clip=1.0, grad_accumulation=2, fused_optimizer=True)
    step = make_step(model, [torch.randn(B, 16)], mode="train", device="cpu", options=options)
    before = model[0].weight.detach().clone()
    step()
    assert not torch.equal(before, model[0].weight)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"grad_accumulation": 0}, "--grad-accumulation must be >= 1"),
        ({"grad_clip": 0.0}, "--grad-clip must be a norm > 0"),
        ({"loss": "hinge"}, "unknown loss 'hinge'"),
        ({"step_fn": "s.py:f", "grad_clip": 1.0}, "--grad-clip and --step"),
    ],
)
def test_bad_options(kwargs, fragment):
    with pytest.raises(StepOptionError, match=fragment):
        StepOptions(**kwargs)
