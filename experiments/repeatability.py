"""How well measured step times repeat: the noise floor under the step-level accuracy figures.

The same zoo steps measured again on the same device (``flopcast calibrate --families none --no-energy
--out RUN`` measures the default zoo steps alone; the committed repeats used ``--families softmax
--configs-per-family 1``, one op row more, before ``none`` existed), compared with the
released measurement as if the second measurement were a prediction of the first. Two rows per pair of
measurements (the first against each repeat, and the repeats against each other): as measured, and with the
later one's median level shift divided out (a device whose speed drifted between the two sessions). With
``--eval`` (the ``eval_steps.csv`` of ``experiments/evaluate.py``), flopcast's leave-one-family-out predictions
of the same device are scored on the same steps, against the released measurement, against each repeat and,
with two repeats or more, against the median of all the measurements (each repeat divided by its level ratio
first). The last row estimates what an exact predictor of each step's mean time would score against one
measurement, from how far the measurements spread around each other (log-normal, independent measurements):
the floor under any model's accuracy figures on this device; another measurement scores worse than that (its
own noise adds), by about sqrt(2) in log units.

With ``--back-to-back N``, a few zoo steps are also built once each and measured ``N`` times in a row in this
process (the campaign's measuring function, timing only): the spread that is left without any gap between the
measurements, on this machine now.

Run: ``python experiments/repeatability.py --first datasets/dev-cpu-amd-epyc-zen4-2c
--again experiments/data/repeat-zen4-cpu-1 [--again ...] [--eval experiments/results/eval_steps.csv]
[--back-to-back 8]``. Prints the tables and writes ``experiments/results/repeatability.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from result_tables import markdown

from flopcast.datasets.loader import DatasetError, load_folder, trusted_rows
from flopcast.predictor.metrics import error_metrics

RESULTS = Path(__file__).resolve().parent / "results"
STEP_KEY = ["model", "batch_size", "mode", "precision", "optimizer"]
"""Columns naming one measured step configuration."""

BACK_TO_BACK_STEPS = (("mlp-deep", 64, "infer", "fp32"), ("resnet50", 1, "infer", "bf16"),
                      ("gpt2-mini", 1, "train", "fp32"))
"""Zoo steps (model, batch size, mode, precision) measured back to back by ``--back-to-back``."""

SHOWN = ("n", "median_ape_pct", "mean_ape_pct", "within_10_pct", "within_25_pct", "spearman")


def steps_of(folder: Path) -> tuple[str, pd.DataFrame]:
    """The device name and trusted step rows (``time_s`` by :data:`STEP_KEY`) of a dataset or campaign folder."""
    ds = load_folder(folder)
    steps = trusted_rows(ds.steps)
    if steps.empty:
        raise DatasetError(f"{folder}: no trusted step rows")
    return next(iter(ds.descriptors)), steps[[*STEP_KEY, "family", "time_s", "measured_at"]]


def paired(first: pd.DataFrame, again: pd.DataFrame) -> pd.DataFrame:
    """Steps measured in both tables: ``time_s`` (first) and ``time_again_s``."""
    return first.merge(again[[*STEP_KEY, "time_s", "measured_at"]].rename(
        columns={"time_s": "time_again_s", "measured_at": "measured_again_at"}), on=STEP_KEY)


def level_ratio(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Median ratio predicted / measured (the level shift between two measurements)."""
    return float(math.exp(np.median(np.log(np.asarray(predicted, float) / np.asarray(measured, float)))))


def row(what: str, scored_against: str, predicted: np.ndarray, measured: np.ndarray) -> dict:
    """One table row: error metrics of ``predicted`` against ``measured`` and their level ratio."""
    metrics = error_metrics(predicted, measured)
    return {"compared": what, "against": scored_against, "level_ratio": level_ratio(predicted, measured),
            **{k: metrics[k] for k in SHOWN}}


def repeat_rows(pairs: pd.DataFrame, label: str, scored_against: str = "first") -> list[dict]:
    """A later measurement scored against an earlier one, as measured and with its level shift divided out.

    ``pairs`` holds the earlier time in ``time_s`` and the later in ``time_again_s``.
    """
    again, first = pairs["time_again_s"].to_numpy(float), pairs["time_s"].to_numpy(float)
    shift = level_ratio(again, first)
    return [row(f"{label} as measured", scored_against, again, first),
            row(f"{label} / its level ratio", scored_against, again / shift, first)]


def noise_sigma(every: pd.DataFrame, labels: list[str]) -> float:
    """Spread of one measurement around its step's mean, in log units, from every pair of measurements.

    Each pair's log ratios, its level shift taken off, have a spread of sigma x sqrt(2) if each measurement is
    the step's mean times an independent log-normal factor; sigma comes from their median absolute value
    (robust: 0.6745 sigma sqrt(2)), pooled over the pairs.
    """
    columns = ["time_s", *(f"time_{label}_s" for label in labels)]
    diffs = []
    for i, a in enumerate(columns):
        for b in columns[i + 1:]:
            d = np.log(every[b].to_numpy(float) / every[a].to_numpy(float))
            diffs.append(d - np.median(d))
    return float(np.median(np.abs(np.concatenate(diffs))) / (0.6745 * math.sqrt(2)))


