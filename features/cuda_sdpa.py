"""Scaled-dot-product attention as CUDA runs it, for tracing a CUDA target on CPU fake tensors.

``F.scaled_dot_product_attention`` picks a fused kernel per backend; on CPU tensors it would pick the
CPU kernels (or the unfused math path when dropout is on), which is not what a GPU step runs. This
follows the CUDA selection of ``aten/src/ATen/native/transformers/cuda/sdp_utils.cpp`` for Hopper-class
GPUs: flash attention for fp16/bf16 without a custom mask (dropout and causal allowed, head dim <= 256),
otherwise memory-efficient attention (any float dtype, mask as an additive bias, no grouped-query
heads), otherwise the math path.
"""

from __future__ import annotations

from typing import Any

import torch

aten = torch.ops.aten
FLASH_DTYPES = (torch.float16, torch.bfloat16)
FLASH_MAX_HEAD_DIM = 256


def _as_bias(mask: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A boolean mask as the additive float bias the efficient kernel takes, expanded to [B, H, Lq, Lk]."""
    if mask.dtype is torch.bool:
        mask = torch.zeros_like(mask, dtype=q.dtype).masked_fill(mask.logical_not(), float("-inf"))
    return mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])


def choose_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Any, enable_gqa: bool) -> str:
    """``flash``, ``efficient`` or ``math``: the kernel CUDA would run for these arguments."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return "math"
    same_heads = q.shape[1] == k.shape[1] == v.shape[1]
    flash_head = q.shape[-1] <= FLASH_MAX_HEAD_DIM and q.shape[-1] == v.shape[-1]
    if q.dtype in FLASH_DTYPES and attn_mask is None and flash_head:
        return "flash" if same_heads or enable_gqa else "math"
    if same_heads and q.is_floating_point():
        return "efficient"
    return "math"


def cuda_sdpa(original: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Any = None,
              dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
              enable_gqa: bool = False) -> torch.Tensor:
    """Attention through the CUDA kernel :func:`choose_kernel` picks; ``original`` runs the math path."""
    kernel = choose_kernel(q, k, v, attn_mask, enable_gqa)
    if kernel == "flash":
        return aten._scaled_dot_product_flash_attention(q, k, v, dropout_p, is_causal, False, scale=scale)[0]
    if kernel == "efficient":
        bias = None if attn_mask is None else _as_bias(attn_mask, q, k)
        need_lse = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
        return aten._scaled_dot_product_efficient_attention(
            q, k, v, bias, need_lse, dropout_p, is_causal, scale=scale
        )[0]
    kwargs = {"enable_gqa": True} if enable_gqa else {}
    return original(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale, **kwargs)
