"""Test helpers: TensorMeta/Call builders and a minimal fake-tensor recorder over the registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

import flopcast.features.formulas  # noqa: F401  (fills the registry)
from flopcast.features.records import OpCost, TensorMeta
from flopcast.features.registry import Call, lookup


def tm(*shape: int, dtype: str = "float32", itemsize: int = 4) -> TensorMeta:
    return TensorMeta(tuple(shape), dtype, itemsize)


def cost(op, *args, outputs=(), **kwargs) -> OpCost:
    entry = lookup(op)
    assert entry is not None and entry.formula is not None, op
    return entry.formula(Call(tuple(args), kwargs, tuple(outputs)))


@dataclass
class Recorded:
    op: object
    call: Call
    cost: OpCost | None
    registered: bool


def _meta(x):
    return TensorMeta.of(x) if isinstance(x, torch.Tensor) else x


class Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[Recorded] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            return 1.0
        out = func(*args, **kwargs)
        outs = tuple(TensorMeta.of(t) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
        call = Call(tuple(tree_map(_meta, list(args))), tree_map(_meta, dict(kwargs)), outs)
        entry = lookup(func)
        c = entry.formula(call) if entry is not None and entry.formula is not None else None
        self.ops.append(Recorded(func, call, c, entry is not None))
        return out


def _run_fake_step(mode, build: Callable[[], torch.nn.Module], inputs: Callable[[], tuple],
                   step: Callable | None) -> None:
    """Run ``step(model, *inputs)`` (default: forward, mean, backward) on fake tensors inside ``mode``."""
    with torch.device("meta"):
        model = build()
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = model.to_empty(device="cpu")
        xs = inputs()
        with mode:
            if step is None:
                out = model(*xs)
                out = out[0] if isinstance(out, tuple) else out
                out.float().mean().backward()
            else:
                step(model, *xs)


def trace(build: Callable[[], torch.nn.Module], inputs: Callable[[], tuple], step: Callable | None = None):
    """Run ``step(model, *inputs)`` (default: forward, mean, backward) on fake tensors; return the records."""
    rec = Recorder()
    _run_fake_step(rec, build, inputs, step)
    return rec.ops


def matmul_macs_total(ops) -> int:
    """2 x MACs of the ops ``FlopCounterMode`` covers (it counts matmul/conv/attention products only)."""
    from torch.utils.flop_counter import flop_registry

    return sum(2 * r.cost.macs for r in ops if r.cost is not None and r.op.overloadpacket in flop_registry)


def flop_counter_total(build, inputs, step=None) -> int:
    """``FlopCounterMode``'s total for the same fake step."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    _run_fake_step(counter, build, inputs, step)
    return counter.get_total_flops()
