"""Tracing PyTorch steps on shape-only tensors: phases, modules, outcomes, agreement with torch's counter."""

from collections import Counter

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from flopcast.features.api import analyze, analyze_config
from flopcast.features.config import AnalyzeConfig
from flopcast.features.registry import op_name
from flopcast.features.spec import parse_spec
from flopcast.features.trace_torch import footprint_bytes, trace_ops
from tests.features.models import torch_models as tm

COUNTED_BY_TORCH = {op_name(k) for k in flop_registry}


def hf(model_type: str, **cfg):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    config = AutoConfig.for_model(model_type, **cfg)
    cls = AutoModelForMaskedLM if model_type == "bert" else AutoModelForCausalLM
    return lambda: cls.from_config(config)


MODELS = {
    "mlp": (tm.mlp, ["float32[B,16]"]),
    "cnn": (tm.cnn, ["float32[B,3,8,8]"]),
    "lstm": (tm.lstm_lm, ["int64[B,12]<100"]),
    "gpt2": (hf("gpt2", n_layer=2, n_embd=64, n_head=4, vocab_size=500, n_positions=64), ["int64[B,32]<500"]),
    "bert": (hf("bert", num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                vocab_size=500), ["int64[B,32]<500"]),
}


def torch_counter_flops(build, specs, batch):
    """FLOPs FlopCounterMode reports for a real forward+backward on CPU."""
    torch.manual_seed(0)
    model = build()
    inputs = [parse_spec(s).materialize({"B": batch}) for s in specs]
    with FlopCounterMode(display=False) as counter:
        out = model(*inputs)
        out = out if isinstance(out, torch.Tensor) else out.logits
        out.mean().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("name", list(MODELS))
def test_agrees_with_torch_flop_counter_on_the_ops_it_covers(name):
    build, specs = MODELS[name]
    a = analyze(build, specs, batch_size=4, device="cpu", optimizer="none")
    covered = [o for o in a.ops if o.op in COUNTED_BY_TORCH]
    theirs = torch_counter_flops(build, specs, 4)
    assert theirs > 0
    # torch's counter counts multiply-adds only (2 per MAC): our MACs match it exactly.
    assert 2 * sum(o.macs for o in covered) == theirs
    # Our FLOPs add one per output element for biases (documented in features/formulas/__init__.py).
    bias_adds = sum(o.flops for o in covered) - theirs
    assert 0 <= bias_adds <= 0.02 * theirs


def test_phases_modules_and_counts_gpt2():
    a = analyze_config(AnalyzeConfig(target="hf:gpt2", batch_size=2, seq_len=64, device="cuda",
                                     hf_overrides=("n_layer=2", "n_embd=64", "n_head=4", "vocab_size=500")))
    phases = Counter(o.phase.value for o in a.ops)
    assert set(phases) == {"forward", "backward", "optimizer"}
    mods = {(o.phase.value, o.module) for o in a.ops}
    for phase in ("forward", "backward"):
        assert (phase, "transformer.h.1.attn.c_attn") in mods
        assert (phase, "transformer.h.0.mlp.c_fc") in mods
    # attention: one fused SDPA op per layer in forward and one backward per layer
    sdpa = [o for o in a.ops if o.category.value == "attention"]
    assert Counter(o.phase.value for o in sdpa) == {"forward": 2, "backward": 2}
    # CUDA target: the optimizer runs torch's foreach kernels
    assert any(o.op.startswith("aten._foreach_") for o in a.ops if o.phase.value == "optimizer")
    assert not a.unsupported_ops


def test_cpu_target_uses_for_loop_optimizer_and_steady_state():
    a = analyze(tm.mlp, ["float32[B,16]"], batch_size=4, device="cpu")
    opt_ops = [o.op for o in a.ops if o.phase.value == "optimizer"]
    assert opt_ops and not any(op.startswith("aten._foreach_") for op in opt_ops)
    # state was created before the traced step: no zeros_like for exp_avg/exp_avg_sq in the step
    assert "aten.zeros_like" not in opt_ops
    # AdamW for-loop: 4 params x (lerp_, addcmul_) are present
    assert Counter(opt_ops)["aten.lerp_"] == 4


