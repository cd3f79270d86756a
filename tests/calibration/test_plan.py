"""The campaign plan records where each op config's shapes came from (the ``source_model`` column)."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch

from flopcast.calibration.catalog import get_hardware
from flopcast.calibration.config import CalibrateConfig
from flopcast.calibration.microbench import get_family
from flopcast.calibration.plan import joined_sources, plan_tasks
from flopcast.calibration.provenance import Provenance
from flopcast.features.table import ops_table, ops_table_source, write_ops_frame
from flopcast.features.trace_torch import trace_ops

CPU = get_hardware("cpu-generic-avx2-8c")


def mm_table(*sides: int) -> pd.DataFrame:
    """The op table of one ``torch.mm`` per square side."""
    records = []
    for n in sides:
        def build(n=n):
            a, b = torch.randn(n, n), torch.randn(n, n)
            return lambda: torch.mm(a, b)

        records += [r for r in trace_ops(build) if r.op.startswith("aten.mm")]
    return ops_table(records)


def op_tasks(cfg: CalibrateConfig) -> list:
    return [t for t in plan_tasks(cfg, CPU, Provenance.of(CPU)) if t.kind == "op"]


def test_an_ops_from_table_names_its_model_and_a_shape_of_two_models_names_both(tmp_path):
    gpt, mlp, unnamed = tmp_path / "gpt.parquet", tmp_path / "mlp.parquet", tmp_path / "old.parquet"
    write_ops_frame(mm_table(16, 32), gpt, source="hf:gpt2")
    write_ops_frame(mm_table(32, 64), mlp, source="zoo:mlp-wide")  # a zoo step's table: the bare zoo name
    mm_table(128).to_parquet(unnamed)  # written before op tables recorded their source
    assert ops_table_source(gpt) == "hf:gpt2" and ops_table_source(unnamed) == ""
    cfg = CalibrateConfig(families=("matmul",), configs_per_family=0, zoo=(), ops_from=(gpt, mlp, unnamed))
    tasks = {t.config["m"]: t.source for t in op_tasks(cfg)}
    assert tasks == {16: "hf:gpt2", 32: "hf:gpt2,mlp-wide", 64: "mlp-wide", 128: ""}


def test_an_ops_from_table_without_a_source_is_warned_about(tmp_path, caplog):
    old = tmp_path / "old.parquet"
    mm_table(8).to_parquet(old)
    cfg = CalibrateConfig(families=("matmul",), configs_per_family=0, zoo=(), ops_from=(old,))
    with caplog.at_level(logging.WARNING, logger="flopcast.calibration.plan"):
        op_tasks(cfg)
    assert "names no source model" in caplog.text


@pytest.mark.parametrize(("family", "config", "expected"), [
    ("conv1d", {"k": 80, "stride": 4}, ("m5-audio",)),  # M5's 80-tap stride-4 front end
    ("conv1d_grad_weight", {"k": 80, "stride": 1}, ("m5-audio",)),
    ("conv1d_grad_input", {"k": 3, "stride": 4}, ("m5-audio",)),
    ("conv1d", {"k": 31, "stride": 2}, ()),
    ("conv2d_fwd", {"k": 7, "stride": 2}, ()),
])
def test_sampler_values_widened_for_one_model_derive_from_it(family, config, expected):
    assert get_family(family).derived_from(config) == expected


def test_sampled_configs_carry_their_widened_for_sources():
    cfg = CalibrateConfig(families=("conv1d",), configs_per_family=60, zoo=())
    tasks = op_tasks(cfg)
    wide = [t for t in tasks if t.config["k"] == 80 or t.config["stride"] == 4]
    assert wide and len(wide) < len(tasks)  # both kinds drawn
    assert all(t.source == ("m5-audio" if t in wide else "") for t in tasks)


def test_joined_sources_are_unique_sorted_and_skip_empties():
    assert joined_sources(["b", ""], ["a", "b"], ()) == "a,b"
    assert joined_sources([""], []) == ""
