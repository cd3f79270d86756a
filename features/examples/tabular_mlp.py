"""Bundled example: a tabular click-through model (dense features + embedded categorical ids).

Analyse it with ``flopcast analyze features/examples/tabular_mlp.py:build --batch-size 512``.
"""

from __future__ import annotations

import torch
from torch import nn

INPUTS = ["float32[B,13]", "int64[B,26]<100000"]


class TabularMLP(nn.Module):
    """Dense features through an MLP, categorical ids through one shared embedding, then a head.

    Args:
        n_dense: number of dense float features.
        n_sparse: number of categorical features per sample.
        vocab: size of the shared embedding table.
        dim: embedding width.
    """

    def __init__(self, n_dense: int = 13, n_sparse: int = 26, vocab: int = 100_000, dim: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.dense = nn.Sequential(nn.Linear(n_dense, 256), nn.ReLU(), nn.Linear(256, dim))
        self.head = nn.Sequential(nn.Linear(dim * (n_sparse + 1), 512), nn.ReLU(), nn.Linear(512, 1))

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        """Click logit of shape [B, 1] from dense [B, 13] floats and sparse [B, 26] ids."""
        emb = self.embedding(sparse).flatten(1)
        return self.head(torch.cat([self.dense(dense), emb], dim=1))


def build() -> TabularMLP:
    """The model at its default size."""
    return TabularMLP()
