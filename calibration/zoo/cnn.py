"""Zoo family ``cnn``: small plain convolutional classifiers (LeNet-5 and a CIFAR-style ConvNet)."""

from __future__ import annotations

from torch import nn

from flopcast.calibration.zoo.blocks import conv_norm_act, mlp
from flopcast.calibration.zoo.registry import register_zoo_model


@register_zoo_model(
    name="lenet5",
    family="cnn",
    inputs=("float32[B,1,28,28]",),
    batch_sizes=(1, 8, 64),
    gpu_batch_sizes=(64, 1024, 8192),
)
def lenet5(num_classes: int = 10) -> nn.Module:
    """LeNet-5: two 5x5 tanh convolutions with average pooling, then a 120-84 MLP head.

    Args:
        num_classes: output logits.

    Returns:
        Module mapping ``(B, 1, 28, 28)`` images to ``(B, num_classes)`` logits.

    """
    return nn.Sequential(
        conv_norm_act(1, 6, 5, padding=2, norm=False, act=nn.Tanh),
        nn.AvgPool2d(2),
        conv_norm_act(6, 16, 5, padding=0, norm=False, act=nn.Tanh),
        nn.AvgPool2d(2),
        nn.Flatten(),
        mlp([16 * 5 * 5, 120, 84, num_classes], act=nn.Tanh),
    )


@register_zoo_model(
    name="simple-cnn",
    family="cnn",
    inputs=("float32[B,3,32,32]",),
    batch_sizes=(1, 8, 32),
    gpu_batch_sizes=(64, 512, 4096),
)
def simple_cnn(widths: tuple[int, ...] = (32, 64, 128), num_classes: int = 10) -> nn.Module:
    """CIFAR-style ConvNet: per stage two 3x3 conv-BN-ReLU then 2x2 max-pool; global pool and linear head.

    Args:
        widths: output channels of each stage (each stage halves the resolution).
        num_classes: output logits.

    Returns:
        Module mapping ``(B, 3, H, W)`` images to ``(B, num_classes)`` logits.

    """
    layers: list[nn.Module] = []
    channels = 3
    for width in widths:
        layers += [conv_norm_act(channels, width), conv_norm_act(width, width), nn.MaxPool2d(2)]
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)
