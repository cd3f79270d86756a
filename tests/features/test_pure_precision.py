"""``--precision bf16-pure`` / ``fp16-pure``: weights and floating inputs in that dtype, no autocast.

A model loaded with ``torch_dtype=torch.bfloat16`` (LLM inference and serving) holds bf16 weights: half the
parameter bytes of fp32, no per-step casts of the weights, every op in bf16. ``bf16`` stays autocast over fp32
weights (mixed-precision training), which casts each weight before its matmul.
"""

from __future__ import annotations

import pytest
from torch import nn

from flopcast.features.api import analyze


class Net(nn.Module):
    """Two linears with a shared (tied) weight, a norm and a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(256, 256), nn.Linear(256, 256)
        self.b.weight = self.a.weight
        self.norm = nn.LayerNorm(256)

    def forward(self, x):
        return self.b(self.norm(self.a(x)))


def _analysis(precision: str, mode: str = "infer"):
    return analyze(Net, ["float32[B,256]"], batch_size=4, mode=mode, precision=precision, optimizer="sgd")


@pytest.mark.parametrize(("precision", "dtype"), [("bf16-pure", "bfloat16"), ("fp16-pure", "float16")])
def test_pure_precision_runs_every_op_in_its_dtype_without_casts(precision, dtype):
    a = _analysis(precision)
    assert {o.op for o in a.ops} & {"aten._to_copy", "aten.copy_"} <= {"aten._to_copy"}  # the input's cast at most
    work = [o for o in a.ops if o.category.value in ("matmul", "norm")]
    assert work and all(o.dtype == dtype for o in work)


def test_autocast_bf16_casts_the_fp32_weights_each_step_pure_bf16_does_not():
    def casts(precision):
        return sum(1 for o in _analysis(precision).ops if o.op == "aten._to_copy")

    assert casts("bf16") >= 3  # x, the tied weight once (cached), the biases
    assert casts("bf16-pure") <= 1


def test_pure_precision_halves_the_weights_and_keeps_tied_weights_tied():
    fp32, pure = _analysis("fp32", "train"), _analysis("bf16-pure", "train")
    assert pure.params == fp32.params  # the tied weight counted once in both
    assert pure.memory.breakdown_bytes["parameters"] * 2 == fp32.memory.breakdown_bytes["parameters"]
