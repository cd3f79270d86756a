"""Zoo family ``mobilenet``: torchvision-equivalent MobileNetV2 (inverted residuals, depthwise convs)."""

from __future__ import annotations

import torch
from torch import nn

from flopcast.calibration.zoo.blocks import conv_norm_act
from flopcast.calibration.zoo.registry import register_zoo_model

# (expansion t, output channels c, repeats n, first stride s) per stage, from the MobileNetV2 paper.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor`` without losing more than 10 %.

    Args:
        value: the scaled channel count.
        divisor: the multiple to round to.

    Returns:
        The rounded channel count.

    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear projection; residual when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_norm_act(in_channels, hidden, 1, act=nn.ReLU6))
        layers += [
            conv_norm_act(hidden, hidden, 3, stride=stride, groups=hidden, act=nn.ReLU6),
            conv_norm_act(hidden, out_channels, 1, act=None),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(B, in_channels, H, W)`` feature map.

        Returns:
            ``(B, out_channels, H / stride, W / stride)`` feature map.

        """
        out = self.body(x)
        return x + out if self.residual else out


@register_zoo_model(
    name="mobilenetv2",
    family="mobilenet",
    inputs=("float32[B,3,64,64]",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(32, 128, 512),
)
def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> nn.Module:
    """MobileNetV2 (3,504,872 parameters at width 1.0, 1000 classes); calibration input 64x64.

    Args:
        num_classes: output logits.
        width_mult: channel multiplier applied to every layer (rounded to multiples of 8).
        dropout: dropout probability before the classifier.

    Returns:
        Module mapping ``(B, 3, H, W)`` images to ``(B, num_classes)`` logits.

    """
    channels = make_divisible(32 * width_mult)
    last_channels = make_divisible(1280 * max(1.0, width_mult))
    layers: list[nn.Module] = [conv_norm_act(3, channels, 3, stride=2, act=nn.ReLU6)]
    for expansion, c, repeats, first_stride in INVERTED_RESIDUAL_SETTING:
        out_channels = make_divisible(c * width_mult)
        for i in range(repeats):
            layers.append(InvertedResidual(channels, out_channels, first_stride if i == 0 else 1, expansion))
            channels = out_channels
    layers.append(conv_norm_act(channels, last_channels, 1, act=nn.ReLU6))
    return nn.Sequential(
        *layers,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(last_channels, num_classes),
    )
