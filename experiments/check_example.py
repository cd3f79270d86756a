"""Predicted vs measured step time of one PyTorch target on this CPU (a spot check of ``flopcast predict``).

Run: ``python experiments/check_example.py [TARGET] [--batch-size 512] [--mode train] [--calibration DIR]``;
default target: the README's example. Measures the real step on this CPU with the calibration windows
(warm-up, >= 3 windows, median) and prints it beside the prediction of the bundled model for ``--hardware
local`` (with ``--calibration DIR``: after ``flopcast calibrate --quick --out DIR``, the new-machine path).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from flopcast.calibration.windows import measure
from flopcast.features.spec import parse_spec
from flopcast.features.step import make_step
from flopcast.features.targets import load_file_target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default="features/examples/tabular_mlp.py:build")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--mode", default="train", choices=("train", "infer"))
    parser.add_argument("--calibration", help="a `flopcast calibrate --out` folder of this CPU")
    args = parser.parse_args()
    loaded = load_file_target(args.target)
    model = loaded.builder()
    inputs = [parse_spec(s).materialize({"B": args.batch_size}, "cpu") for s in loaded.default_inputs]
    step = make_step(model, inputs, mode=args.mode, optimizer="adamw", precision="fp32", device="cpu")
    m = measure(step, device="cpu", min_window_s=0.2, n_windows=5, energy_window_s=0.0)
    out = subprocess.run([sys.executable, "-m", "flopcast.predictor.main", "predict", args.target, "--batch-size",
                          str(args.batch_size), "--mode", args.mode, "--hardware", "local", "--json",
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
