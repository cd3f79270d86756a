"""A CUDA target runs out-of-place dropout as CUDA does: one fused ``native_dropout`` kernel, not three.

Real CUDA (``aten/src/ATen/native/Dropout.cpp``) takes the fused kernel for a training dropout with
``0 < p < 1`` on a non-empty input; its backward is one ``native_dropout_backward``. A CPU target keeps the
unfused path a CPU runs (``bernoulli_``, ``div_``, ``mul``), and an evaluation-mode dropout does no work.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flopcast.features.api import analyze
from flopcast.features.cuda_dropout import fused_on_cuda

UNFUSED = {"aten.bernoulli_", "aten.div_"}


class Net(nn.Module):
    """Linear, dropout (module or functional), linear."""

    def __init__(self, functional: bool = False, p: float = 0.1, inplace: bool = False) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(16, 32), nn.Linear(32, 4)
        self.functional, self.p, self.inplace = functional, p, inplace
        self.drop = nn.Dropout(p, inplace=inplace)

    def forward(self, x):
        h = self.a(x)
        h = nn.functional.dropout(h, self.p, self.training, self.inplace) if self.functional else self.drop(h)
        return self.b(h)


def ops_of(device: str, mode: str = "train", **kwargs) -> list[str]:
    a = analyze(lambda: Net(**kwargs), ["float32[B,16]"], batch_size=8, mode=mode, device=device, optimizer="none")
    return [o.op for o in a.ops]


@pytest.mark.parametrize("functional", [False, True])
def test_cuda_target_runs_the_fused_kernel_forward_and_backward(functional):
    ops = ops_of("cuda", functional=functional)
    assert ops.count("aten.native_dropout") == 1
    assert ops.count("aten.native_dropout_backward") == 1
    assert not UNFUSED & set(ops)


def test_cpu_target_keeps_the_unfused_path():
    ops = ops_of("cpu")
    assert "aten.native_dropout" not in ops
    assert set(ops) >= UNFUSED


@pytest.mark.parametrize("kwargs", [{"inplace": True}, {"p": 0.0}])
def test_calls_cuda_does_not_fuse_stay_unfused(kwargs):
    assert "aten.native_dropout" not in ops_of("cuda", **kwargs)


def test_inference_dropout_does_no_work():
    ops = ops_of("cuda", mode="infer")
    assert not {"aten.native_dropout", *UNFUSED} & set(ops)


def test_fused_kernel_moves_fewer_bytes_than_the_unfused_path():
    def dropout_bytes(device: str) -> int:
        a = analyze(Net, ["float32[B,16]"], batch_size=64, mode="train", device=device, optimizer="none")
        return sum(o.bytes_read + o.bytes_written for o in a.ops
                   if o.phase.value == "forward" and o.category.value == "elementwise")

    # fused: read x, write y and a byte mask; unfused: write noise, rescale it in place, read x and noise, write y
    assert dropout_bytes("cuda") < 0.6 * dropout_bytes("cpu")


@pytest.mark.parametrize(("args", "kwargs", "fused"), [
    ((0.1, True), {}, True), ((0.1, False), {}, False), ((1.0, True), {}, False), ((), {"p": 0.2}, True),
])
def test_fused_on_cuda_reads_positional_and_keyword_arguments(args, kwargs, fused):
    assert fused_on_cuda(torch.dropout, (torch.ones(3), *args), kwargs) is fused
