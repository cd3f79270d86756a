"""Zoo family ``vgg``: VGG-11 with and without batch norm (torchvision layout, smaller head by default)."""

from __future__ import annotations

from torch import nn

from flopcast.calibration.zoo.blocks import conv_norm_act, mlp
from flopcast.calibration.zoo.registry import register_zoo_model

# Output channels of the 3x3 convolutions, "M" marks a 2x2 max-pool.
VGG11_LAYOUT: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def vgg(
    layout: tuple[int | str, ...] = VGG11_LAYOUT,
    *,
    batch_norm: bool = False,
    num_classes: int = 1000,
    pool_size: int = 7,
    classifier_width: int = 4096,
    dropout: float = 0.5,
) -> nn.Module:
    """A VGG network: 3x3 conv(-BN)-ReLU stacks with max-pools, adaptive average pool, 3-layer MLP head.

    Args:
        layout: conv widths with ``"M"`` for max-pools.
        batch_norm: add batch norm after each convolution (convs keep their bias, as in torchvision).
        num_classes: output logits.
        pool_size: side of the adaptive average pool output, pixels (7 in torchvision).
        classifier_width: width of the two hidden classifier layers (4096 in torchvision).
        dropout: dropout probability in the classifier.

    Returns:
        Module mapping ``(B, 3, H, W)`` images to ``(B, num_classes)`` logits.

    """
    layers: list[nn.Module] = []
    channels = 3
    for item in layout:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(conv_norm_act(channels, int(item), norm=batch_norm, bias=True))
            channels = int(item)
    head = mlp([channels * pool_size**2, classifier_width, classifier_width, num_classes], dropout=dropout)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool_size), nn.Flatten(), head)


@register_zoo_model(
    name="vgg11",
    family="vgg",
    inputs=("float32[B,3,32,32]",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(32, 128, 256),
)
def vgg11(num_classes: int = 10, pool_size: int = 1, classifier_width: int = 512) -> nn.Module:
    """VGG-11 features with a CIFAR-size 512-wide head; ``vgg11(1000, 7, 4096)`` is torchvision's (132.9 M).

    Args:
        num_classes: output logits.
        pool_size: side of the adaptive average pool output, pixels.
        classifier_width: width of the hidden classifier layers.

    Returns:
        Module mapping ``(B, 3, H, W)`` images to ``(B, num_classes)`` logits.

    """
    return vgg(num_classes=num_classes, pool_size=pool_size, classifier_width=classifier_width)


@register_zoo_model(
    name="vgg11-bn",
    family="vgg",
    inputs=("float32[B,3,32,32]",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(32, 128, 256),
)
def vgg11_bn(num_classes: int = 10, pool_size: int = 1, classifier_width: int = 512) -> nn.Module:
    """VGG-11 with batch norm and a CIFAR-size head; ``vgg11_bn(1000, 7, 4096)`` is torchvision's.

    Args:
        num_classes: output logits.
        pool_size: side of the adaptive average pool output, pixels.
        classifier_width: width of the hidden classifier layers.

    Returns:
        Module mapping ``(B, 3, H, W)`` images to ``(B, num_classes)`` logits.

    """
    return vgg(
        batch_norm=True, num_classes=num_classes, pool_size=pool_size, classifier_width=classifier_width
    )
