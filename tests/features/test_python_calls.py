"""Each recorded op knows whether a Python-level call dispatched it or C++ did (composites, RNNs, backward)."""

from __future__ import annotations

from torch import nn

from flopcast.features.api import analyze
from flopcast.features.records import Phase
from flopcast.features.trace_torch import trace_ops


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.gru = nn.GRU(16, 16, batch_first=True)

    def forward(self, x):
        h = self.fc(x).relu()
        return self.gru(h)[0]


def _analyze(mode: str):
    return analyze(Tagger, ["float32[B,5,8]"], batch_size=2, mode=mode, device="cpu",
                   optimizer="sgd" if mode == "train" else "none")


def test_a_cpu_gru_is_one_python_call_over_many_cxx_ops():
    ops = _analyze("infer").ops
    gru = [o for o in ops if o.module == "gru"]
    assert len(gru) > 20  # per time step gate maths, run by at::native from C++
    assert gru[0].python_call and sum(o.python_call for o in gru) <= 2  # the zero state, then torch.gru


def test_the_backward_is_dispatched_by_the_autograd_engine():
    ops = _analyze("train").ops
    backward = [o for o in ops if o.phase is Phase.BACKWARD]
    assert len(backward) > 20
    assert sum(o.python_call for o in backward) == 1  # loss.backward() is the only Python call
    forward = [o for o in ops if o.phase is Phase.FORWARD]
    assert sum(o.python_call for o in forward) >= 3  # linear, relu, gru, the loss: each a call of its own


def test_every_separate_python_call_is_first_of_its_own():
    import torch

    def build():
        a, b = torch.ones(4, 4), torch.ones(4, 4)
        return lambda: ((a + b) * b).sum()

    ops = trace_ops(build)
    assert [o.python_call for o in ops] == [True] * len(ops)  # without a call counter every op is a call
    analysis = analyze(lambda: nn.Sequential(nn.Linear(4, 4), nn.Tanh()), ["float32[B,4]"], batch_size=2,
                       mode="infer", device="cpu", optimizer="none")
    assert [(o.op, o.python_call) for o in analysis.ops] == [
        ("aten.t", True), ("aten.addmm", False),  # F.linear: one call, two kernels
        ("aten.tanh", True)]
