"""Recurrent cells: one LSTM or GRU cell step, forward or forward + backward."""

from __future__ import annotations

import random

import torch
from typing_extensions import override

from flopcast.calibration.microbench import register_family
from flopcast.calibration.microbench.base import TORCH_DTYPES, Closure, Config, Family, itemsize, log_int, rand

CELLS = {"lstm": (torch.nn.LSTMCell, 4), "gru": (torch.nn.GRUCell, 3)}


@register_family
class RecurrentCell(Family):
    """``nn.LSTMCell`` / ``nn.GRUCell`` over a ``[batch, input]`` step with ``hidden`` units."""

    name = "rnn_cell"
    main_ops = ("aten._thnn_fused", "aten.lstm_cell", "aten.gru_cell")
    shrink_keys = ("batch", "input", "hidden")

    @override
    def sample(self, rng: random.Random) -> Config:
        return {"cell": rng.choice(sorted(CELLS)), "pass": rng.choice(("fwd", "fwd_bwd")),
                "batch": log_int(rng, 1, 1024), "input": log_int(rng, 4, 4096), "hidden": log_int(rng, 4, 4096)}

    @override
    def working_set_bytes(self, config: Config) -> int:
        gates = CELLS[config["cell"]][1] * config["hidden"]
        weights = gates * (config["input"] + config["hidden"] + 2)
        acts = config["batch"] * (config["input"] + 3 * config["hidden"] + 2 * gates)
        return itemsize(config["dtype"]) * (weights + acts) * (2 if config["pass"] == "fwd_bwd" else 1)

    @override
    def build(self, config: Config, device: str) -> Closure:
        module, _ = CELLS[config["cell"]]
        dtype = config["dtype"]
        cell = module(config["input"], config["hidden"], device=device, dtype=TORCH_DTYPES[dtype])
        grad = config["pass"] == "fwd_bwd"
        x = rand((config["batch"], config["input"]), dtype, device, requires_grad=grad)
        h = rand((config["batch"], config["hidden"]), dtype, device)
        state = (h, rand(h.shape, dtype, device)) if config["cell"] == "lstm" else h
        if not grad:
            return lambda: cell(x, state)
        inputs, g = [x, *cell.parameters()], torch.randn_like(h)

        def step() -> object:
            out = cell(x, state)
            return torch.autograd.grad(out[0] if isinstance(out, tuple) else out, inputs, g)

        return step
