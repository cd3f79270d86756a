"""Peak memory of autocast steps on a CUDA target, traced on CPU: the weight-cast cache as torch keeps it.

torch's autocast caches the fp32 -> bf16/fp16 cast of a leaf that requires grad (a weight) until the
outermost autocast region exits, but not under ``torch.inference_mode`` (pytorch#165068): an inference
step then holds one weight's low-precision copy at a time, not a copy of the whole model.
"""

import pytest
import torch
from torch import nn

from flopcast.features import autocast_policy
from flopcast.features.api import analyze
from flopcast.features.autocast_policy import CudaTargetEmulation

D, B, DEPTH = 512, 8, 4  # every tensor below is a multiple of the allocator's 512-byte block
KIB = 1024
PARAMS = DEPTH * D * D * 4  # fp32 weights
INPUT = B * D * 4  # fp32 input
WEIGHT_BF16 = D * D * 2  # one weight's bf16 copy
ACT_BF16 = B * D * 2  # one layer's bf16 input or output


def linear_stack() -> nn.Module:
    return nn.Sequential(*(nn.Linear(D, D, bias=False) for _ in range(DEPTH)))


def infer_bf16_cuda():
    return analyze(
        linear_stack, [f"float32[B,{D}]"], batch_size=B, mode="infer", precision="bf16", device="cuda", optimizer="none"
    ).memory


def expected_breakdown(activations: int) -> dict[str, int]:
    return {
        "parameters": PARAMS,
        "buffers": 0,
        "optimizer_state": 0,
        "inputs": INPUT,
        "activations": activations,
        "gradients": 0,
        "temporaries": 0,
    }


@pytest.mark.skipif(
    tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 11),
    reason="pytorch#165068 is known to be in torch 2.11 (measured on an H200)",
)
def test_probe_finds_no_cast_cache_under_inference_mode():
    assert autocast_policy.CACHES_UNDER_INFERENCE_MODE is False


def test_infer_bf16_holds_one_weight_cast_at_a_time(monkeypatch):
    monkeypatch.setattr(autocast_policy, "CACHES_UNDER_INFERENCE_MODE", False)
    m = infer_bf16_cuda()
    # by hand: during each matmul, its input (bf16), its weight's bf16 copy and its output (bf16) are live;
    # the copy dies with the op, as the x input's bf16 cast does
    assert m.breakdown_bytes == expected_breakdown(WEIGHT_BF16 + 2 * ACT_BF16)
    assert m.peak_bytes == PARAMS + INPUT + WEIGHT_BF16 + 2 * ACT_BF16 == 4 * 1024 * KIB + 16 * KIB + 528 * KIB


def test_infer_bf16_on_a_torch_that_caches_keeps_every_weight_cast(monkeypatch):
    monkeypatch.setattr(autocast_policy, "CACHES_UNDER_INFERENCE_MODE", True)
    m = infer_bf16_cuda()
    # older torch: every weight's bf16 copy stays cached until the autocast region exits
    assert m.breakdown_bytes == expected_breakdown(DEPTH * WEIGHT_BF16 + 2 * ACT_BF16)


def test_emulated_cuda_infer_peak_matches_real_cpu_autocast():
    """Linear is on both devices' lower-precision lists, so a CPU target (real ``torch.autocast``, real
    cache rule of the installed torch) and the emulated CUDA target must hold the same bytes."""
    kwargs = {"batch_size": B, "mode": "infer", "precision": "bf16", "optimizer": "none"}
    cpu = analyze(linear_stack, [f"float32[B,{D}]"], device="cpu", **kwargs).memory
    cuda = analyze(linear_stack, [f"float32[B,{D}]"], device="cuda", **kwargs).memory
    assert cuda.breakdown_bytes == cpu.breakdown_bytes


@pytest.mark.parametrize("inference", [False, True])
def test_cast_cache_rule(inference):
    w = nn.Parameter(torch.ones(4, 4))
    emu = CudaTargetEmulation(torch.bfloat16)
    ctx = torch.inference_mode() if inference else torch.enable_grad()
    with ctx:
        first, second = emu._cast(w, torch.bfloat16), emu._cast(w, torch.bfloat16)
        view = w[:2]
        assert emu._cast(view, torch.bfloat16) is not emu._cast(view, torch.bfloat16)  # views are never cached
    assert first.dtype is torch.bfloat16
    cached = not inference or autocast_policy.CACHES_UNDER_INFERENCE_MODE
    assert (first is second) is cached


@pytest.mark.parametrize("cached", [False, True])
def test_small_vit_infer_bf16_breakdown_by_hand(cached, monkeypatch):
    """vit-tiny (dim 192, 65 tokens, MLP 768) at batch 4, inference in bf16 on a CUDA target.

    The peak is the GELU of block 1's MLP (of the last block with cached casts). Live then, besides
    weights and input: fc1's output and the GELU's output (bf16, B x T x 4d each); four fp32 token
    tensors (the blocks' input, held by the ViT's forward, block 0's output, held by ``nn.Sequential``,
    the residual after attention and norm2's output); the patch embeddings (bf16, B x (T - 1) x d).
    fc1's bf16 weight copy died with fc1, unless casts are cached: then every Linear and Conv2d weight
    and bias cast so far is still held.
    """
    from flopcast.calibration.zoo import get
    from flopcast.features.memory import allocator_bytes

    monkeypatch.setattr(autocast_policy, "CACHES_UNDER_INFERENCE_MODE", cached)
    zm = get("vit-tiny")
    b, t, d = 4, 65, 192
    a = analyze(zm.build, zm.inputs, batch_size=b, mode="infer", precision="bf16", device="cuda", optimizer="none")
    model = zm.build()
    activations = 2 * b * t * 4 * d * 2 + 4 * b * t * d * 4 + b * (t - 1) * d * 2
    peak_block = len(model.blocks) - 1 if cached else 1
    if cached:  # the patch embedding, every block before the last, the last one's attention and fc1
        last = model.blocks[peak_block]
        cast = [model.patch_embed, *model.blocks[:peak_block].modules(), last.attn.qkv, last.attn.proj, last.mlp[0]]
        activations += sum(
            allocator_bytes(p.numel() * 2)
            for m in cast
            if isinstance(m, (nn.Linear, nn.Conv2d))
            for p in m.parameters(recurse=False)
        )
    assert a.memory.breakdown_bytes == {
        "parameters": sum(allocator_bytes(p.numel() * 4) for p in model.parameters()),
        "buffers": 0,
        "optimizer_state": 0,
        "inputs": b * 3 * 32 * 32 * 4,
        "activations": activations,
        "gradients": 0,
        "temporaries": 0,
    }
    assert a.ops[a.memory.peak_op_index].module == f"blocks.{peak_block}.mlp.1"


def test_vit_b16_infer_bf16_matches_the_h200_measurement():
    """ViT-B/16, batch 32, inference in bf16: ``tests/features/test_memory_gpu.py`` measured 0.494 GiB
    (``torch.cuda.max_memory_allocated``, torch 2.11, H200); the estimate was 0.649 GiB with the cast
    cache wrongly kept under inference mode."""
    if autocast_policy.CACHES_UNDER_INFERENCE_MODE:
        pytest.skip("this torch keeps autocast casts cached under inference mode (before pytorch#165068)")
    from flopcast.calibration.zoo import get

    zm = get("vit-b16")
    est = analyze(
        zm.build, zm.inputs, batch_size=32, mode="infer", precision="bf16", device="cuda", optimizer="none"
    ).peak_memory_bytes
    assert est / 2**30 == pytest.approx(0.494, rel=0.02)
