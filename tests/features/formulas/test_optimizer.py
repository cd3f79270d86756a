from __future__ import annotations

import pytest
import torch
from _helpers import cost, tm, trace

aten = torch.ops.aten
P = 20 * 10  # elements of Linear(10, 20, bias=False).weight
BYTES = P * 4


def run_step(opt_cls, steps=1, **kw):
    def step(model, x):
        model(x).sum().backward()
        opt = opt_cls(model.parameters(), **kw)
        for _ in range(steps):
            opt.step()

    ops = trace(lambda: torch.nn.Linear(10, 20, bias=False), lambda: (torch.empty(3, 10),), step=step)
    start = next(i for i, r in enumerate(ops) if "Optimizer.step" in str(r.call.args[:1]))
    return [r for r in ops[start:] if r.cost is not None and r.cost.flops]


@pytest.mark.parametrize("foreach", [False, True])
def test_adamw_step(foreach):
    ops = run_step(torch.optim.AdamW, foreach=foreach)
    # step += 1 (1 element); p *= 1 - lr*wd (1); m.lerp_ (3); v *= b2 (1); v.addcmul_ (3); sqrt (1);
    # / sqrt(bc2) (1); + eps (1); p.addcdiv_ (3)
    assert [r.cost.flops for r in ops] == [1, P, 3 * P, P, 3 * P, P, P, P, 3 * P]
    assert sum(r.cost.flops for r in ops) == 1 + 14 * P
    lerp = ops[2].cost
    assert (lerp.bytes_read, lerp.bytes_written) == (2 * BYTES, BYTES)  # reads m and g, writes m
    addcdiv = ops[-1].cost
    assert (addcdiv.bytes_read, addcdiv.bytes_written) == (3 * BYTES, BYTES)


@pytest.mark.parametrize("foreach", [False, True])
def test_sgd_momentum_step(foreach):
    ops = run_step(torch.optim.SGD, steps=2, lr=0.1, momentum=0.9, foreach=foreach)
    # step 1: buf = clone(g) (0 FLOPs), p += -lr * buf; step 2: buf *= mu, buf += g, p += -lr * buf
    assert [r.cost.flops for r in ops] == [P, P, P, P]
    assert [(r.cost.bytes_read, r.cost.bytes_written) for r in ops] == [
        (2 * BYTES, BYTES),
        (BYTES, BYTES),
        (2 * BYTES, BYTES),
        (2 * BYTES, BYTES),
    ]


def test_foreach_sums_over_list():
    xs = [tm(10, 20), tm(5)]
    c = cost(aten._foreach_addcmul_, xs, xs, xs, 0.1)
    assert c.flops == 3 * (200 + 5)
    assert (c.bytes_read, c.bytes_written) == (3 * 205 * 4, 205 * 4)
    c = cost(aten._foreach_sqrt, xs, outputs=tuple(xs))
    assert (c.flops, c.bytes_read) == (205, None)


@pytest.mark.parametrize(
    ("op", "kwargs", "per"),
    [
        (aten._fused_adamw_, {"weight_decay": 0.01, "amsgrad": False}, 13 + 1),
        (aten._fused_adam_, {"weight_decay": 0.01, "amsgrad": True}, 13 + 2 + 1),
        (aten._fused_adam_, {"weight_decay": 0.0, "amsgrad": False}, 13),
    ],
)
def test_fused_adam(op, kwargs, per):
    p = [tm(20, 10)]
    c = cost(op, p, p, p, p, [], [tm()], lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, maximize=False, **kwargs)
    assert c.flops == per * P
    assert (c.bytes_read, c.bytes_written) == (4 * BYTES + 4, 3 * BYTES)  # steps: one float32 scalar


@pytest.mark.parametrize(
    ("kwargs", "per"),
    [
        ({"momentum": 0.0, "weight_decay": 0.0, "nesterov": False}, 2),
        ({"momentum": 0.9, "weight_decay": 0.0, "nesterov": False}, 2 + 3),
        ({"momentum": 0.9, "weight_decay": 0.1, "nesterov": True}, 2 + 3 + 2 + 2),
    ],
)
def test_fused_sgd(kwargs, per):
    p = [tm(20, 10)]
    c = cost(aten._fused_sgd_, p, p, p, lr=0.1, dampening=0.0, maximize=False, is_first_step=False, **kwargs)
    assert (c.flops, c.bytes_read, c.bytes_written) == (per * P, 3 * BYTES, 2 * BYTES)


def test_amp_unscale_and_update_scale():
    grads, flag, inv = [tm(20, 10), tm(5)], tm(), tm()
    c = cost(aten._amp_foreach_non_finite_check_and_unscale_, grads, flag, inv)
    # a finiteness check and a multiply per gradient element; reads grads, flag and inverse scale
    assert c.flops == 2 * (200 + 5)
    assert (c.bytes_read, c.bytes_written) == (205 * 4 + 4 + 4, 205 * 4)
    scale, tracker = tm(), tm(dtype="int32")
    c = cost(aten._amp_update_scale_, scale, tracker, flag, 2.0, 0.5, 2000)
    assert (c.flops, c.bytes_read, c.bytes_written) == (3, 3 * 4, 2 * 4)
