"""The PyTorch test models (MLP, CNN, encoder block); sizes in :mod:`sizes`."""

from __future__ import annotations

import torch
from torch import nn

from tests.features.frontends.models import sizes as Z


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(Z.D_IN, Z.HIDDEN), nn.ReLU(), nn.Linear(Z.HIDDEN, Z.N_OUT))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(Z.C_IN, Z.C1, Z.K, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(Z.C1, Z.C2, Z.K, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(Z.C2, Z.N_OUT),
    )


class EncoderBlock(nn.Module):
    """Pre-LN block with explicit attention matmuls (exportable by the TorchScript ONNX exporter)."""

    def __init__(self) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(Z.D), nn.LayerNorm(Z.D)
        self.q, self.k, self.v, self.o = (nn.Linear(Z.D, Z.D) for _ in range(4))
        self.up, self.down = nn.Linear(Z.D, Z.F), nn.Linear(Z.F, Z.D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)

        def heads(t: torch.Tensor) -> torch.Tensor:  # -1 keeps the batch dim symbolic in ONNX
            return t.reshape(-1, Z.S, Z.H, Z.D // Z.H).transpose(1, 2)

        q, k, v = heads(self.q(h)), heads(self.k(h)), heads(self.v(h))
        p = torch.softmax(q @ k.transpose(-1, -2) / (Z.D // Z.H) ** 0.5, dim=-1)
        x = x + self.o((p @ v).transpose(1, 2).reshape(-1, Z.S, Z.D))
        return x + self.down(torch.relu(self.up(self.ln2(x))))


def encoder() -> nn.Module:
    return EncoderBlock()


MODELS = {"mlp": (mlp, (Z.B, Z.D_IN)), "cnn": (cnn, (Z.B, Z.C_IN, Z.HW, Z.HW)), "encoder": (encoder, (Z.B, Z.S, Z.D))}
