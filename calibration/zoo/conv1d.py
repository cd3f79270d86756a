"""Zoo family ``conv1d``: an M5-style 1-D CNN over raw audio waveforms."""

from __future__ import annotations

from itertools import pairwise

from torch import nn

from flopcast.calibration.zoo.blocks import conv_norm_act
from flopcast.calibration.zoo.registry import register_zoo_model


@register_zoo_model(
    name="m5-audio",
    family="conv1d",
    inputs=("float32[B,1,8000]",),
    batch_sizes=(1, 8, 32),
    gpu_batch_sizes=(64, 256, 1024),
)
def m5_audio(in_channels: int = 1, width: int = 32, num_classes: int = 35) -> nn.Module:
    """M5 keyword spotter: 80-tap stride-4 Conv1d, three 3-tap Conv1d-BN-ReLU stages, max-pools, global pool.

    Args:
        in_channels: audio channels.
        width: channels of the first stage (later stages use 1x, 2x, 2x).
        num_classes: output logits (35 Speech Commands keywords).

    Returns:
        Module mapping ``(B, in_channels, samples)`` waveforms (1 s at 8 kHz by default) to
        ``(B, num_classes)`` logits.

    """
    widths = (width, width, 2 * width, 2 * width)
    layers: list[nn.Module] = [conv_norm_act(in_channels, widths[0], 80, stride=4, dims=1), nn.MaxPool1d(4)]
    for fan_in, fan_out in pairwise(widths):
        layers += [conv_norm_act(fan_in, fan_out, 3, dims=1), nn.MaxPool1d(4)]
    layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes)]
    return nn.Sequential(*layers)