def perfect_predictor_row(sigma: float, n: int) -> dict:
    """What a predictor of each step's mean time, exact to the last digit, would score against one measurement.

    Under the log-normal model of :func:`noise_sigma`: median error ``exp(0.6745 sigma) - 1``, the share within
    ±10 / 25 % from the normal distribution of the log error (the measurement's error, not the model's).
    """
    def within(pct: float) -> float:
        cdf = lambda x: 0.5 * (1 + math.erf(x / (sigma * math.sqrt(2))))  # noqa: E731 - the normal CDF, once
        return (cdf(-math.log(1 - pct / 100)) - cdf(-math.log(1 + pct / 100))) * 100

    return {"compared": "a perfect predictor of the mean (estimated)", "against": "one measurement",
            "level_ratio": 1.0, "n": n, "median_ape_pct": (math.exp(0.6745 * sigma) - 1) * 100,
            "mean_ape_pct": math.nan, "within_10_pct": within(10), "within_25_pct": within(25), "spearman": math.nan}


def model_rows(every: pd.DataFrame, predictions: pd.DataFrame, labels: list[str]) -> list[dict]:
    """Family-out predictions of the steps of ``every``, scored against the first measurement and each repeat.

    ``every`` holds the first measurement in ``time_s`` and each repeat in ``time_<label>_s``. A step predicted
    once per op-model seed (``evaluate.py --seeds 0 1 2``) is scored once, at the median of its predictions.
    """
    one = predictions.groupby(STEP_KEY[:-1], as_index=False)["time_p50"].median()  # seeds: their median, once
    joined = every.merge(one, on=STEP_KEY[:-1])
    predicted, first = joined["time_p50"].to_numpy(float), joined["time_s"].to_numpy(float)
    out = [row("flopcast family-out", "first", predicted, first)]
    aligned = [first]
    for label in labels:
        again = joined[f"time_{label}_s"].to_numpy(float)
        out.append(row("flopcast family-out", label, predicted, again))
        aligned.append(again / level_ratio(again, first))
    if len(aligned) > 2:  # the median of three or more measurements, each at the first's level: less noise
        out.append(row("flopcast family-out", f"median of {len(aligned)}", predicted, np.median(aligned, axis=0)))
    return out


def back_to_back(n: int, steps: tuple[tuple[str, int, str, str], ...] = BACK_TO_BACK_STEPS) -> pd.DataFrame:
    """Each step built once and measured ``n`` times in a row on this CPU: min, median, max (ms) and spread."""
    from flopcast.calibration.windows import measure
    from flopcast.calibration.zoo_steps import StepConfig, build_step

    out = []
    for model, batch, mode, precision in steps:
        fn = build_step(StepConfig(model, batch, mode, precision, "adamw"), "cpu")
        times_ms = np.array([measure(fn, energy_window_s=0.0).time_s * 1e3 for _ in range(n)])
        median = float(np.median(times_ms))
        out.append({"step": f"{model} b{batch} {mode} {precision}", "n": n, "min_ms": times_ms.min(),
                    "median_ms": median, "max_ms": times_ms.max(),
                    "spread_pct": (times_ms.max() - times_ms.min()) / median * 100})
    return pd.DataFrame(out).round({"min_ms": 2, "median_ms": 2, "max_ms": 2, "spread_pct": 0})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=Path, required=True, help="released dataset folder of the device")
    parser.add_argument("--again", type=Path, action="append", required=True,
                        help="a folder measuring the same steps again on the same device (repeatable)")
    parser.add_argument("--eval", type=Path, help="eval_steps.csv of experiments/evaluate.py (adds flopcast rows)")
    parser.add_argument("--back-to-back", type=int, default=0, metavar="N",
                        help="also measure a few zoo steps N times in a row on this CPU")
    args = parser.parse_args()
    try:
        device, first = steps_of(args.first)
        rows, labels, every, measured = [], [], first, {"first": first}
        for i, folder in enumerate(args.again, 1):
            name, again = steps_of(folder)
            if name != device:
                raise DatasetError(f"{folder} measured {name}, not {device}")
            label = f"repeat{i}"
            for earlier, steps in measured.items():  # against the first, then the repeats before it
                rows += repeat_rows(paired(steps, again), label, earlier)
            pairs = paired(first, again)
            every = every.merge(pairs[[*STEP_KEY, "time_again_s"]].rename(columns={"time_again_s": f"time_{label}_s"}),
                                on=STEP_KEY)
            measured[label] = again
            labels.append(label)
            print(f"{label}: {folder}, {len(pairs)} steps in common, measured {pairs['measured_again_at'].min()} "
                  f"to {pairs['measured_again_at'].max()} (first: {pairs['measured_at'].min()} to "
                  f"{pairs['measured_at'].max()})")
        if args.eval is not None:
            predictions = pd.read_csv(args.eval)
            predictions = predictions[(predictions["hardware"] == device) & (predictions["split"] == "family-out")]
            if predictions.empty:
                raise DatasetError(f"{args.eval}: no family-out predictions of {device}")
            rows += model_rows(every, predictions, labels)
        rows.append(perfect_predictor_row(noise_sigma(every, labels), len(every)))
    except (DatasetError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = pd.DataFrame(rows).round({"level_ratio": 3, "median_ape_pct": 1, "mean_ape_pct": 1,
                                      "within_10_pct": 0, "within_25_pct": 0, "spearman": 3})
    about = f"Step time of {device}: {args.first} measured again ({', '.join(map(str, args.again))})"
    print(about)
    print(table.to_string(index=False))
    text = f"# Measurement repeatability (`python experiments/repeatability.py`)\n\n{about}\n\n{markdown(table)}\n"
    if args.back_to_back > 0:
        steps = back_to_back(args.back_to_back)
        print(f"Each step built once and measured {args.back_to_back} times in a row on this CPU:")
        print(steps.to_string(index=False))
        text += f"\nBack to back on this CPU (`--back-to-back {args.back_to_back}`):\n\n{markdown(steps)}\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "repeatability.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
