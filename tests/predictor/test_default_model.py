"""Regression check of the shipped default model: a small frozen set of measured steps priced within a stated band.

The band, and why: the steps (``default_model_steps.json``) are in the data the default model is trained on, so
this is an in-sample check of the shipped artefact, not an accuracy figure (held-out accuracy is
``experiments/evaluate.py``'s). Held out, flopcast's median step-time error is 12-28 % by device (family-out);
in sample it is lower. A median error above :data:`MEDIAN_APE_BAND_PCT` or any step off by more than
:data:`RATIO_BAND` means the shipped model or the path to it broke (a model that no longer loads, a stage not
applied, a unit slip, a composition change), which no retrain noise explains. Fast: six steps of the zoo, their
analyses cached.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flopcast.calibration.catalog import get_hardware
from flopcast.datasets.loader import DATASETS_DIR, load_folder, trusted_rows
from flopcast.predictor.analysis_cache import zoo_step
from flopcast.predictor.featurize import analysis_device
from flopcast.predictor.io import load_model
from flopcast.predictor.predict import predict_on
from flopcast.predictor.training import descriptors_of

FROZEN = Path(__file__).with_name("default_model_steps.json")
MEDIAN_APE_BAND_PCT = 30.0
"""Largest median absolute step-time error over the frozen steps, %."""
RATIO_BAND = 2.5
"""Largest factor between any step's predicted median and measured time. Not 2: the 2-vCPU Zen 4 VM's smallest
steps are its least repeatable and its weakest fit (LeNet-5 at batch 64, inference: measured 3.06 ms, priced
1.38 ms by model 1-1-d8ff32985c36, every LeNet-5 step of that VM 0.45-0.8x), a known miss of the CPU stage and
not a broken path; a unit slip or a stage left out is 3x and more."""


@pytest.fixture(scope="module")
def priced() -> list[tuple[str, float, float, bool]]:
    """(label, measured s, predicted median s, calibrated) of each frozen step, as ``flopcast predict`` prices it."""
    model = load_model()  # the packaged default
    out = []
    for s in json.loads(FROZEN.read_text())["steps"]:
        ds = load_folder(DATASETS_DIR / s["folder"])
        rows = trusted_rows(ds.steps)
        rows = rows[(rows["model"] == s["model"]) & (rows["batch_size"] == s["batch_size"])
                    & (rows["mode"] == s["mode"]) & (rows["precision"] == s["precision"]) & (rows["loss"] == "mean")]
        assert len(rows), f"frozen step {s} is no longer in datasets/{s['folder']}"
        d = next(iter(descriptors_of(ds).values())) if s["hardware"] == "released" else get_hardware(s["hardware"])
        step = zoo_step(s["model"], s["batch_size"], s["mode"], s["precision"], str(rows["optimizer"].iloc[0]),
                        analysis_device(d.kind))
        p = predict_on(model, step, d, s["precision"], s["mode"])
        out.append((f"{s['model']} b{s['batch_size']} {s['mode']} {s['precision']} on {d.name}",
                    float(rows["time_s"].median()), p.step_time_s[1], p.calibrated))
    return out


def test_the_frozen_steps_are_priced_on_devices_the_model_was_calibrated_on(priced):
    assert [label for label, *_, calibrated in priced if not calibrated] == []


def test_the_shipped_model_prices_the_frozen_steps_within_its_band(priced):
    ratios = np.array([predicted / measured for _, measured, predicted, _ in priced])
    table = "\n".join(f"  {label}: measured {m * 1e3:.2f} ms, predicted {p * 1e3:.2f} ms" for label, m, p, _ in priced)
    assert np.median(np.abs(ratios - 1)) * 100 <= MEDIAN_APE_BAND_PCT, table
    assert np.all((ratios <= RATIO_BAND) & (ratios >= 1 / RATIO_BAND)), table
