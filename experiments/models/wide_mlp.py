"""The zoo's ``mlp-wide`` (784-4096-4096-10) as a file target, for ``experiments/check_example.py``.

Its train step allocates a 64 MiB weight gradient and AdamW temporaries as large: outputs a CPU faults in anew every
step (``flopcast.predictor.first_touch``).
"""

from torch import nn

from flopcast.calibration.zoo.mlp import mlp_wide

INPUTS = ["float32[B,784]"]


def build() -> nn.Module:
    """``mlp-wide`` at its zoo size."""
    return mlp_wide()
