"""Zoo family ``unet``: a U-Net encoder-decoder with ConvTranspose2d upsampling and skip concatenations."""

from __future__ import annotations

import torch
from torch import nn

from flopcast.calibration.zoo.blocks import conv_norm_act
from flopcast.calibration.zoo.registry import register_zoo_model


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers at unchanged resolution.

    Args:
        in_channels: input channels.
        out_channels: output channels of both convolutions.

    Returns:
        ``nn.Sequential`` mapping ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)``.

    """
    return nn.Sequential(conv_norm_act(in_channels, out_channels), conv_norm_act(out_channels, out_channels))


class UNet(nn.Module):
    """U-Net: double convs and max-pools down, transposed convs, skip concats and double convs up."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...]) -> None:
        """Build the network.

        Args:
            in_channels: image channels.
            num_classes: output channels (per-pixel class logits).
            widths: channels per level, shallowest first; the last one is the bottleneck.

        """
        super().__init__()
        self.down = nn.ModuleList()
        channels = in_channels
        for width in widths[:-1]:
            self.down.append(double_conv(channels, width))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(channels, widths[-1])
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for deep, shallow in zip(reversed(widths[1:]), reversed(widths[:-1]), strict=True):
            self.up.append(nn.ConvTranspose2d(deep, shallow, kernel_size=2, stride=2))
            self.merge.append(double_conv(2 * shallow, shallow))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment images.

        Args:
            x: ``(B, in_channels, H, W)`` images, H and W divisible by ``2 ** (len(widths) - 1)``.

        Returns:
            ``(B, num_classes, H, W)`` per-pixel logits.

        """
        skips: list[torch.Tensor] = []
        for down in self.down:
            x = down(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)


@register_zoo_model(
    name="unet",
    family="unet",
    inputs=("float32[B,3,64,64]",),
    batch_sizes=(1, 2, 8),
    gpu_batch_sizes=(8, 32, 128),
)
def unet(
    in_channels: int = 3, num_classes: int = 2, widths: tuple[int, ...] = (16, 32, 64, 128)
) -> nn.Module:
    """Four-level U-Net (16-128 channels); ``widths=(64, 128, 256, 512, 1024)`` is the original paper's.

    Args:
        in_channels: image channels.
        num_classes: per-pixel output classes.
        widths: channels per level, shallowest first.

    Returns:
        Module mapping ``(B, in_channels, H, W)`` to ``(B, num_classes, H, W)`` logits.

    """
    return UNet(in_channels, num_classes, widths)
