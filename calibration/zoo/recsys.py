"""Zoo family ``recsys``: a DLRM-style click model (EmbeddingBag tables, bottom/top MLPs, dot interaction)."""

from __future__ import annotations

import torch
from torch import nn

from flopcast.calibration.zoo.blocks import mlp
from flopcast.calibration.zoo.registry import register_zoo_model


class DLRM(nn.Module):
    """DLRM: bottom MLP on dense features, sum-pooled bags per sparse feature, pairwise dots, top MLP.

    Each sparse feature has its own ``nn.EmbeddingBag``; the dot products of every pair of the resulting
    vectors (bottom-MLP output included) are concatenated to the bottom-MLP output for the top MLP.
    """

    def __init__(
        self,
        dense_features: int,
        num_tables: int,
        rows_per_table: int,
        embedding_dim: int,
        bottom: tuple[int, ...],
        top: tuple[int, ...],
    ) -> None:
        """Build the network.

        Args:
            dense_features: dense (float) input features.
            num_tables: sparse features, one embedding table each.
            rows_per_table: rows of every table (sparse ids must be below it).
            embedding_dim: embedding width; the bottom MLP ends at this width too.
            bottom: hidden widths of the bottom MLP.
            top: hidden widths of the top MLP.

        """
        super().__init__()
        self.bottom = mlp([dense_features, *bottom, embedding_dim], final_act=True)
        self.tables = nn.ModuleList(
            nn.EmbeddingBag(rows_per_table, embedding_dim, mode="sum") for _ in range(num_tables)
        )
        vectors = num_tables + 1
        rows, cols = torch.tril_indices(vectors, vectors, offset=-1)
        self.register_buffer("pair_rows", rows, persistent=False)
        self.register_buffer("pair_cols", cols, persistent=False)
        self.top = mlp([embedding_dim + rows.numel(), *top, 1])

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        """Score examples.

        Args:
            dense: ``(B, dense_features)`` float features.
            sparse: ``(B, num_tables, bag)`` int64 ids, a fixed-length bag per table.

        Returns:
            ``(B, 1)`` click logits.

        """
        x = self.bottom(dense)
        pooled = [table(sparse[:, i]) for i, table in enumerate(self.tables)]
        vectors = torch.stack([x, *pooled], dim=1)
        dots = torch.bmm(vectors, vectors.transpose(1, 2))[:, self.pair_rows, self.pair_cols]
        return self.top(torch.cat([x, dots], dim=1))


@register_zoo_model(
    name="dlrm",
    family="recsys",
    inputs=("float32[B,13]", "int64[B,8,4]<10000"),
    batch_sizes=(1, 8, 64),
    gpu_batch_sizes=(256, 2048, 16384),
)
def dlrm(
    dense_features: int = 13,
    num_tables: int = 8,
    rows_per_table: int = 10000,
    embedding_dim: int = 32,
    bottom: tuple[int, ...] = (128, 64),
    top: tuple[int, ...] = (256, 128),
) -> nn.Module:
    """DLRM with 8 sum-pooled tables of 10,000 x 32, Criteo-like 13 dense features and bags of 4 ids.

    Args:
        dense_features: dense (float) input features.
        num_tables: sparse features, one embedding table each.
        rows_per_table: rows of every table (sparse ids must be below it).
        embedding_dim: embedding width.
        bottom: hidden widths of the bottom MLP.
        top: hidden widths of the top MLP.

    Returns:
        Module mapping ``(dense (B, dense_features), sparse (B, num_tables, bag))`` to ``(B, 1)`` logits.

    """
    return DLRM(dense_features, num_tables, rows_per_table, embedding_dim, bottom, top)
