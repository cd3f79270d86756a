"""Predicted vs measured step time of one PyTorch target on this CPU (a spot check of ``flopcast predict``).

Run: ``python experiments/check_example.py [TARGET] [--batch-size 512] [--mode train] [--calibration DIR]
[--per-op]``; default target: the README's example. Measures the real step on this CPU with the calibration
windows (warm-up, >= 3 windows, median) and prints it beside the prediction of the bundled model for
``--hardware local`` (with ``--calibration DIR``: after ``flopcast calibrate --quick --out DIR``, the
new-machine path). ``--per-op``: where the time goes, op by op: the self CPU time of each aten op in 10
profiled steps (``torch.profiler``, per step) beside the bundled model's prediction of the same ops on this CPU
(summed per op name and phase-free; the step stage's host time and correction come on top).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pandas as pd
import torch

from flopcast.calibration.windows import measure
from flopcast.features.spec import parse_spec
from flopcast.features.step import make_step
from flopcast.features.targets import load_file_target

PROFILED_STEPS = 10


def measured_per_op_ms(step) -> pd.Series:
    """Self CPU time per aten op of one step, ms (mean over :data:`PROFILED_STEPS` profiled steps)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(PROFILED_STEPS):
            step()
    times = {e.key.replace("::", "."): e.self_cpu_time_total / PROFILED_STEPS / 1e3 for e in prof.key_averages()
             if e.key.startswith("aten::")}
    return pd.Series(times, name="measured_ms")


def predicted_per_op_ms(target: str, batch_size: int, mode: str) -> pd.Series:
    """The bundled model's median op times of the step on this CPU (``--hardware local``), ms per op name."""
    from flopcast.features.api import analyze_config
    from flopcast.features.config import AnalyzeConfig
    from flopcast.predictor.analysis_cache import StepAnalysis
    from flopcast.predictor.compose import op_times
    from flopcast.predictor.io import load_model
    from flopcast.predictor.predict import resolve_hardware

    step = StepAnalysis.of(analyze_config(AnalyzeConfig(target=target, batch_size=batch_size, mode=mode,
                                                        precision="fp32", optimizer="adamw", device="cpu")))
    t = op_times(load_model(), step.ops, resolve_hardware("local"), "fp32")
    return pd.Series(t.q[:, 1] * 1e3, index=t.work["op"].to_numpy(), name="predicted_ms").groupby(level=0).sum()


def per_op_table(measured: pd.Series, predicted: pd.Series) -> pd.DataFrame:
    """Measured and predicted ms per op, largest first, with the ops' totals as the last row."""
    table = pd.concat([measured, predicted], axis=1).fillna(0.0)
    table["ratio"] = table["predicted_ms"] / table["measured_ms"].where(table["measured_ms"] > 0)
    table = table.sort_values("measured_ms", ascending=False)
    table.loc["all aten ops"] = [table["measured_ms"].sum(), table["predicted_ms"].sum(),
                                 table["predicted_ms"].sum() / table["measured_ms"].sum()]
    return table.round({"measured_ms": 3, "predicted_ms": 3, "ratio": 2})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default="features/examples/tabular_mlp.py:build")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--mode", default="train", choices=("train", "infer"))
    parser.add_argument("--calibration", help="a `flopcast calibrate --out` folder of this CPU")
    parser.add_argument("--per-op", action="store_true", help="also the measured and predicted time of each op")
    args = parser.parse_args()
    loaded = load_file_target(args.target)
    model = loaded.builder()
    inputs = [parse_spec(s).materialize({"B": args.batch_size}, "cpu") for s in loaded.default_inputs]
    step = make_step(model, inputs, mode=args.mode, optimizer="adamw", precision="fp32", device="cpu")
    m = measure(step, device="cpu", min_window_s=0.2, n_windows=5, energy_window_s=0.0)
    out = subprocess.run([sys.executable, "-m", "flopcast.predictor.main", "predict", args.target, "--batch-size",
                          str(args.batch_size), "--mode", args.mode, "--hardware", "local", "--json", "--loss", "mean",
                          *(["--calibration", args.calibration] if args.calibration else [])],
                         capture_output=True, text=True, check=True)
    p = json.loads(out.stdout)
    p = p[0] if isinstance(p, list) else p
    print(f"{args.target} {args.mode} bs {args.batch_size} on this CPU ({torch.get_num_threads()} threads)")
    print(f"  measured  {m.time_s * 1e3:8.2f} ms  (median of {m.n_windows} windows, {m.n_repeats} calls each; "
          f"min {m.time_s_min * 1e3:.2f}, max {m.time_s_max * 1e3:.2f})")
    print(f"  predicted {p['step_time_s'] * 1e3:8.2f} ms  [{p['step_time_s_p10'] * 1e3:.2f}, "
          f"{p['step_time_s_p90'] * 1e3:.2f}]  hardware {p['hardware']}, calibrated {p['calibrated']}")
    print(f"  ratio predicted / measured: {p['step_time_s'] / m.time_s:.2f}")
    if args.per_op:
        table = per_op_table(measured_per_op_ms(step), predicted_per_op_ms(args.target, args.batch_size, args.mode))
        print(f"per op, ms per step (measured: self CPU time, torch.profiler, {PROFILED_STEPS} steps):")
        with pd.option_context("display.max_rows", 200, "display.width", 120):
            print(table.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
