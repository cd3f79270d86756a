from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from mlflow.tracking import MlflowClient

from flopcast.calibration.campaign import CampaignResult, run_campaign
from flopcast.calibration.config import CalibrateConfig, CalibrateConfigError
from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.plan import interleave, plan_tasks, spread
from flopcast.calibration.provenance import Provenance
from flopcast.datasets.schema import MICROBENCH_COLUMNS, STEP_COLUMNS
from flopcast.features.table import ops_table, write_ops_frame
from flopcast.features.trace_torch import trace_ops

MATMUL_SIDES = (8, 32, 96, 192, 320, 448)


def _spearman(x: list[float], y: list[float]) -> float:
    return float(pd.Series(x).corr(pd.Series(y), method="spearman"))


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> tuple[CampaignResult, CalibrateConfig]:
    tmp = tmp_path_factory.mktemp("campaign")
    records = []
    for n in MATMUL_SIDES:  # shapes "seen in an analysed model", fed through --ops-from

        def build(n=n):
            a, b = torch.randn(n, n), torch.randn(n, n)
            return lambda: torch.mm(a, b)

        records += [r for r in trace_ops(build) if r.op.startswith("aten.mm")]
    ops = tmp / "ops.parquet"
    write_ops_frame(ops_table(records), ops, source="zoo:mlp-small")
    cfg = CalibrateConfig(
        out_dir=tmp / "out", quick=True, configs_per_family=1, zoo=("mlp-small", "lenet5"),
        step_batch_sizes=(2,), ops_from=(ops,), min_window_s=0.01, energy_share=0.05, energy_window_s=0.2,
        tracking_uri=f"sqlite:///{tmp}/mlflow.db", progress=False,
    )
    return run_campaign(cfg), cfg


def test_tables_have_the_schema_and_provenance(campaign):
    result, cfg = campaign
    micro, steps = pq.read_table(cfg.out_dir / "microbench.parquet"), pq.read_table(cfg.out_dir / "steps.parquet")
    assert micro.column_names == list(MICROBENCH_COLUMNS)
    assert steps.column_names == list(STEP_COLUMNS)
    df = micro.to_pandas()
    assert set(df["family"]) >= {"matmul", "conv2d_fwd", "norm", "optimizer"}
    assert (df["hardware"] == result.descriptor.name).all()
    assert (df["campaign"] == result.campaign).all()
    assert df["key"].is_unique
    assert df["measured_at"].str.endswith("+00:00").all()
    assert (df["torch_version"] == torch.__version__).all()
    assert result.measured == result.planned == len(df) + steps.num_rows
    assert df["energy_source"].ne("none").any()  # a share of the configs got an energy window


def test_rows_of_ops_from_shapes_name_their_source_model(campaign):
    df = pd.read_parquet(campaign[1].out_dir / "microbench.parquet")
    configs = df["config"].map(json.loads)
    from_table = configs.map(lambda c: c.get("variant") == "mm" and c["m"] == c["k"] == c["n"] in MATMUL_SIDES)
    assert from_table.sum() == len(MATMUL_SIDES) and (df.loc[from_table, "source_model"] == "mlp-small").all()
    assert set(df.loc[~from_table, "source_model"]) <= {"", "m5-audio"}  # sampled (conv1d's M5 kernels excepted)


def test_times_are_positive_or_flagged(campaign):
    df = pd.read_parquet(campaign[1].out_dir / "microbench.parquet")
    good = df["time_s"].map(lambda t: math.isfinite(t) and t > 0)
    assert (good | ~df["trusted"]).all()
    assert df.loc[~df["trusted"], "reason"].str.len().gt(0).all()  # flagged rows say why


def test_matmul_time_grows_with_flops(campaign):
    df = pd.read_parquet(campaign[1].out_dir / "microbench.parquet")
    mm = df[df["family"] == "matmul"]
    configs = mm["config"].map(json.loads)
    mm = mm[configs.map(lambda c: c["variant"] == "mm" and c["m"] == c["k"] == c["n"] in MATMUL_SIDES)]
    assert len(mm) == len(MATMUL_SIDES)
    assert (mm["flops"] > 0).all()
    # the fastest window is the least disturbed by other processes on a shared CI machine
    rho = _spearman(list(mm["flops"]), list(mm["time_s_min"]))
    assert rho > 0.8, mm[["flops", "time_s", "time_s_min"]].to_string()


