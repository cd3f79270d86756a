"""A CUDA target runs ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` as cuDNN does: one fused call per module call.

Real CUDA runs one ``aten._cudnn_rnn`` over every step, layer and direction, and one
``aten._cudnn_rnn_backward``; a CPU target keeps the kernels a CPU runs (oneDNN layers for LSTM, a
per-time-step decomposition otherwise). Costs: the fused forward is charged what the CPU-target
decomposition costs (within 1%: cuDNN's gate maths is counted per gate, see ``formulas/rnn.py``); its
backward is charged 2x the forward's MACs (grad input and grad weights), which the CPU decomposition
undercuts by the initial state's gradient it skips (one step in T: ratio between 1 and 1 + 1/T).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flopcast.calibration.zoo import ZOO
from flopcast.features.api import analyze
from flopcast.features.cuda_rnn import RESERVE_UNITS
from flopcast.features.formulas.rnn import GRU, LSTM, RNN_RELU, RNN_TANH
from flopcast.features.memory import allocator_bytes
from flopcast.features.records import Category, Phase

IN, H, T, B = 24, 32, 6, 3
KINDS = {
    "lstm": (nn.LSTM, {}, LSTM),
    "gru": (nn.GRU, {}, GRU),
    "rnn-tanh": (nn.RNN, {"nonlinearity": "tanh"}, RNN_TANH),
    "rnn-relu": (nn.RNN, {"nonlinearity": "relu"}, RNN_RELU),
}
FUSED = {"aten._cudnn_rnn", "aten._cudnn_rnn_backward"}
# Ops a CUDA step runs in an RNN module besides the fused calls: the zero initial states, the weight
# buffer over the flat weights (empty + set_), and under autocast the fp16 casts and weight copies.
AROUND = {"aten.zeros", "aten.empty", "aten.set_", "aten.detach", "aten.copy_", "aten._to_copy"}


class Net(nn.Module):
    """Linear, the recurrent layer, a head on its output plus its final states; checks the shapes it gets."""

    def __init__(self, kind: str, bidirectional: bool = False, layers: int = 1, batch_first: bool = True) -> None:
        super().__init__()
        cls, kwargs, _ = KINDS[kind]
        self.dirs = 2 if bidirectional else 1
        self.proj = nn.Linear(IN, IN)
        self.rnn = cls(IN, H, layers, batch_first=batch_first, bidirectional=bidirectional, **kwargs)
        self.head = nn.Linear(self.dirs * H, 4)

    def forward(self, x):
        out, state = self.rnn(self.proj(x))
        h, c = state if isinstance(state, tuple) else (state, None)
        first = self.rnn.batch_first
        b, t = (x.shape[0], x.shape[1]) if first else (x.shape[1], x.shape[0])
        assert tuple(out.shape) == ((b, t, self.dirs * H) if first else (t, b, self.dirs * H)), out.shape
        states = (self.rnn.num_layers * self.dirs, b, H)
        assert tuple(h.shape) == states and (c is None or tuple(c.shape) == states), (h.shape, c)
        y = self.head(out) + h.mean()
        return y if c is None else y + c.mean()


def spec(batch_first: bool, steps: int = T) -> list[str]:
    return [f"float32[B,{steps},{IN}]" if batch_first else f"float32[{steps},B,{IN}]"]


def run(kind, bidirectional=False, layers=1, batch_first=True, *, mode="train", precision="fp32", device="cuda",
        steps=T, optimizer="none"):
    return analyze(lambda: Net(kind, bidirectional, layers, batch_first), spec(batch_first, steps), batch_size=B,
                   mode=mode, precision=precision, device=device, optimizer=optimizer if mode == "train" else "none")


def only(ops, name):
    found = [o for o in ops if o.op == name]
    assert len(found) == 1, [o.op for o in found]
    return found[0]


def phase_sum(a, phase, field="flops"):
    return sum(getattr(o, field) for o in a.ops if o.module == "rnn" and o.phase.value == phase)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("mode", ["train", "infer"])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", list(KINDS))
def test_one_cudnn_call_per_rnn_module_call(kind, bidirectional, layers, batch_first, mode, precision):
    a = run(kind, bidirectional, layers, batch_first, mode=mode, precision=precision)
    assert not a.unsupported_ops
    fwd = only(a.ops, "aten._cudnn_rnn")
    assert (fwd.phase, fwd.module, fwd.category) == (Phase.FORWARD, "rnn", Category.RNN)
    assert fwd.macs > 0
    # no per-time-step work: in the RNN module only the fused calls compute
    rnn_ops = [o for o in a.ops if o.module == "rnn"]
    assert {o.op for o in rnn_ops} - FUSED <= AROUND
    assert all(o.flops == 0 for o in rnn_ops if o.op not in FUSED)
    # cuDNN's autocast runs the RNN in float16 whatever the autocast dtype (AutocastRNN.cpp)
    dtype = "float32" if precision == "fp32" else "float16"
    assert fwd.dtype == dtype and fwd.outputs[0].dtype == dtype
    # outputs: output, hy, cy, reserve space (train only), weight buffer
    _, _, mode_id = KINDS[kind]
    reserve = fwd.outputs[3]
    assert reserve.dtype == "uint8"
    width = 4 if precision == "fp32" else 2
    expected = RESERVE_UNITS[mode_id] * layers * (2 if bidirectional else 1) * T * B * H * width
    assert reserve.nbytes == (expected if mode == "train" else 0)
    assert fwd.bytes_written == sum(m.nbytes for m in fwd.outputs[:4])  # the weight buffer is the weights
    if mode == "train":
        bwd = only(a.ops, "aten._cudnn_rnn_backward")
        assert (bwd.phase, bwd.module, bwd.category) == (Phase.BACKWARD, "rnn", Category.RNN)
        assert bwd.macs == 2 * fwd.macs  # grad input + grad weights
    else:
        assert not [o for o in a.ops if o.op == "aten._cudnn_rnn_backward"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("mode", ["train", "infer"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_recorded_ops_do_not_grow_with_the_sequence(kind, mode, precision):
    short = run(kind, True, 2, mode=mode, precision=precision, steps=T)
    long = run(kind, True, 2, mode=mode, precision=precision, steps=4 * T)
    assert [o.op for o in short.ops] == [o.op for o in long.ops]
    assert only(long.ops, "aten._cudnn_rnn").flops == pytest.approx(4 * only(short.ops, "aten._cudnn_rnn").flops)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", list(KINDS))
def test_costs_match_the_cpu_target_decomposition(kind, bidirectional, layers, batch_first):
    cuda = run(kind, bidirectional, layers, batch_first)
    cpu = run(kind, bidirectional, layers, batch_first, device="cpu")
    fwd, bwd = only(cuda.ops, "aten._cudnn_rnn"), only(cuda.ops, "aten._cudnn_rnn_backward")
    assert fwd.macs == phase_sum(cpu, "forward", "macs")
    assert fwd.flops == pytest.approx(phase_sum(cpu, "forward"), rel=0.01)
    assert 0.99 <= bwd.flops / phase_sum(cpu, "backward") <= 1 + 1 / T + 0.01
    # dtype changes no FLOPs
    bf16 = run(kind, bidirectional, layers, batch_first, precision="bf16")
    assert only(bf16.ops, "aten._cudnn_rnn").flops == fwd.flops
    assert only(bf16.ops, "aten._cudnn_rnn_backward").flops == bwd.flops


@pytest.mark.parametrize("mode", ["train", "infer"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cpu_target_keeps_the_cpu_kernels(kind, mode):
    a = run(kind, True, 2, mode=mode, device="cpu")
    assert not {o.op for o in a.ops} & FUSED
    computing = [o for o in a.ops if o.module == "rnn" and o.phase is Phase.FORWARD and o.flops]
    if kind == "lstm":  # oneDNN: one kernel per layer and direction
        assert [o.op for o in computing] == ["aten.mkldnn_rnn_layer"] * 4
    else:  # per time step, direction and layer: the hidden-state matmul and the gate maths
        assert sum(o.op == "aten.addmm" for o in computing) >= T * 2 * 2
        longer = run(kind, True, 2, mode=mode, device="cpu", steps=2 * T)
        assert len(longer.ops) > len(a.ops) + T * 2 * 2


def test_weights_are_flat_once_and_reserve_lives_until_backward():
    cuda = run("lstm", True, 2)
    cpu = run("lstm", True, 2, device="cpu")
    net = Net("lstm", True, 2)
    rnn = [p.numel() * 4 for p in net.rnn.parameters()]
    rest = [p.numel() * 4 for n, p in net.named_parameters() if not n.startswith("rnn.")]
    # CUDA: the RNN's weights are one allocation (flatten_parameters); CPU: one per tensor
    assert cuda.memory.breakdown_bytes["parameters"] == allocator_bytes(sum(rnn)) + sum(map(allocator_bytes, rest))
    assert cpu.memory.breakdown_bytes["parameters"] == sum(map(allocator_bytes, rnn + rest))
    # the reserve space is saved for the backward: live at the step's peak, with the output
    fwd = only(cuda.ops, "aten._cudnn_rnn")
    assert cuda.memory.breakdown_bytes["activations"] >= fwd.outputs[3].nbytes + fwd.outputs[0].nbytes
    infer = run("lstm", True, 2, mode="infer")
    assert infer.peak_memory_bytes < cuda.peak_memory_bytes - fwd.outputs[3].nbytes


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_autocast_copies_weights_to_fp16_per_call_and_keeps_fp32_master_weights(mode):
    a = run("gru", True, 2, mode=mode, precision="bf16", optimizer="adamw")
    weights = len(list(Net("gru", True, 2).rnn.parameters()))
    fwd = [o for o in a.ops if o.module == "rnn" and o.phase is Phase.FORWARD]
    copies = [o for o in fwd if o.op == "aten.copy_"]
    assert len(copies) == weights and {o.outputs[0].dtype for o in copies} == {"float16"}
    assert {o.outputs[0].dtype for o in fwd if o.op == "aten._to_copy"} == {"float16"}  # input and h0
    if mode == "train":
        assert {o.dtype for o in a.ops if o.phase is Phase.OPTIMIZER and o.flops} == {"float32"}


class TwoCalls(nn.Module):
    """An LSTM with projections and no biases, learned initial states, called twice; an unbatched GRU."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(IN, IN)
        self.rnn = nn.LSTM(IN, H, 2, batch_first=True, proj_size=16, bias=False, bidirectional=True)
        self.h0, self.c0 = nn.Parameter(torch.zeros(4, B, 16)), nn.Parameter(torch.zeros(4, B, H))
        self.gru = nn.GRU(IN, H)
        self.head = nn.Linear(32 + H, 4)

    def forward(self, x):
        out, (h, c) = self.rnn(self.proj(x), (self.h0, self.c0))
        out, _ = self.rnn(self.proj(x), (h, c))
        single, _ = self.gru(x[0])  # (T, IN): unbatched
        return self.head(nn.functional.pad(out, (0, H)) + nn.functional.pad(single, (32, 0)))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_call_is_one_fused_call(precision):
    a = analyze(TwoCalls, [f"float32[B,{T},{IN}]"], batch_size=B, precision=precision, optimizer="adamw")
    assert not a.unsupported_ops
    names = [o.op for o in a.ops if o.op in FUSED]
    assert names.count("aten._cudnn_rnn") == 3 and names.count("aten._cudnn_rnn_backward") == 3
    cpu = analyze(TwoCalls, [f"float32[B,{T},{IN}]"], batch_size=B, device="cpu", optimizer="adamw")
    fused = sum(o.flops for o in a.ops if o.op == "aten._cudnn_rnn")
    decomposed = sum(o.flops for o in cpu.ops if o.phase is Phase.FORWARD and o.module in ("rnn", "gru"))
    assert fused == pytest.approx(decomposed, rel=0.01)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("mode", ["train", "infer"])
@pytest.mark.parametrize("name", ["gru-classifier", "lstm-lm", "lstm-lm-large"])
def test_zoo_rnns_trace_a_few_hundred_ops_on_cuda(name, mode, precision):
    zm = ZOO[name]
    a = analyze(zm.build, zm.inputs, batch_size=16, mode=mode, precision=precision, device="cuda",
                optimizer="adamw" if mode == "train" else "none", target=name)
    assert a.unsupported_ops == {}
    assert len(a.ops) <= 300
    assert [o.op for o in a.ops if o.op in FUSED] == (sorted(FUSED) if mode == "train" else ["aten._cudnn_rnn"])
