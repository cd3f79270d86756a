"""Optimizer steps over a list of parameters with the ``foreach`` (multi-tensor) kernels."""

from __future__ import annotations

import random

import torch
from typing_extensions import override

from flopcast.calibration.microbench import register_family
from flopcast.calibration.microbench.base import Closure, Config, Family, itemsize, log_int, rand
from flopcast.features.records import Phase

# name -> (factory, tensors kept per parameter: param, grad, states)
OPTIMIZERS = {
    "adamw": (lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True), 4),
    "sgd": (lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, foreach=True), 3),
}


@register_family
class OptimizerStep(Family):
    """One ``step()`` over ``n_params`` tensors of ``numel`` elements each (state already initialised)."""

    name = "optimizer"
    shrink_keys = ("n_params", "numel")

    @override
    def sample(self, rng: random.Random) -> Config:
        return {"optimizer": rng.choice(sorted(OPTIMIZERS)), "n_params": log_int(rng, 1, 512),
                "numel": log_int(rng, 16, 1 << 24)}

    @override
    def phase(self, config: Config) -> Phase:
        return Phase.OPTIMIZER

    @override
    def working_set_bytes(self, config: Config) -> int:
        per_param = OPTIMIZERS[config["optimizer"]][1]
        return per_param * itemsize(config["dtype"]) * config["n_params"] * config["numel"]

    @override
    def build(self, config: Config, device: str) -> Closure:
        n, numel, dtype = config["n_params"], config["numel"], config["dtype"]
        params = [rand((numel,), dtype, device, requires_grad=True) for _ in range(n)]
        for p in params:
            p.grad = torch.randn_like(p)
        opt = OPTIMIZERS[config["optimizer"]][0](params)
        opt.step()  # the first step allocates the state; the timed steps are steady ones
        return opt.step