def test_infer_mode_has_forward_only():
    a = analyze(tm.cnn, ["float32[B,3,8,8]"], batch_size=2, mode="infer", device="cpu")
    assert {o.phase.value for o in a.ops} == {"forward"}
    assert a.memory.breakdown_bytes["gradients"] == 0 and a.memory.breakdown_bytes["optimizer_state"] == 0


def test_unknown_op_is_reported_not_silent_zero():
    a = analyze(tm.mystery, ["float32[B,16]"], batch_size=3, device="cpu")
    assert a.unsupported_ops == {"flopcast_test.mystery": 1}
    rec = next(o for o in a.ops if o.op == "flopcast_test.mystery")
    assert rec.outcome.value == "unsupported" and rec.bytes_read == 3 * 16 * 4 and rec.bytes_written == 3 * 16 * 4
    assert 0 < a.unsupported_share < 1
    assert a.to_dict()["unsupported_ops"] == {"flopcast_test.mystery": 1}


def test_views_move_no_bytes_and_broadcast_reads_once():
    def build():
        x, b = torch.empty(64, 32), torch.empty(32)
        return lambda: (x.t().contiguous(), x + b)

    records = trace_ops(build)
    by_op = {o.op: o for o in records}
    assert by_op["aten.t"].bytes_read == 0 and by_op["aten.t"].outcome.value == "zero"
    assert by_op["aten.clone"].bytes_read == 64 * 32 * 4  # contiguous() of a transpose copies
    assert footprint_bytes(torch.empty(32).expand(64, 32)) == 32 * 4


@pytest.mark.parametrize("inference", [False, True])
def test_a_view_over_size_one_dims_has_the_real_strides_so_linear_records_the_real_mm(inference):
    # a decode step's attention output: [B=1, H, S=1, D] -> transpose -> [1, 1, H * D] -> o_proj; the real
    # view strides it (768, 768, 1) and matmul folds it into one mm; fake strides (768, 64, 1) took bmm
    def build():
        heads, w = torch.empty(1, 12, 1, 64), torch.empty(768, 768)

        def step():
            with torch.inference_mode(inference):
                x = heads.transpose(1, 2).contiguous().reshape(1, 1, 768)
                return torch.nn.functional.linear(x, w)

        return step

    ops = [o.op for o in trace_ops(build)]
    assert "aten.mm" in ops and "aten.bmm" not in ops and "aten.expand" not in ops
    real = torch.empty(1, 12, 1, 64).transpose(1, 2).contiguous().reshape(1, 1, 768)
    assert real.stride() == (768, 768, 1)


def test_tied_weights_counted_once():
    build, specs = MODELS["gpt2"]
    a = analyze(build, specs, batch_size=2, device="cpu")
    model = build()
    assert a.params == sum(p.numel() for p in model.parameters())
    adam_lerps = [o for o in a.ops if o.op == "aten.lerp_"]
    assert len(adam_lerps) == len(list(model.parameters()))  # one AdamW update per unique parameter


def test_hf_llama_seven_b_from_config_traces_without_memory():
    cfg = AnalyzeConfig(target="hf:llama", batch_size=1, seq_len=128, precision="bf16", hf_overrides=(
        "hidden_size=4096", "num_hidden_layers=2", "intermediate_size=11008", "vocab_size=32000",
        "num_attention_heads=32", "num_key_value_heads=32"))
    a = analyze_config(cfg)
    # 2 layers x (4*4096^2 + 3*4096*11008) + 2 * 32000*4096 (embedding + head) + norms
    assert a.params == 2 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 32000 * 4096 + 4096
    assert a.peak_memory_bytes > 4 * a.params * 4  # fp32 params + grads + 2 AdamW states


def test_a_trace_does_not_depend_on_what_the_process_traced_before():
    """FakeTensorMode's dispatch cache is process-wide: a warm one changed which LSTM gradients autograd
    copied (two ``copy_`` ops more on a process's first trace than on later ones)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from flopcast.calibration.zoo import get

    zm = get("lstm-lm")
    FakeTensorMode.cache_clear()
    runs = [analyze(zm.build, zm.inputs, batch_size=1, mode="train", precision="fp32", device="cpu")
            for _ in range(2)]
    assert [a.op_count for a in runs] == [runs[0].op_count] * 2
    assert [Counter(o.op for o in a.ops) for a in runs] == [Counter(o.op for o in runs[0].ops)] * 2
    assert runs[0].bytes_accessed == runs[1].bytes_accessed
