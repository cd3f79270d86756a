"""``calibrate --collectives``: skipped cleanly without two GPUs, its SLURM job, its options; NCCL on a GPU node."""

from __future__ import annotations

import pytest

from flopcast.calibration import collective_launch
from flopcast.calibration.config import CalibrateConfig, CalibrateConfigError


@pytest.mark.parametrize("gpus", [0, 1])
def test_fewer_than_two_gpus_skip_with_one_line_and_measure_nothing(monkeypatch, tmp_path, gpus):
    monkeypatch.setattr(collective_launch, "visible_gpus", lambda: gpus)
    called = []
    monkeypatch.setattr(collective_launch.subprocess, "run", lambda *a, **k: called.append(a))
    text = collective_launch.run_here(CalibrateConfig(out_dir=tmp_path / "out", collectives=True))
    assert text.startswith("calibrate --collectives: skipped") and f"sees {gpus}" in text and "\n" not in text
    assert not called and not (tmp_path / "out").exists()


def test_torchrun_runs_one_rank_per_gpu_of_the_bench():
    cmd = collective_launch.torchrun_command(CalibrateConfig(collectives=True, hardware="h100-sxm"), 8)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"] and "--nproc-per-node=8" in cmd
    assert cmd[cmd.index("-m", 3) + 1] == "flopcast.calibration.collective_bench"
    assert cmd[cmd.index("--hardware") + 1] == "h100-sxm"


def test_slurm_dry_run_asks_one_task_per_gpu_on_every_node(tmp_path):
    pytest.importorskip("submitit")
    cfg = CalibrateConfig(out_dir=tmp_path, collectives=True, slurm=True, dry_run=True, nodes=2, gres="gpu:h100:4",
                          partition="gpu")
    script = collective_launch.run_collectives_command(cfg)
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=4" in script
    assert "#SBATCH --gres=gpu:h100:4" in script and "#SBATCH --partition=gpu" in script


@pytest.mark.parametrize(("options", "message"), [
    ({"slurm": True, "dry_run": True, "nodes": 2}, "needs --gres gpu"),
])
def test_slurm_job_without_gpus_per_node_is_refused(tmp_path, options, message):
    with pytest.raises(CalibrateConfigError, match=message):
        collective_launch.run_collectives_command(CalibrateConfig(out_dir=tmp_path, collectives=True, **options))


@pytest.mark.parametrize("options", [{"nodes": 2}, {"nodes": 2, "collectives": True}, {"nodes": 0}])
def test_several_nodes_only_for_a_slurm_collectives_job(options):
    with pytest.raises(CalibrateConfigError, match="--nodes"):
        CalibrateConfig(**options)


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.skipif(_gpus() < 2, reason="needs 2 or more CUDA GPUs (NCCL)")
def test_nccl_on_this_node_writes_an_interconnect_file(tmp_path):
    text = collective_launch.run_here(CalibrateConfig(out_dir=tmp_path, collectives=True))
    assert "predict with it" in text and (tmp_path / collective_launch.INTERCONNECT_FILE).is_file()
