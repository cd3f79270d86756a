"""Zoo family ``transformer-encoder``: a reduced BERT masked LM and an nn.TransformerEncoder classifier."""

from __future__ import annotations

import torch
from torch import nn

from flopcast.calibration.zoo.hf import hf_model
from flopcast.calibration.zoo.registry import register_zoo_model


@register_zoo_model(
    name="bert-mini",
    family="transformer-encoder",
    inputs=("int64[B,64]<8192",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(8, 32, 64),
)
def bert_mini(
    num_hidden_layers: int = 4,
    hidden_size: int = 256,
    intermediate_size: int = 1024,
    num_attention_heads: int = 4,
    vocab_size: int = 8192,
    max_position_embeddings: int = 64,
) -> nn.Module:
    """BERT masked LM (post-norm encoder, GELU MLP, tied head) reduced to 4x256; BERT-base is 12x768, 30522.

    Args:
        num_hidden_layers: encoder blocks.
        hidden_size: hidden width.
        intermediate_size: MLP hidden width.
        num_attention_heads: attention heads.
        vocab_size: vocabulary size (token ids must be below it).
        max_position_embeddings: maximum sequence length.

    Returns:
        ``BertForMaskedLM`` mapping ``input_ids`` ``(B, T)`` to ``logits`` ``(B, T, vocab_size)``.

    """
    return hf_model(
        "BertForMaskedLM",
        "BertConfig",
        num_hidden_layers=num_hidden_layers,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_attention_heads=num_attention_heads,
        vocab_size=vocab_size,
        max_position_embeddings=max_position_embeddings,
    )


class TransformerClassifier(nn.Module):
    """Token + learned position embeddings, ``nn.TransformerEncoder`` (pre-norm), mean pool, linear head."""

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        d_model: int,
        nhead: int,
        dim_feedforward: int,
        num_layers: int,
        num_classes: int,
    ) -> None:
        """Build the network.

        Args:
            vocab_size: vocabulary size.
            max_len: maximum sequence length.
            d_model: token width.
            nhead: attention heads.
            dim_feedforward: MLP hidden width.
            num_layers: encoder layers.
            num_classes: output logits.

        """
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos_embed = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)

        def make_layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(
                d_model, nhead, dim_feedforward, dropout=0.1, batch_first=True, norm_first=True
            )

        self.encoder = nn.TransformerEncoder(make_layer(), num_layers, enable_nested_tensor=False)
        # Fresh layers instead of the deep copies nn.TransformerEncoder makes: independent initial
        # weights, and a model built under a FakeTensorMode keeps all its parameters in that mode.
        self.encoder.layers = nn.ModuleList(make_layer() for _ in range(num_layers))
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Classify token sequences.

        Args:
            input_ids: ``(B, T)`` int64 token ids, ``T <= max_len``.

        Returns:
            ``(B, num_classes)`` logits.

        """
        x = self.embed(input_ids) + self.pos_embed[:, : input_ids.shape[1]]
        return self.head(self.encoder(x).mean(dim=1))


@register_zoo_model(
    name="transformer-classifier",
    family="transformer-encoder",
    inputs=("int64[B,128]<10000",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(16, 64, 256),
)
def transformer_classifier(
    vocab_size: int = 10000,
    max_len: int = 128,
    d_model: int = 256,
    nhead: int = 4,
    dim_feedforward: int = 1024,
    num_layers: int = 4,
    num_classes: int = 4,
) -> nn.Module:
    """Hand-written ``nn.TransformerEncoder`` text classifier, 4 pre-norm layers of width 256.

    Args:
        vocab_size: vocabulary size (token ids must be below it).
        max_len: maximum sequence length.
        d_model: token width.
        nhead: attention heads.
        dim_feedforward: MLP hidden width.
        num_layers: encoder layers.
        num_classes: output logits.

    Returns:
        Module mapping ``input_ids`` ``(B, T)`` to ``(B, num_classes)`` logits.

    """
    return TransformerClassifier(
        vocab_size, max_len, d_model, nhead, dim_feedforward, num_layers, num_classes
    )
