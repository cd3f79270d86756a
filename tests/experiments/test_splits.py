"""experiments/splits.py: the frozen final test split and the leak rule through derived shapes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from flopcast.datasets.loader import load_datasets, trusted_rows
from tests.experiments.conftest import EXPERIMENTS, load_script


@pytest.fixture(scope="module")
def splits():
    return load_script("splits")


def rows(*specs: tuple[str, dict, str]) -> pd.DataFrame:
    """Microbenchmark rows of (family, config, source_model)."""
    return pd.DataFrame({"family": [f for f, _, _ in specs], "config": [json.dumps(c) for _, c, _ in specs],
                         "source_model": [s for _, _, s in specs]})


def test_the_frozen_split_is_its_documented_draw_and_names_released_steps(splits):
    stored = json.loads((EXPERIMENTS / "test_split.json").read_text())
    split = splits.FrozenSplit.load()
    drawn = np.random.default_rng(20).choice(stored["families_drawn_from"], 2, replace=False)
    assert list(split.families) == sorted(drawn.tolist())  # nobody picked (or re-picked) the test families
    steps = load_datasets(None).steps
    for family in split.families:  # each frozen family has measured steps on several devices
        assert steps.loc[steps["family"] == family, "hardware"].nunique() >= 3
    for device in split.device_steps:
        assert (steps["hardware"] == device).sum() > 0


def test_test_steps_are_the_frozen_families_on_every_device_and_every_step_of_the_frozen_device(splits, data):
    split = splits.FrozenSplit(families=("fa",), device_steps=("test-gpu",))
    test = split.is_test_step(data.steps)
    expected = (data.steps["family"] == "fa") | (data.steps["hardware"] == "test-gpu")
    assert test.tolist() == expected.tolist() and 0 < test.sum() < len(test)
    assert len(splits.final_test_steps(data, split)) == len(trusted_rows(data.steps[expected]))


def test_development_drops_the_test_steps_and_the_op_rows_derived_from_test_families(splits, data):
    mb = data.microbench.copy()
    mb.loc[mb.index[:5], "source_model"] = "a2"  # family fa (the step table says so)
    mb.loc[mb.index[5:8], "source_model"] = "b1"  # family fb: not frozen
    split = splits.FrozenSplit(families=("fa",), device_steps=("test-gpu",))
    dev = splits.development(replace(data, microbench=mb), split)
    assert not split.is_test_step(dev.steps).any()
    assert len(dev.steps) == int((~split.is_test_step(data.steps)).sum())
    assert set(dev.microbench["key"]) == set(mb["key"].iloc[5:])  # fb's derived rows and sampled rows stay
    assert set(dev.descriptors) == {"test-cpu", "test-gpu"}  # the frozen device's op rows stay trainable


def test_derived_models_read_the_source_column_and_the_widened_sampler_values(splits):
    mb = rows(("matmul", {"m": 8}, "hf:gpt2,mlp-wide"),
              ("conv1d", {"k": 80, "stride": 4}, ""),  # an older row: the sampler's M5 widening says it
              ("conv1d_grad_input", {"k": 3, "stride": 1}, ""),
              ("conv1d", {"k": 80, "stride": 1}, "lstm-lm"),
              ("imported_family", {}, ""))
    assert splits.derived_models(mb).tolist() == [frozenset({"hf:gpt2", "mlp-wide"}), frozenset({"m5-audio"}),
                                                  frozenset(), frozenset({"lstm-lm", "m5-audio"}), frozenset()]


@pytest.mark.parametrize(("families", "expected"), [
    (("conv1d",), [False, True, False, True]),
    (("mlp",), [True, False, False, False]),
    (("rnn",), [False, False, False, True]),
    (("vit",), [False, False, False, False]),
])
def test_the_leak_rule_leaves_out_rows_derived_from_a_model_of_a_held_out_family(splits, families, expected):
    mb = rows(("matmul", {"m": 8}, "hf:gpt2,mlp-wide"), ("conv1d", {"k": 80, "stride": 4}, ""),
              ("conv1d", {"k": 3, "stride": 1}, ""), ("conv1d", {"k": 5, "stride": 1}, "lstm-lm,m5-audio"))
    family_of = {"mlp-wide": "mlp", "m5-audio": "conv1d", "lstm-lm": "rnn"}  # hf:gpt2 is no zoo model: no family
    assert splits.derived_from(mb, families, family_of).tolist() == expected


def test_model_families_come_from_the_zoo_and_the_step_table(splits, data):
    family_of = splits.model_families(data.steps)
    assert family_of["a1"] == "fa" and family_of["m5-audio"] == "conv1d" and family_of["mlp-wide"] == "mlp"
