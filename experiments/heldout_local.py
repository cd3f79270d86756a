"""Step time of models outside the calibration zoo on this CPU: measured, and predicted three ways.

Run after ``flopcast calibrate --quick --out DIR`` (which also files the campaign in the per-user store):
``python experiments/heldout_local.py --calibration DIR [--repeats 2]``. Each config's real step is
measured with the calibration windows (warm-up, 5 windows of >= 0.2 s, median), ``--repeats`` times
interleaved over the configs (the smallest median is kept: load from other processes only adds time), then
predicted by the CLI exactly as a user runs it: a plain ``flopcast predict ... --hardware local`` (finds the
store), the same with ``--calibration DIR``, and with an empty store (``$FLOPCAST_HOME`` pointed at a new
folder: uncalibrated). Prints one row per config and the median absolute error of each way; the load
average before and after, since these VMs share their cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch
from host_load import load

from flopcast.calibration.windows import measure
from flopcast.features.spec import parse_spec
from flopcast.features.step import make_step
from flopcast.features.targets import load_file_target

HELDOUT = "experiments/models/heldout.py"


class Config(NamedTuple):
    """One step to measure and predict.

    Attributes:
        target: ``file.py:name``.
        inputs: one input spec per forward argument.
        batch_size: the ``B`` symbol.
        mode: train or infer.
    """

    target: str
    inputs: tuple[str, ...]
    batch_size: int
    mode: str

    @property
    def optimizer(self) -> str:
        """AdamW for train steps, none for inference."""
        return "adamw" if self.mode == "train" else "none"

    @property
    def label(self) -> str:
        """``name mode bs``."""
        return f"{self.target.rsplit(':', 1)[1]} {self.mode} bs {self.batch_size}"


CONFIGS = (
    Config("features/examples/tabular_mlp.py:build", ("float32[B,13]", "int64[B,26]<100000"), 512, "train"),
    Config(f"{HELDOUT}:autoencoder", ("float32[B,784]",), 64, "train"),
    Config(f"{HELDOUT}:cifar_bn_cnn", ("float32[B,3,32,32]",), 32, "train"),
    Config(f"{HELDOUT}:tcn", ("float32[B,8,512]",), 16, "train"),
    Config(f"{HELDOUT}:gru_regressor", ("float32[B,100,16]",), 32, "train"),
    Config(f"{HELDOUT}:tiny_encoder", ("int64[B,64]<5000",), 8, "train"),
    Config(f"{HELDOUT}:separable_cnn", ("float32[B,3,64,64]",), 16, "infer"),
    Config(f"{HELDOUT}:autoencoder", ("float32[B,784]",), 256, "infer"),
    Config(f"{HELDOUT}:bow_classifier", ("int64[B,64]<100000",), 32, "train"),
)


def measured_s(c: Config) -> float:
    """Median step time of one real step of ``c`` on this CPU, s."""
    model = load_file_target(c.target).builder()
    inputs = [parse_spec(s).materialize({"B": c.batch_size}, "cpu") for s in c.inputs]
    step = make_step(model, inputs, mode=c.mode, optimizer=c.optimizer, precision="fp32", device="cpu")
    return measure(step, device="cpu", min_window_s=0.2, n_windows=5, energy_window_s=0.0).time_s


def predicted(c: Config, extra: list[str], env: dict[str, str]) -> dict:
    """``flopcast predict --hardware local --json`` of ``c`` as a subprocess: its one record.

    ``--loss mean``: the measured step is the plain one (:func:`measured_s`), where ``predict`` would pick a
    cross-entropy loss for a classification output by itself.
    """
    argv = [sys.executable, "-m", "flopcast.predictor.main", "predict", c.target, "--batch-size", str(c.batch_size),
            "--mode", c.mode, "--optimizer", c.optimizer, *[x for s in c.inputs for x in ("--input", s)],
            "--hardware", "local", "--loss", "mean", "--json", *extra]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    (record,) = json.loads(out.stdout)  # --json prints a list, one record per device
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=Path, required=True, help="the `flopcast calibrate --out` folder")
    parser.add_argument("--repeats", type=int, default=2, help="measurement passes over the configs (2)")
    parser.add_argument("--out", type=Path, help="also write the table as CSV")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; start: {load()}")
    passes = [[measured_s(c) for c in CONFIGS] for _ in range(args.repeats)]
    print(f"measured ({args.repeats} passes); {load()}")
    empty = tempfile.mkdtemp(prefix="flopcast-empty-home-")
    ways = {"store": ([], dict(os.environ)), "--calibration": (["--calibration", str(args.calibration)],
                                                              dict(os.environ)),
            "uncalibrated": ([], {**os.environ, "FLOPCAST_HOME": empty})}
    rows = []
    for i, c in enumerate(CONFIGS):
        row = {"config": c.label, "measured_ms": min(p[i] for p in passes) * 1e3,
               "spread": max(p[i] for p in passes) / min(p[i] for p in passes)}
        for way, (extra, env) in ways.items():
            p = predicted(c, extra, env)
            row[f"{way}_ms"] = p["step_time_s"] * 1e3
            row[f"{way}_calibrated"] = p["calibrated"]
        rows.append(row)
    table = pd.DataFrame(rows)
    for way in ways:
        table[f"{way}_err"] = (table[f"{way}_ms"] / table["measured_ms"] - 1).abs()
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(table.to_string(index=False))
    for way in ways:
        print(f"{way:>14}: median |error| {table[f'{way}_err'].median():.1%}, "
              f"calibrated {table[f'{way}_calibrated'].all()}")
    print(f"end: {load()}")
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
