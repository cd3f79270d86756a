"""``--step FILE.py:fn``: a user-written step traced like the built-in one, phases from the calls it makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flopcast.features.api import analyze
from flopcast.features.errors import ModelRaisedError
from flopcast.features.step import make_step
from flopcast.features.step_options import StepOptionError, StepOptions
from tests.features.models import torch_models as tm

STEPS = Path(__file__).parent / "models" / "steps.py"


def run(fn: str, **kw):
    return analyze(tm.mlp, ["float32[B,16]"], batch_size=4, device="cpu", step=StepOptions(step_fn=f"{STEPS}:{fn}"),
                   **kw)


def test_user_step_written_like_the_built_in_one_traces_the_same():
    user = run("mean_step")
    built_in = analyze(tm.mlp, ["float32[B,16]"], batch_size=4, device="cpu", step=StepOptions(loss="mean"))
    assert [(o.op, o.phase, o.flops, o.module) for o in user.ops] == \
        [(o.op, o.phase, o.flops, o.module) for o in built_in.ops]
    # the function's ``loss`` variable lives on through its optimizer step: one more 512-byte block
    assert user.peak_memory_bytes - built_in.peak_memory_bytes == 512
    assert user.to_dict()["step"]["step_fn"].endswith("steps.py:mean_step")


def test_phases_of_a_user_step_follow_its_calls():
    a = run("clipped_accumulating_step")
    phases = [o.phase.value for o in a.ops]
    # forward, backward, forward, backward, then clipping and the optimizer: four changes
    changes = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert changes == ["forward", "backward", "forward", "backward", "optimizer"]
    opt = [o.op for o in a.ops if o.phase.value == "optimizer"]
    assert opt.index("aten._foreach_norm") < opt.index("aten.addcdiv_")  # clipped before the update


def test_user_step_runs_for_real():
    torch.manual_seed(0)
    model = tm.mlp()
    step = make_step(model, [torch.randn(4, 16)], mode="train", device="cpu",
                     options=StepOptions(step_fn=f"{STEPS}:clipped_accumulating_step"))
    before = model[0].weight.detach().clone()
    step()
    assert not torch.equal(before, model[0].weight)


@pytest.mark.parametrize(
    ("fn", "error", "fragment"),
    [
        ("raising_step", ModelRaisedError, "steps.py:raising_step raised KeyError in forward: 'no labels"),
        ("missing", StepOptionError, "has no attribute 'missing'"),
        ("NOT_A_FUNCTION", StepOptionError, "is a int, not a callable"),
    ],
)
def test_user_step_errors_are_one_line(fn, error, fragment):
    with pytest.raises(error, match=fragment):
        run(fn)
