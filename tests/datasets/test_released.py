"""Physics of the measurement tables committed under ``datasets/`` (the released data, not synthetic rows)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.datasets.loader import hardware_folders, load_datasets, trusted_rows
from flopcast.datasets.validate import (
    MIN_RANK_CORRELATION,
    allowed_flops_per_s,
    degenerate_matmul,
    peak_tolerances,
    row_peak_flops_per_s,
    spearman,
    validate,
)
from flopcast.features.attention_mask import executed_flops

RELEASE = Path(__file__).resolve().parents[2] / "datasets"
FOLDERS = hardware_folders([RELEASE])


@pytest.fixture(scope="module")
def ds():
    if not FOLDERS:
        pytest.skip("no released hardware folder")
    return load_datasets([RELEASE])


def test_every_folder_has_descriptor_meta_and_both_tables():
    assert FOLDERS, "datasets/ holds no hardware folder"
    for folder in FOLDERS:
        meta = json.loads((folder / "meta.json").read_text())
        assert {"schema_version", "hardware", "campaigns", "torch_version"} <= set(meta)
        assert (folder / "microbench.parquet").is_file() and (folder / "steps.parquet").is_file()
        d = HardwareDescriptor.from_dict(json.loads((folder / "descriptor.json").read_text()))
        if meta.get("external"):  # imported: where from, which commit, under which license, whom to cite
            assert {"source_repository", "source_commit", "license", "citation", "measured"} <= set(meta)
            assert d.extra["measured_by"] and not d.calibrated  # its spec sheet; the rows are someone else's
        else:
            assert "measured_from" in meta
            assert d.calibrated and d.measured_bandwidth_bytes_per_s and d.launch_overhead_s


def test_release_passes_validation(ds):
    assert validate(ds) == []


def test_matmul_like_throughput_below_spec_peak(ds):
    mb = trusted_rows(ds.microbench)
    rows = mb[mb["category"].isin(["matmul", "conv", "attention"]) & (mb["flops"] > 0)]
    assert len(rows) > 20
    throughput = executed_flops(rows) / rows["time_s"]
    assert (throughput <= allowed_flops_per_s(rows, peak_tolerances(ds.descriptors))).all()
    ratio = throughput / row_peak_flops_per_s(rows)
    # the best GEMM of each device reaches a real share of its peak (a broken timer would not)
    assert ratio.groupby(rows["hardware"]).max().min() > 0.2


def test_measured_ceilings_below_spec(ds):
    tolerance = peak_tolerances(ds.descriptors)
    for name, d in ds.descriptors.items():
        desc = HardwareDescriptor.from_dict(d)
        if desc.kind == "gpu" and desc.measured_bandwidth_bytes_per_s:  # a CPU's spec is a guess; a GPU's its sheet
            assert desc.measured_bandwidth_bytes_per_s <= 1.1 * desc.memory_bandwidth_bytes_per_s
        for key, measured in (desc.measured_peak_flops_per_s or {}).items():
            assert 0 < measured <= tolerance[name] * desc.peak_flops_per_s[key], (name, key)


def test_matmul_time_grows_with_flops(ds):
    mb = trusted_rows(ds.microbench)
    for (hw, dtype), g in mb[mb["family"] == "matmul"].groupby(["hardware", "dtype"]):
        big = g[(g["time_s"] > 50 * g["hw_launch_overhead_s"]) & ~g["config"].map(degenerate_matmul).astype(bool)]
        if len(big) >= 6:
            assert spearman(big["flops"], big["time_s"]) >= MIN_RANK_CORRELATION, (hw, dtype)


def test_energy_positive_and_below_tdp_times_time(ds):
    for table in (ds.microbench, ds.steps):
        rows = trusted_rows(table)
        rows = rows[rows["energy_source"] == "nvml"]
        if rows.empty:
            continue
        energy = rows["energy_j"].astype(float)
        assert (energy > 0).all()
        assert (energy <= 1.1 * rows["hw_tdp_w"] * rows["time_s"]).all()
        # average power above the measured idle floor's half and below TDP
        power = energy / rows["time_s"]
        assert np.median(power) < rows["hw_tdp_w"].iloc[0]


def test_gpu_steps_cover_several_families_batches_and_precisions(ds):
    gpu = ds.steps[ds.steps["hw_kind"] == "gpu"]
    if gpu.empty:
        pytest.skip("no GPU steps released")
    assert gpu["family"].nunique() >= 5
    assert gpu["precision"].nunique() >= 2
    assert gpu.groupby("model")["batch_size"].nunique().max() >= 2


def test_step_rows_carry_todays_analysis_of_their_config(ds):
    """Released step rows were refreshed (``python -m flopcast.datasets.refresh``): a sample of the smallest
    inference and training steps of every device matches ``analyze`` of the same config now."""
    from flopcast.calibration.zoo_steps import StepConfig, static_columns

    sample = ds.steps.sort_values(["params", "batch_size", "key"]).groupby(["hardware", "mode"]).head(2)
    assert len(sample) >= 2 * len(ds.hardware)
    for _, r in sample.iterrows():
        config = StepConfig.from_row(r)
        now, problem = static_columns(config, r["device_kind"])
        assert not problem
        assert (r["flops"], r["op_count"], r["params"]) == (now["flops"], now["op_count"], now["params"]), config
