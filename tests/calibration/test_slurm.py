from __future__ import annotations

import pytest

from flopcast.calibration.config import CalibrateConfig
from flopcast.calibration.slurm import SlurmOptionsError, check_options, sbatch_script, submit, submit_jobs
from flopcast.calibration.store import Store
from flopcast.datasets.schema import MICROBENCH_COLUMNS, STEP_COLUMNS


def test_dry_run_prints_the_sbatch_script(tmp_path):
    cfg = CalibrateConfig(device="cuda", out_dir=tmp_path, slurm=True, partition="gpu", gres="gpu:h100:1",
                          array=4, time_min=30, dry_run=True)
    script = submit(cfg)
    assert script.startswith("#!/bin/bash")
    for line in ("#SBATCH --array=0-3%4", "#SBATCH --partition=gpu", "#SBATCH --gres=gpu:h100:1",
                 "#SBATCH --time=30", "#SBATCH --job-name=flopcast-calibrate"):
        assert line in script
    assert "submitit.core._submit" in script and str(tmp_path.resolve() / "slurm") in script
    assert not list(tmp_path.iterdir())  # nothing submitted, nothing written


@pytest.mark.parametrize(("kw", "match"), [
    ({"array": 0}, "--array must be >= 1"),
    ({"gres": "h100"}, "--gres 'h100' is malformed"),
    ({"gres": "gpu:h100:"}, "malformed"),
    ({"time_min": 0}, "--time-min"),
    ({"partition": "a b"}, "--partition"),
])
def test_invalid_options_are_one_clear_error(kw, match):
    with pytest.raises(SlurmOptionsError, match=match):
        check_options(CalibrateConfig(slurm=True, **kw))
    with pytest.raises(SlurmOptionsError):
        sbatch_script(CalibrateConfig(slurm=True, dry_run=True, **kw))


def test_valid_gres_forms():
    for gres in ("gpu:1", "gpu:a100:2", "gpu:nvidia_h100_80gb_hbm3:1"):
        check_options(CalibrateConfig(gres=gres))


@pytest.mark.integration
def test_local_two_shard_array_merges_without_duplicates(tmp_path):
    cfg = CalibrateConfig(out_dir=tmp_path / "out", quick=True, configs_per_family=3,
                          families=("matmul", "elementwise_binary"), zoo=("mlp-small",), step_batch_sizes=(2,),
                          step_modes=("infer",), energy=False, track=False, min_window_s=0.01, array=2,
                          slurm=True, progress=False)
    jobs = submit_jobs(cfg, cluster="local")
    results = [j.result() for j in jobs]
    assert sorted(r["shard"] for r in results) == [0, 1]
    assert sum(r["planned"] for r in results) == 7  # 2 families x 3 configs + 1 step, split over 2 shards
    micro = Store(cfg.out_dir, "microbench", MICROBENCH_COLUMNS)
    steps = Store(cfg.out_dir, "steps", STEP_COLUMNS)
    assert {p.name for p in micro.files()} == {"microbench.shard-0.jsonl", "microbench.shard-1.jsonl"}
    keys = [r["key"] for r in micro.rows()] + [r["key"] for r in steps.rows()]
    assert len(keys) == len(set(keys)) == 7
    import pyarrow.parquet as pq

    assert pq.read_table(cfg.out_dir / "microbench.parquet").num_rows == 6  # the last shard's export has all
    rerun = submit_jobs(cfg, cluster="local")
    assert sum(j.result()["measured"] for j in rerun) == 0  # a resubmitted array resumes