def test_zoo_steps_measured_with_analysis(campaign):
    steps = pd.read_parquet(campaign[1].out_dir / "steps.parquet")
    assert set(steps["model"]) == {"mlp-small", "lenet5"}
    assert set(steps["mode"]) == {"train", "infer"}
    assert (steps["time_s"] > 0).all() and (steps["measured_peak_memory_bytes"] > 0).all()
    assert (steps["params"] > 0).all() and (steps["op_count"] > 0).all()
    assert (steps["energy_source"] != "none").all()


def test_descriptor_is_calibrated_with_ceilings(campaign):
    d = HardwareDescriptor.load(campaign[1].out_dir / "descriptor.json")
    assert d.calibrated and d.launch_overhead_s > 0
    assert d.measured_peak_flops_per_s["fp32"] > 0 and d.measured_bandwidth_bytes_per_s > 0
    assert d.idle_power_w is None or d.idle_power_w > 0


def test_campaign_is_an_mlflow_run(campaign):
    result, cfg = campaign
    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    run = client.get_run(result.campaign)
    assert client.get_experiment(run.info.experiment_id).name == f"flopcast-{result.descriptor.name}"
    assert run.info.status == "FINISHED"
    assert run.data.params["hw.name"] == result.descriptor.name and "torch_version" in run.data.params
    assert run.data.metrics["rows_microbench"] == result.rows["microbench"]
    assert run.data.metrics["launch_overhead_s"] > 0
    assert "campaign_emissions_kg_co2eq" in run.data.metrics or "codecarbon_error" in run.data.tags
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"microbench.parquet", "steps.parquet",
                                                                         "descriptor.json"}


def test_rerun_skips_every_done_key(campaign):
    _, cfg = campaign
    again = run_campaign(cfg)
    assert again.measured == 0 and again.already_done == again.planned


def test_budget_stops_early_and_keeps_rows(tmp_path):
    cfg = CalibrateConfig(out_dir=tmp_path, quick=True, configs_per_family=4, zoo=(), track=False,
                          energy=False, min_window_s=0.01, budget_minutes=0.05, progress=False)
    result = run_campaign(cfg)
    assert result.stopped_by_budget and 0 < result.measured < result.planned
    assert result.rows["microbench"] == result.measured


def test_no_families_plans_the_model_steps_alone_and_none_plans_every_family():
    released = Path(__file__).resolve().parents[2] / "datasets" / "dev-cpu-amd-epyc-zen4-2c" / "descriptor.json"
    cpu = HardwareDescriptor.from_dict(json.loads(released.read_text()))
    steps_only = CalibrateConfig(families=(), zoo=("mlp-small",), track=False)
    tasks = plan_tasks(steps_only, cpu, Provenance.of(cpu))
    assert tasks and {t.kind for t in tasks} == {"step"}  # `calibrate --families none`: a repeat of the steps
    every = plan_tasks(CalibrateConfig(zoo=(), configs_per_family=1, track=False), cpu, Provenance.of(cpu))
    assert len({t.name for t in every}) > 10  # families=None: all of them


def test_spread_prefixes_cover_the_size_range():
    order = spread(list(range(16)), size=float)
    assert sorted(order) == list(range(16))
    assert min(order[:4]) <= 1 and max(order[:4]) >= 12


def test_interleave_advances_streams_in_proportion():
    merged = interleave([list("aaaaaaaa"), list("bb"), list("c")])
    assert sorted(merged) == sorted("aaaaaaaabbc")
    first_half = merged[: len(merged) // 2]
    assert {"a", "b", "c"} <= set(first_half) or {"a", "b"} <= set(first_half)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("device", "tpu", "--device"), ("dtypes", ("fp8",), "unknown dtype"), ("budget_minutes", 0, "budget"),
    ("energy_share", 2.0, "energy share"), ("shard_index", 3, "shard 3"),
])
def test_invalid_config_is_one_clear_error(field, value, match):
    with pytest.raises(CalibrateConfigError, match=match):
        CalibrateConfig(**{field: value})
