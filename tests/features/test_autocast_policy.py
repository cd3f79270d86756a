"""Each recorded op carries the dtype it really runs in: CPU policy vs a real run, CUDA policy emulated."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from flopcast.features.api import analyze
from flopcast.features.cuda_sdpa import choose_kernel
from flopcast.features.step import make_step_parts, warm_optimizer_state
from tests.features.models import torch_models as tm


class DtypeLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.namespace == "aten" and func is not torch.ops.aten._local_scalar_dense.default:
            first = next((o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)), None)
            self.seen.append((f"aten.{func.overloadpacket.__name__}", None if first is None else str(first.dtype)[6:]))
        return out


# An fp16 LSTM has no oneDNN kernel on CPU (a real run raises), so it cannot serve as the reference.
@pytest.mark.parametrize(("build", "precision"), [(tm.cnn, "bf16"), (tm.cnn, "fp16"), (tm.lstm_lm, "bf16")])
def test_cpu_policy_matches_a_real_cpu_autocast_run(build, precision):
    spec = "float32[B,3,8,8]" if build is tm.cnn else "int64[B,12]<100"
    torch.manual_seed(0)
    model = build()
    from flopcast.features.spec import parse_spec

    x = parse_spec(spec).materialize({"B": 4})
    parts = make_step_parts(model, [x], mode="train", precision=precision, device="cpu")
    warm_optimizer_state(parts)
    log = DtypeLog()
    with log:
        parts.run()
    real = [s for s in log.seen if s[0] != "aten.detach"]
    a = analyze(build, [spec], batch_size=4, precision=precision, device="cpu")
    traced = [(o.op, o.outputs[0].dtype if o.outputs else None) for o in a.ops
              if o.op.startswith("aten.") and o.op != "aten.detach"]
    assert traced == real


def test_cuda_policy_emulation_casts_like_cuda_autocast():
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("gpt2", n_layer=1, n_embd=64, n_head=4, vocab_size=300)
    a = analyze(lambda: AutoModelForCausalLM.from_config(cfg), ["int64[B,16]<300"], batch_size=2,
                precision="bf16", device="cuda")
    fwd = [o for o in a.ops if o.phase.value == "forward"]
    # matmuls run in bf16 (lower-precision list), layer_norm in fp32 (fp32 list)
    assert {o.dtype for o in fwd if o.category.value == "matmul"} == {"bfloat16"}
    assert {o.outputs[0].dtype for o in fwd if o.op == "aten.native_layer_norm"} == {"float32"}
    # attention: CUDA's flash kernel in bf16, with its own backward
    attn = [o.op for o in a.ops if o.category.value == "attention"]
    assert attn == ["aten._scaled_dot_product_flash_attention", "aten._scaled_dot_product_flash_attention_backward"]
    # master weights stay fp32: the optimizer works in float32
    assert {o.dtype for o in a.ops if o.phase.value == "optimizer" and o.flops} == {"float32"}


@pytest.mark.parametrize(
    ("dtype", "mask", "heads_kv", "gqa", "expected"),
    [
        (torch.bfloat16, None, 8, False, "flash"),
        (torch.float32, None, 8, False, "efficient"),
        (torch.float16, torch.ones(1, 1, 16, 16, dtype=torch.bool), 8, False, "efficient"),
        (torch.bfloat16, None, 2, True, "flash"),
        (torch.float32, None, 2, True, "math"),
    ],
)
def test_cuda_attention_kernel_choice(dtype, mask, heads_kv, gqa, expected):
    q = torch.empty(2, 8, 16, 64, dtype=dtype, device="meta")
    k = torch.empty(2, heads_kv, 16, 64, dtype=dtype, device="meta")
    assert choose_kernel(q, k, k, mask, gqa) == expected


def test_fp32_cuda_target_uses_efficient_attention_even_with_dropout():
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("gpt2", n_layer=1, n_embd=64, n_head=4, vocab_size=300, attn_pdrop=0.1)
    a = analyze(lambda: AutoModelForCausalLM.from_config(cfg), ["int64[B,16]<300"], batch_size=2, device="cuda")
    assert [o.op for o in a.ops if o.category.value == "attention"] == [
        "aten._scaled_dot_product_efficient_attention", "aten._scaled_dot_product_efficient_attention_backward"]
