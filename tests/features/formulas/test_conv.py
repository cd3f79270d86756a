from __future__ import annotations

import pytest
import torch
from _helpers import cost, flop_counter_total, matmul_macs_total, tm, trace

aten = torch.ops.aten


@pytest.mark.parametrize(
    ("kwargs", "hw_out", "macs"),
    [
        # Conv2d(8, 16, 3) on (2, 8, 16, 16): out 14x14
        ({}, 14, 2 * 16 * 14 * 14 * 8 * 3 * 3),
        # stride 2, padding 1: (16 + 2 - 3) // 2 + 1 = 8
        ({"stride": 2, "padding": 1}, 8, 2 * 16 * 8 * 8 * 8 * 3 * 3),
        # groups 4: each output sees 8 / 4 input channels
        ({"padding": 1, "groups": 4}, 16, 2 * 16 * 16 * 16 * (8 // 4) * 3 * 3),
        # dilation 2: effective kernel 5 -> 16 - 5 + 1 = 12
        ({"dilation": 2}, 12, 2 * 16 * 12 * 12 * 8 * 3 * 3),
    ],
)
def test_conv2d(kwargs, hw_out, macs):
    ops = trace(lambda: torch.nn.Conv2d(8, 16, 3, **kwargs), lambda: (torch.empty(2, 8, 16, 16),))
    (fwd,) = [r for r in ops if r.op is aten.convolution.default]
    assert fwd.call.outputs[0].shape == (2, 16, hw_out, hw_out)
    out_elems = 2 * 16 * hw_out * hw_out
    assert (fwd.cost.macs, fwd.cost.flops) == (macs, 2 * macs + out_elems)  # + bias add per output
    # the input needs no grad: grad_weight + grad_bias only
    (bwd,) = [r for r in ops if r.op is aten.convolution_backward.default]
    assert (bwd.cost.macs, bwd.cost.flops) == (macs, 2 * macs + out_elems)


def test_conv_transpose2d():
    # ConvTranspose2d(8, 4, 3, stride=2) on (2, 8, 5, 5): out (5 - 1) * 2 + 3 = 11
    ops = trace(lambda: torch.nn.ConvTranspose2d(8, 4, 3, stride=2), lambda: (torch.empty(2, 8, 5, 5),))
    (fwd,) = [r for r in ops if r.op is aten.convolution.default]
    assert fwd.call.outputs[0].shape == (2, 4, 11, 11)
    macs = 2 * 8 * 5 * 5 * 4 * 3 * 3  # every input element scattered through Cout * 3 * 3 taps
    assert (fwd.cost.macs, fwd.cost.flops) == (macs, 2 * macs + 2 * 4 * 11 * 11)


@pytest.mark.parametrize(
    ("mask", "macs", "extra"),
    [
        ([True, True, True], 2 * (2 * 16 * 14 * 14 * 8 * 9), 2 * 16 * 14 * 14),
        ([False, True, False], 2 * 16 * 14 * 14 * 8 * 9, 0),
        ([True, False, False], 2 * 16 * 14 * 14 * 8 * 9, 0),
    ],
)
def test_convolution_backward_mask(mask, macs, extra):
    args = (tm(2, 16, 14, 14), tm(2, 8, 16, 16), tm(16, 8, 3, 3), [16], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask)
    c = cost(aten.convolution_backward, *args, outputs=(tm(2, 8, 16, 16), tm(16, 8, 3, 3), tm(16)))
    assert (c.macs, c.flops) == (macs, 2 * macs + extra)
    assert c.bytes_read is None


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, dilation=2)
        self.t = torch.nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.fc = torch.nn.Linear(4, 10)

    def forward(self, x):
        x = self.t(torch.relu(self.c2(torch.relu(self.c1(x)))))
        return self.fc(x.mean((2, 3)))


def test_cnn_matches_flop_counter():
    # no grouped conv: FlopCounterMode charges grad_weight of a grouped conv `groups` times more
    def inputs():
        return (torch.empty(2, 3, 32, 32, requires_grad=True),)

    ops = trace(SmallCNN, inputs)
    assert matmul_macs_total(ops) == flop_counter_total(SmallCNN, inputs)
