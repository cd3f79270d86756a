"""ResNet-50 at ImageNet size for the analyser benchmark, from the zoo's torchvision-equivalent definition."""

from __future__ import annotations

from torch import nn

from flopcast.calibration.zoo import get

INPUTS = ["float32[B,3,224,224]"]


def resnet50() -> nn.Module:
    """ResNet-50 with 1000 classes (25,557,032 parameters)."""
    return get("resnet50").build()
