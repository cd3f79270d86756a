"""Convolutions: conv2d and conv1d forward, and their input and weight gradients."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from typing_extensions import override

from flopcast.calibration.microbench import register_family
from flopcast.calibration.microbench.base import Closure, Config, Family, itemsize, log_int, rand, row_dtype, row_shapes
from flopcast.features.records import Phase

_CONV = {1: F.conv1d, 2: F.conv2d}
_MASKS = {"grad_input": [True, False, False], "grad_weight": [False, True, False]}
_FORWARD_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "transposed", "output_padding", "groups")
_BACKWARD_ARGS = ("grad_output", "input", "weight", "bias_sizes", "stride", "padding", "dilation", "transposed",
                  "output_padding", "groups", "output_mask")


def conv_attrs(row: Mapping[str, Any], backward: bool) -> dict[str, Any]:
    """Named attributes of a convolution op row.

    The tracer stores the aten call's positional arguments (``{"args": [...]}``, tensors as ``"T"``); rows
    with named attributes are returned as they are.
    """
    attrs = json.loads(row.get("attrs") or "{}")
    if "args" not in attrs:
        return attrs
    return dict(zip(_BACKWARD_ARGS if backward else _FORWARD_ARGS, attrs["args"], strict=False))


PATCH_SHARE = 0.1
"""Share of sampled 2-d convolutions that are patchify stems (kernel = stride)."""


class Convolution(Family):
    """Square (2-d) or 1-d convolutions, dense or depthwise, padding ``k // 2``, no bias.

    Attributes:
        ndim: spatial dims (1 or 2).
        pass_: ``fwd``, ``grad_input`` or ``grad_weight``.
        max_size: largest spatial side sampled.
    """

    ndim: ClassVar[int] = 2
    pass_: ClassVar[str] = "fwd"
    max_size: ClassVar[int] = 256
    kernels: ClassVar[tuple[int, ...]] = (1, 3, 3, 3, 5, 7)
    strides: ClassVar[tuple[int, ...]] = (1, 1, 2)
    patches: ClassVar[tuple[int, ...]] = (4, 8, 14, 16, 32)
    """Patchify convolutions (kernel = stride, no padding): the stems of vision transformers, ConvNeXt and Swin,
    drawn for :data:`PATCH_SHARE` of the configs."""
    shrink_keys = ("n", "c_in", "c_out", "size")
    gpu_dtypes = ("fp32", "tf32", "bf16", "fp16")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A pass names its op: the forward ``aten.convolution``, a gradient ``aten.convolution_backward``."""
        super().__init_subclass__(**kwargs)
        cls.ops = cls.main_ops = ("aten.convolution",) if cls.pass_ == "fwd" else ("aten.convolution_backward",)

    @override
    def sample(self, rng: random.Random) -> Config:
        k = rng.choice(self.kernels)
        depthwise = rng.random() < 0.15
        c_in = log_int(rng, 1, 1024)
        config = {
            "n": log_int(rng, 1, 128),
            "c_in": c_in,
            "c_out": c_in if depthwise else log_int(rng, 1, 1024),
            "size": log_int(rng, max(4, k), self.max_size),
            "k": k,
            "stride": rng.choice(self.strides),
            "padding": k // 2,
            "depthwise": depthwise,
        }
        if self.patches and rng.random() < PATCH_SHARE:  # a patchify stem: kernel = stride, no padding
            patch = rng.choice(self.patches)
            config.update(k=patch, stride=patch, padding=0, size=max(config["size"], patch))
        return config

    @override
    def phase(self, config: Config) -> Phase:
        return Phase.FORWARD if self.pass_ == "fwd" else Phase.BACKWARD

    def _shapes(self, c: Config) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int]:
        groups = c["c_in"] if c["depthwise"] else 1
        c_out = c["c_in"] if c["depthwise"] else c["c_out"]
        out = (c["size"] + 2 * c["padding"] - c["k"]) // c["stride"] + 1
        nd = self.ndim
        x = (c["n"], c["c_in"], *(c["size"],) * nd)
        w = (c_out, c["c_in"] // groups, *(c["k"],) * nd)
        y = (c["n"], c_out, *(max(out, 1),) * nd)
        return x, w, y, groups

    @override
    def working_set_bytes(self, config: Config) -> int:
        return itemsize(config["dtype"]) * sum(math.prod(s) for s in self._shapes(config)[:3])

    @override
    def build(self, config: Config, device: str) -> Closure:
        x_shape, w_shape, y_shape, groups = self._shapes(config)
        nd, dtype = self.ndim, config["dtype"]
        x, w = rand(x_shape, dtype, device), rand(w_shape, dtype, device)
        stride, padding = [config["stride"]] * nd, [config["padding"]] * nd
        if self.pass_ == "fwd":
            return lambda: _CONV[nd](x, w, None, stride, padding, 1, groups)
        gy, mask = rand(y_shape, dtype, device), _MASKS[self.pass_]
        return lambda: torch.ops.aten.convolution_backward(
            gy, x, w, None, stride, padding, [1] * nd, False, [0] * nd, groups, mask
        )

    @override
    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        dtype, shapes = row_dtype(row), row_shapes(row)
        backward = str(row["op"]).startswith("aten.convolution_backward")
        attrs = conv_attrs(row, backward)
        x, w = (shapes[1], shapes[2]) if backward else (shapes[0], shapes[1])
        mask = attrs.get("output_mask", [True, True, False])
        wanted = mask[0] if self.pass_ == "grad_input" else mask[1] if self.pass_ == "grad_weight" else True
        if dtype is None or attrs.get("transposed") or len(x) != self.ndim + 2 or backward != (self.pass_ != "fwd"):
            return None
        if not wanted:
            return None
        groups = int(attrs.get("groups") or 1)
        first = lambda v, default: int(v[0] if isinstance(v, list) else v) if v is not None else default  # noqa: E731
        if groups not in (1, x[1]) or first(attrs.get("dilation"), 1) != 1:
            return None  # grouped (not depthwise) or dilated: not a shape these families build
        return {
            "n": x[0],
            "c_in": x[1],
            "c_out": w[0],
            "size": round(math.prod(x[2:]) ** (1 / self.ndim)),
            "k": w[2],
            "stride": first(attrs.get("stride"), 1),
            "padding": first(attrs.get("padding"), w[2] // 2),
            "depthwise": groups > 1 and groups == x[1],
            "dtype": dtype,
        }


@register_family
class Conv2dForward(Convolution):
    """conv2d forward."""

    name = "conv2d_fwd"


@register_family
class Conv2dGradInput(Convolution):
    """Gradient of conv2d with respect to its input."""

    name = "conv2d_grad_input"
    pass_ = "grad_input"


@register_family
class Conv2dGradWeight(Convolution):
    """Gradient of conv2d with respect to its weight."""

    name = "conv2d_grad_weight"
    pass_ = "grad_weight"


class _Conv1d(Convolution):
    """1-d convolutions over sequences up to 8192 long.

    Kernels and strides span the wide strided kernels of audio front ends (M5's first layer: kernel 80,
    stride 4) as well as the narrow ones of temporal CNNs. Kernel 80 and stride 4 were added for M5 (commit
    f566233): a config drawn with either derives from ``m5-audio``'s shapes (:attr:`Family.widened_for`).
    """

    ndim = 1
    max_size = 8192
    kernels = (1, 3, 3, 5, 7, 15, 31, 80)
    strides = (1, 1, 2, 4)
    widened_for: ClassVar[Mapping[str, Mapping[Any, tuple[str, ...]]]] = {
        "k": {80: ("m5-audio",)}, "stride": {4: ("m5-audio",)}}
    patches = ()


@register_family
class Conv1dForward(_Conv1d):
    """conv1d forward."""

    name = "conv1d"


@register_family
class Conv1dGradInput(_Conv1d):
    """Gradient of conv1d with respect to its input."""

    name = "conv1d_grad_input"
    pass_ = "grad_input"


@register_family
class Conv1dGradWeight(_Conv1d):
    """Gradient of conv1d with respect to its weight."""

    name = "conv1d_grad_weight"
    pass_ = "grad_weight"
