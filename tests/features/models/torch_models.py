"""Small PyTorch models used as analysis targets by the tests, including ones that must fail cleanly."""

from __future__ import annotations

import torch
from torch import nn

INPUTS = ["float32[B,16]"]


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


def cnn() -> nn.Module:
    return TinyCNN()


class LSTMLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 32)
        self.rnn = nn.LSTM(32, 48, num_layers=2, batch_first=True)
        self.out = nn.Linear(48, 100)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.emb(ids))[0])


def lstm_lm() -> nn.Module:
    return LSTMLM()


class Raises(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(16, 8), Boom())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("kaboom from the user's code")


def raises() -> nn.Module:
    return Raises()


class Wrap(nn.Module):
    """Runs ``inner`` in a named submodule so error messages can name it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16)
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.lin(x))


class ItemCall(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.sum().item()


class NonZero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[x > 0].sum() + x.mean()


class Branch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum() > 0 else x


def uses_item() -> nn.Module:
    return Wrap(ItemCall())


def uses_nonzero() -> nn.Module:
    return Wrap(NonZero())


def branches() -> nn.Module:
    return Wrap(Branch())


def not_a_module() -> int:
    return 42


def build_raises() -> nn.Module:
    raise ValueError("bad hyper-parameter in the builder")


NOT_CALLABLE = 3

# A custom operator without a cost formula: it must be reported as unsupported, never as a silent zero.
_LIB = "flopcast_test::mystery"
if not hasattr(torch.ops.flopcast_test, "mystery"):
    torch.library.define(_LIB, "(Tensor x) -> Tensor")

    @torch.library.impl(_LIB, "CompositeExplicitAutograd")
    def _mystery(x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @torch.library.register_fake(_LIB)
    def _mystery_fake(x: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(x)


class Mystery(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.flopcast_test.mystery(self.lin(x))


def mystery() -> nn.Module:
    return Mystery()
