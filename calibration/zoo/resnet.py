"""Zoo family ``resnet``: torchvision-equivalent ResNet-18 (BasicBlock) and ResNet-50 (Bottleneck, v1.5)."""

from __future__ import annotations

import torch
from torch import nn

from flopcast.calibration.zoo.blocks import conv_norm_act
from flopcast.calibration.zoo.registry import register_zoo_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus an identity (or 1x1 projection) shortcut; expansion 1."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_norm_act(in_channels, width, 3, stride=stride),
            conv_norm_act(width, width, 3, act=None),
        )
        self.shortcut = _shortcut(in_channels, width * self.expansion, stride)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(B, in_channels, H, W)`` feature map.

        Returns:
            ``(B, width, H / stride, W / stride)`` feature map.

        """
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as in torchvision's v1.5), 1x1 expand by 4, plus shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_norm_act(in_channels, width, 1),
            conv_norm_act(width, width, 3, stride=stride),
            conv_norm_act(width, width * self.expansion, 1, act=None),
        )
        self.shortcut = _shortcut(in_channels, width * self.expansion, stride)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(B, in_channels, H, W)`` feature map.

        Returns:
            ``(B, 4 * width, H / stride, W / stride)`` feature map.

        """
        return self.relu(self.body(x) + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a strided 1x1 conv + BN projection."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return conv_norm_act(in_channels, out_channels, 1, stride=stride, act=None)


class ResNet(nn.Module):
    """ResNet: 7x7/2 stem and 3x3/2 max-pool, four stages of residual blocks, global pool, linear head."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        base_width: int = 64,
    ) -> None:
        """Build the network.

        Args:
            block: residual block class.
            layers: blocks per stage.
            num_classes: output logits.
            base_width: block width of the first stage (doubled at each later stage).

        """
        super().__init__()
        self.stem = nn.Sequential(
            conv_norm_act(3, base_width, 7, stride=2),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        channels = base_width
        for i, count in enumerate(layers):
            width = base_width * 2**i
            blocks: list[nn.Module] = []
            for j in range(count):
                blocks.append(block(channels, width, stride=2 if (i > 0 and j == 0) else 1))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify images.

        Args:
            x: ``(B, 3, H, W)`` images (H, W at least 32).

        Returns:
            ``(B, num_classes)`` logits.

        """
        return self.head(self.stages(self.stem(x)))


@register_zoo_model(
    name="resnet18",
    family="resnet",
    inputs=("float32[B,3,64,64]",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(32, 128, 512),
)
def resnet18(num_classes: int = 1000) -> nn.Module:
    """ResNet-18 (11,689,512 parameters at 1000 classes); calibration input 64x64, full size 224x224.

    Args:
        num_classes: output logits.

    Returns:
        Module mapping ``(B, 3, H, W)`` images to ``(B, num_classes)`` logits.

    """
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes)


@register_zoo_model(
    name="resnet50",
    family="resnet",
    inputs=("float32[B,3,64,64]",),
    batch_sizes=(1, 2, 8),
    gpu_batch_sizes=(32, 128, 256),
)
def resnet50(num_classes: int = 1000) -> nn.Module:
    """ResNet-50 v1.5 (25,557,032 parameters at 1000 classes); calibration input 64x64, full size 224x224.

    Args:
        num_classes: output logits.

    Returns:
        Module mapping ``(B, 3, H, W)`` images to ``(B, num_classes)`` logits.

    """
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes)
