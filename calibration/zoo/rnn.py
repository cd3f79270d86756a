"""Zoo family ``rnn``: an LSTM language model and a bidirectional GRU sequence classifier."""

from __future__ import annotations

import torch
from torch import nn

from flopcast.calibration.zoo.blocks import FirstOutput
from flopcast.calibration.zoo.registry import register_zoo_model


@register_zoo_model(
    name="lstm-lm",
    family="rnn",
    inputs=("int64[B,64]<10000",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(16, 64, 256),
)
def lstm_lm(vocab_size: int = 10000, dim: int = 256, num_layers: int = 2, dropout: float = 0.1) -> nn.Module:
    """LSTM language model: embedding, 2-layer ``nn.LSTM`` (width 256), linear head over the vocabulary.

    Args:
        vocab_size: vocabulary size (token ids must be below it).
        dim: embedding and hidden width.
        num_layers: stacked LSTM layers.
        dropout: dropout between LSTM layers.

    Returns:
        Module mapping ``input_ids`` ``(B, T)`` to ``(B, T, vocab_size)`` logits.

    """
    return nn.Sequential(
        nn.Embedding(vocab_size, dim),
        FirstOutput(nn.LSTM(dim, dim, num_layers, batch_first=True, dropout=dropout)),
        nn.Linear(dim, vocab_size),
    )


class GRUClassifier(nn.Module):
    """Embedding, bidirectional ``nn.GRU``, mean over time, linear head."""

    def __init__(self, vocab_size: int, dim: int, hidden: int, num_layers: int, num_classes: int) -> None:
        """Build the network.

        Args:
            vocab_size: vocabulary size.
            dim: embedding width.
            hidden: GRU hidden width per direction.
            num_layers: stacked GRU layers.
            num_classes: output logits.

        """
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.gru = nn.GRU(dim, hidden, num_layers, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Classify token sequences.

        Args:
            input_ids: ``(B, T)`` int64 token ids.

        Returns:
            ``(B, num_classes)`` logits.

        """
        states, _ = self.gru(self.embed(input_ids))
        return self.head(states.mean(dim=1))


@register_zoo_model(
    name="gru-classifier",
    family="rnn",
    inputs=("int64[B,128]<10000",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(16, 64, 256),
)
def gru_classifier(
    vocab_size: int = 10000, dim: int = 128, hidden: int = 128, num_layers: int = 1, num_classes: int = 4
) -> nn.Module:
    """Bidirectional GRU sequence classifier (width 128 per direction) with mean pooling over time.

    Args:
        vocab_size: vocabulary size (token ids must be below it).
        dim: embedding width.
        hidden: GRU hidden width per direction.
        num_layers: stacked GRU layers.
        num_classes: output logits.

    Returns:
        Module mapping ``input_ids`` ``(B, T)`` to ``(B, num_classes)`` logits.

    """
    return GRUClassifier(vocab_size, dim, hidden, num_layers, num_classes)
