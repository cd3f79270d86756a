"""Training without backpropagation: the step of Equilibrium Propagation (EP), built from the traced model's ops.

EP (Scellier & Bengio 2017) trains an energy-based network with two relaxations and a local update, no
backward pass. Its step is built here as an op table and priced by the same cost path as any other step:

- free phase: ``T1`` iterations; nudged phase: ``T2`` iterations. One iteration is the model's forward (as an
  inference step runs it: no autograd) plus the feedback term of the energy gradient: each parametric layer but
  the first (the input is clamped) multiplies by its transposed weights, one product of its forward's cost;
- local update: two correlation products per parametric layer (free and nudged states, ``rho(s) rho(s)^T``), each
  of its forward's cost, priced as the weight-gradient kernels they are (backward phase);
- the optimizer step of the train step, which applies the update as a gradient.

Not counted: the nudging force ``beta x dloss/dy`` (one output-sized elementwise op per nudged iteration) and the
weight-sized difference of the two correlations (both far below one forward iteration). Peak memory is the
backpropagation step's (an upper bound: EP keeps two copies of the states, not every activation). Parametric ops
are the GEMMs and convolutions with a weight operand (:data:`PARAMETRIC_OPS`); batched products of two activations
(``bmm``, attention) are not layers of their own. For a network that is not energy-based (a transformer), this is
the cost of running its forward as EP's relaxation dynamics.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace

from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig
from flopcast.features.records import OpRecord, Phase
from flopcast.predictor.featurize import base_op_name

REGIMES = ("bp", "ep")
"""Training regimes: backpropagation (the traced train step) and Equilibrium Propagation."""
PARAMETRIC_OPS = ("aten.mm", "aten.addmm", "aten.linear", "aten.convolution", "aten._convolution",
                  "aten.mkldnn_convolution", "aten.cudnn_convolution", "aten.conv1d", "aten.conv2d", "aten.conv3d")
"""Ops whose second operand is a layer's weight: one EP layer each."""


class TrainingOptionError(ValueError):
    """``--training`` options that cannot be honoured (one line)."""


@dataclass(frozen=True)
class Training:
    """The training regimes to predict (``--training``), each a column per device.

    Attributes:
        regimes: ``bp`` and/or ``ep``, in the given order.
        ep_free_steps: iterations of EP's free relaxation (``T1``).
        ep_nudged_steps: iterations of EP's nudged relaxation (``T2``).
    """

    regimes: tuple[str, ...] = ("bp",)
    ep_free_steps: int = 20
    ep_nudged_steps: int = 4

    def __post_init__(self) -> None:
        unknown = [r for r in self.regimes if r not in REGIMES]
        if unknown or not self.regimes:
            raise TrainingOptionError(f"--training must list {' and/or '.join(REGIMES)}, not {','.join(self.regimes)}")
        for flag, value in (("--ep-free-steps", self.ep_free_steps), ("--ep-nudged-steps", self.ep_nudged_steps)):
            if value < 1:
                raise TrainingOptionError(f"{flag} must be >= 1 iteration, not {value}")

    def analyser(self, regime: str, analyse: Callable[[AnalyzeConfig], Analysis]
                 ) -> Callable[[AnalyzeConfig], Analysis]:
        """The ``analyse`` function :func:`flopcast.predictor.predict.predict` uses for ``regime``."""
        if regime == "bp":
            return analyse

        def ep(config: AnalyzeConfig) -> Analysis:
            if config.mode != "train":
                raise TrainingOptionError("--training ep prices a train step: use --mode train")
            infer = analyse(replace(config, mode="infer"))
            return ep_analysis(infer, analyse(config), self.ep_free_steps, self.ep_nudged_steps)

        return ep

    def describe(self, regime: str) -> str:
        """Column label suffix: ``BP`` or ``EP T1+T2``."""
        return "BP" if regime == "bp" else f"EP {self.ep_free_steps}+{self.ep_nudged_steps}"


def parametric(ops: tuple[OpRecord, ...] | list[OpRecord]) -> list[OpRecord]:
    """The ops of a forward that apply a layer's weights (:data:`PARAMETRIC_OPS`)."""
    return [o for o in ops if base_op_name(o.op) in PARAMETRIC_OPS]


def ep_analysis(infer: Analysis, train: Analysis, free_steps: int, nudged_steps: int) -> Analysis:
    """The EP step of a model as an analysis (see the module docstring).

    Args:
        infer: the model's inference step (its forward without autograd).
        train: its backpropagation train step (optimizer ops, parameters, peak memory).
        free_steps: free-phase iterations ``T1``.
        nudged_steps: nudged-phase iterations ``T2``.
    """
    layers = parametric(infer.ops)
    iteration = [*infer.ops, *layers[1:]]  # forward + feedback through every layer above the clamped input
    update = [replace(o, phase=Phase.BACKWARD) for o in layers] * 2
    optimizer = [o for o in train.ops if o.phase is Phase.OPTIMIZER]
    ops = [*iteration * (free_steps + nudged_steps), *update, *optimizer]
    return Analysis(ops=tuple(replace(o, index=i) for i, o in enumerate(ops)), target=train.target,
                    params=train.params, trainable_params=train.trainable_params, memory=train.memory)


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """``--training bp|ep|bp,ep`` and EP's iteration counts."""
    g = p.add_argument_group("training regime", "backpropagation, or Equilibrium Propagation (no backward pass)")
    g.add_argument("--training", default="bp", metavar="bp|ep|bp,ep",
                   help="bp (the traced step), ep (Equilibrium Propagation), or both side by side (default bp)")
    g.add_argument("--ep-free-steps", type=int, default=Training.ep_free_steps, metavar="T1",
                   help=f"EP free-relaxation iterations ({Training.ep_free_steps})")
    g.add_argument("--ep-nudged-steps", type=int, default=Training.ep_nudged_steps, metavar="T2",
                   help=f"EP nudged-relaxation iterations ({Training.ep_nudged_steps})")


def training_from_args(args: argparse.Namespace) -> Training:
    """The Training of parsed arguments."""
    regimes = tuple(r.strip().lower() for r in args.training.split(",") if r.strip())
    return Training(regimes, args.ep_free_steps, args.ep_nudged_steps)
