"""Zoo family ``mlp``: fully connected classifiers on flattened 28x28 images."""

from __future__ import annotations

from torch import nn

from flopcast.calibration.zoo.blocks import mlp
from flopcast.calibration.zoo.registry import register_zoo_model


@register_zoo_model(
    name="mlp-small",
    family="mlp",
    inputs=("float32[B,784]",),
    batch_sizes=(1, 8, 64),
    gpu_batch_sizes=(64, 1024, 8192),
)
def mlp_small(in_features: int = 784, hidden: int = 512, num_classes: int = 10) -> nn.Module:
    """Two-hidden-layer MLP 784-512-512-10 (MNIST-style).

    Args:
        in_features: input features (flattened pixels).
        hidden: width of both hidden layers.
        num_classes: output logits.

    Returns:
        Module mapping ``(B, in_features)`` to ``(B, num_classes)`` logits.

    """
    return mlp([in_features, hidden, hidden, num_classes])


@register_zoo_model(
    name="mlp-wide",
    family="mlp",
    inputs=("float32[B,784]",),
    batch_sizes=(1, 8, 32),
    gpu_batch_sizes=(64, 1024, 8192),
)
def mlp_wide(in_features: int = 784, hidden: int = 4096, num_classes: int = 10) -> nn.Module:
    """Wide two-hidden-layer MLP 784-4096-4096-10 with dropout.

    Args:
        in_features: input features (flattened pixels).
        hidden: width of both hidden layers.
        num_classes: output logits.

    Returns:
        Module mapping ``(B, in_features)`` to ``(B, num_classes)`` logits.

    """
    return mlp([in_features, hidden, hidden, num_classes], dropout=0.1)


@register_zoo_model(
    name="mlp-deep",
    family="mlp",
    inputs=("float32[B,784]",),
    batch_sizes=(1, 8, 64),
    gpu_batch_sizes=(64, 1024, 8192),
)
def mlp_deep(in_features: int = 784, hidden: int = 1024, depth: int = 8, num_classes: int = 10) -> nn.Module:
    """Deep MLP of ``depth`` linear layers (1024 wide) with GELU activations.

    Args:
        in_features: input features (flattened pixels).
        hidden: width of every hidden layer.
        depth: number of linear layers (at least 2).
        num_classes: output logits.

    Returns:
        Module mapping ``(B, in_features)`` to ``(B, num_classes)`` logits.

    """
    return mlp([in_features, *([hidden] * (depth - 1)), num_classes], act=nn.GELU)
