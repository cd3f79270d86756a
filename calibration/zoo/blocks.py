"""Building blocks shared by the zoo's model files (conv-norm-activation, MLP stacks, first-output taps)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import torch
from torch import nn

Activation = Callable[[], nn.Module]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    padding: int | None = None,
    groups: int = 1,
    dims: int = 2,
    norm: bool = True,
    act: Activation | None = nn.ReLU,
    bias: bool | None = None,
) -> nn.Sequential:
    """Convolution, then optional batch norm, then optional activation.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square (or 1-D) kernel size, elements.
        stride: convolution stride, elements.
        padding: zero padding, elements; ``None`` gives ``(kernel_size - 1) // 2`` ("same" at stride 1).
        groups: convolution groups (``groups == in_channels`` makes a depthwise conv).
        dims: 1 for ``Conv1d``/``BatchNorm1d``, 2 for ``Conv2d``/``BatchNorm2d``.
        norm: whether to add batch norm.
        act: activation factory (e.g. ``nn.ReLU``), or ``None`` for none.
        bias: convolution bias; ``None`` gives a bias only when there is no norm.

    Returns:
        ``nn.Sequential`` mapping ``(B, in_channels, *spatial)`` to ``(B, out_channels, *spatial / stride)``.

    """
    pad = (kernel_size - 1) // 2 if padding is None else padding
    layers: list[nn.Module] = [
        _CONV[dims](
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=pad,
            groups=groups,
            bias=(not norm) if bias is None else bias,
        )
    ]
    if norm:
        layers.append(_NORM[dims](out_channels))
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def mlp(
    widths: Sequence[int],
    *,
    act: Activation = nn.ReLU,
    dropout: float = 0.0,
    final_act: bool = False,
) -> nn.Sequential:
    """A stack of ``nn.Linear`` layers with activations between them.

    Args:
        widths: feature sizes ``[in, hidden..., out]``; at least two entries.
        act: activation factory placed after every linear layer but the last.
        dropout: dropout probability after each hidden activation (0 adds no dropout layer).
        final_act: also place an activation after the last linear layer.

    Returns:
        ``nn.Sequential`` mapping ``(..., widths[0])`` to ``(..., widths[-1])``.

    Raises:
        ValueError: when fewer than two widths are given.

    """
    if len(widths) < 2:
        raise ValueError(f"an MLP needs at least an input and an output width, got {list(widths)}")
    layers: list[nn.Module] = []
    last = len(widths) - 2
    for i, (fan_in, fan_out) in enumerate(pairwise(widths)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < last or final_act:
            layers.append(act())
            if dropout > 0 and i < last:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class FirstOutput(nn.Module):
    """Wraps a module returning a tuple (e.g. ``nn.LSTM``) and returns only its first element."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the wrapped module.

        Args:
            x: the wrapped module's input.

        Returns:
            The first element of the wrapped module's output.

        """
        return self.module(x)[0]
