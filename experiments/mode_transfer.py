"""Step time of a mode a device never measured: inference from training steps only, and the reverse.

Our H200 measured training steps only, and a user's own campaign may too: what does the cost model say of
that device's inference steps? For each device that measured both modes (at least ``MIN_STEPS`` each), the
step stages are fitted without that device's steps of one mode (every other step kept: its other mode, other
devices) and predict the held-out mode's steps. Two readings of the same fit:

- ``lent offset``: what ``flopcast predict`` does: the device's own stage keeps its measured level and takes
  its device kind's train-over-inference offset, learned within the devices that measured both modes
  (:meth:`flopcast.predictor.step_model.LogLinearStage.with_mode_offset`);
- ``measured mode's level``: the held-out steps priced at the level of the mode the device measured (each held
  row read as the other mode: what a one-mode stage gave before the offset was lent).

The op model is fitted on every op row (op rows have no mode; the step time of a mode is what is held out).
Run: ``python experiments/mode_transfer.py [--max-rows N]`` (about 4 minutes with a warm analysis cache).
Prints the table and writes ``experiments/results/mode_transfer.{md,csv}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from evaluate import stage_copy
from result_tables import write_result

from flopcast.datasets.loader import load_datasets, trusted_rows
from flopcast.predictor.analysis_cache import zoo_step
from flopcast.predictor.metrics import error_metrics
from flopcast.predictor.model import CostModel
from flopcast.predictor.step_model import MIN_STEPS
from flopcast.predictor.training import FitConfig, composed_steps, descriptors_of, fit_op_stage, fit_step_stages

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("train", "infer")


def both_mode_devices(steps: pd.DataFrame) -> list[str]:
    """Devices with at least :data:`MIN_STEPS` measured steps of each mode."""
    counts = steps.groupby(["hardware", "mode"]).size().unstack(fill_value=0)
    return sorted(str(h) for h, c in counts.iterrows() if all(c.get(m, 0) >= MIN_STEPS for m in MODES))


def as_other_mode(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each row's mode swapped (train <-> infer): priced at the other mode's level."""
    return frame.assign(mode=np.where(frame["mode"] == "train", "infer", "train"))


def held_mode_rows(model: CostModel, steps: pd.DataFrame, frame: pd.DataFrame, device: str, mode: str) -> pd.DataFrame:
    """Predictions of ``device``'s ``mode`` steps by step stages fitted without them (both readings)."""
    held = ((steps["hardware"] == device) & (steps["mode"] == mode)).to_numpy()
    m = stage_copy(model)
    fit_step_stages(m, steps[~held].reset_index(drop=True), frame[~held].reset_index(drop=True))
    test = frame[held].reset_index(drop=True)
    return pd.DataFrame({"hardware": device, "held_mode": mode, "model": steps.loc[held, "model"].to_numpy(),
                         "measured": steps.loc[held, "time_s"].to_numpy(float),
                         "lent offset": m.step_time.predict(test)[:, 1],
                         "measured mode's level": m.step_time.predict(as_other_mode(test))[:, 1],
                         "op sum": test["ops_s"].to_numpy(float)})


def error_table(p: pd.DataFrame) -> pd.DataFrame:
    """Median / mean APE and median pred/meas of each reading, per device and held-out mode."""
    out = []
    for (device, mode), g in p.groupby(["hardware", "held_mode"], sort=True):
        row = {"device": device, "held-out mode": mode, "n": len(g)}
        for col in ("lent offset", "measured mode's level", "op sum"):
            e = error_metrics(g[col].to_numpy(float), g["measured"].to_numpy(float))
            row |= {f"{col} median %": round(e["median_ape_pct"], 1), f"{col} mean %": round(e["mean_ape_pct"], 1),
                    f"{col} pred/meas": round(float(np.median(g[col] / g["measured"])), 2)}
        out.append(row)
    return pd.DataFrame(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", help="hardware folders (default datasets/)")
    parser.add_argument("--max-rows", type=int, default=0, help="op rows per (device, family) (0: all)")
    args = parser.parse_args()
    ds = load_datasets(args.data or None)
    model = fit_op_stage(ds, FitConfig(max_rows_per_family=args.max_rows or None))
    steps, frame = composed_steps(model, trusted_rows(ds.steps), descriptors_of(ds), zoo_step)
    devices = both_mode_devices(steps)
    print(f"devices with both modes: {', '.join(devices)}", file=sys.stderr)
    p = pd.concat([held_mode_rows(model, steps, frame, d, m) for d in devices for m in MODES], ignore_index=True)
    about = (f"{len(p)} held-out steps on {len(devices)} devices; each device's steps of one mode predicted by step "
             "stages fitted without them (op model on every op row)")
    write_result(RESULTS, "mode_transfer", "python experiments/mode_transfer.py", about, error_table(p))
    return 0


if __name__ == "__main__":
    sys.exit(main())
