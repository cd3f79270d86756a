"""Models outside the calibration zoo, for checking a calibrated CPU on steps it never measured.

Each factory builds its model at a size whose CPU train step takes tens of milliseconds; ``CONFIGS`` in
``experiments/heldout_local.py`` gives their inputs and batch sizes.
"""

from __future__ import annotations

import torch
from torch import nn


def autoencoder() -> nn.Module:
    """A dense autoencoder of 28x28 images: 784-512-128-512-784 with GELUs (0.93 M parameters)."""
    return nn.Sequential(nn.Linear(784, 512), nn.GELU(), nn.Linear(512, 128), nn.GELU(), nn.Linear(128, 512),
                         nn.GELU(), nn.Linear(512, 784))


def cifar_bn_cnn() -> nn.Module:
    """Three conv-BN-ReLU-pool stages of 32/64/128 channels on 32x32 images, then a 10-way head."""
    layers: list[nn.Module] = []
    channels = 3
    for width in (32, 64, 128):
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                   nn.MaxPool2d(2)]
        channels = width
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4 * 4, 10))


class TemporalConvNet(nn.Module):
    """A dilated causal 1-D conv stack (TCN) over 8 sensor channels, dilations 1-8, residual blocks.

    Args:
        channels: input channels.
        width: hidden channels.
    """

    def __init__(self, channels: int = 8, width: int = 64) -> None:
        super().__init__()
        self.inp = nn.Conv1d(channels, width, 1)
        self.blocks = nn.ModuleList(nn.Conv1d(width, width, 3, dilation=d, padding=2 * d) for d in (1, 2, 4, 8))
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forecast [B, 1] from a window [B, channels, T]."""
        h = self.inp(x)
        for conv in self.blocks:
            h = h + torch.relu(conv(h)[..., : h.shape[-1]])
        return self.head(h[..., -1])


def tcn() -> nn.Module:
    """:class:`TemporalConvNet` at its default size."""
    return TemporalConvNet()


class GRURegressor(nn.Module):
    """Two GRU layers of 96 units over 16 float features per time step, the last state to one value."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(16, 96, num_layers=2, batch_first=True)
        self.head = nn.Linear(96, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Value [B, 1] of a sequence [B, T, 16]."""
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def gru_regressor() -> nn.Module:
    """:class:`GRURegressor`."""
    return GRURegressor()


class TinyEncoder(nn.Module):
    """Token embedding + 2 pre-norm transformer encoder layers (d=128, 4 heads) + mean-pooled 4-way head."""

    def __init__(self, vocab: int = 5000, dim: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, 4, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, 4] of token ids [B, S]."""
        return self.head(self.encoder(self.embed(ids)).mean(1))


def tiny_encoder() -> nn.Module:
    """:class:`TinyEncoder` at its default size."""
    return TinyEncoder()


def separable_cnn() -> nn.Module:
    """Depthwise-separable conv blocks (3x3 depthwise + 1x1 pointwise, BN, ReLU6) on 64x64 images."""
    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    return nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU6(),
                         *block(24, 48, 2), *block(48, 96, 2), *block(96, 192, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(192, 10))


class BagOfWordsClassifier(nn.Module):
    """Mean of token embeddings over a 100 000-word vocabulary (width 128) + a 4-way linear head.

    Its 51 MB embedding table has a dense gradient, and AdamW's per-tensor temporaries are as large: outputs above
    glibc's 32 MiB mmap threshold, page-faulted anew every step on a CPU (``flopcast.predictor.first_touch``).
    """

    def __init__(self, vocab: int = 100_000, dim: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, 4] of token ids [B, S]."""
        return self.head(self.embed(ids).mean(1))


def bow_classifier() -> nn.Module:
    """:class:`BagOfWordsClassifier` at its default size."""
    return BagOfWordsClassifier()

