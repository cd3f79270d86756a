"""Zoo family ``vit``: a Vision Transformer (conv patch embedding, pre-norm SDPA blocks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flopcast.calibration.zoo.blocks import mlp
from flopcast.calibration.zoo.registry import register_zoo_model


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection and ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over all tokens.

        Args:
            x: ``(B, T, dim)`` tokens.

        Returns:
            ``(B, T, dim)`` tokens.

        """
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))`` with a GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = mlp([dim, mlp_ratio * dim, dim], act=nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(B, T, dim)`` tokens.

        Returns:
            ``(B, T, dim)`` tokens.

        """
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT: patchify by a strided conv, prepend a class token, add learned positions, encode, classify."""

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: int,
        num_classes: int,
    ) -> None:
        """Build the network.

        Args:
            image_size: square input side, pixels (a multiple of ``patch_size``).
            patch_size: square patch side, pixels.
            dim: token width.
            depth: number of encoder blocks.
            heads: attention heads.
            mlp_ratio: MLP hidden width as a multiple of ``dim``.
            num_classes: output logits.

        """
        super().__init__()
        tokens = (image_size // patch_size) ** 2 + 1
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*(EncoderBlock(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify images.

        Args:
            x: ``(B, 3, image_size, image_size)`` images.

        Returns:
            ``(B, num_classes)`` logits.

        """
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        tokens = self.blocks(torch.cat([cls, patches], dim=1) + self.pos_embed)
        return self.head(self.norm(tokens[:, 0]))


@register_zoo_model(
    name="vit-tiny",
    family="vit",
    inputs=("float32[B,3,32,32]",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(32, 128, 512),
)
def vit_tiny(
    image_size: int = 32,
    patch_size: int = 4,
    dim: int = 192,
    depth: int = 4,
    heads: int = 3,
    mlp_ratio: int = 4,
    num_classes: int = 10,
) -> nn.Module:
    """ViT-Tiny width (192, 3 heads) at 4 blocks on 32x32 images; ViT-B/16 is ``(224, 16, 768, 12, 12)``.

    Args:
        image_size: square input side, pixels.
        patch_size: square patch side, pixels.
        dim: token width.
        depth: number of encoder blocks.
        heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        num_classes: output logits.

    Returns:
        Module mapping ``(B, 3, image_size, image_size)`` images to ``(B, num_classes)`` logits.

    """
    return VisionTransformer(image_size, patch_size, dim, depth, heads, mlp_ratio, num_classes)
