from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from flopcast.calibration import campaign
from flopcast.calibration.campaign import NoDeviceError
from flopcast.calibration.catalog import UnknownHardwareError
from flopcast.calibration.cli import add_calibrate_parser, config_from_args
from flopcast.calibration.config import CalibrateConfigError
from flopcast.calibration.slurm import SlurmOptionsError
from flopcast.calibration.tracking import TrackingUnreachableError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flopcast")
    add_calibrate_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


def test_flags_become_one_config(tmp_path):
    args = parse("calibrate", "--device", "cpu", "--out", str(tmp_path), "--quick", "--budget-minutes", "2.5",
                 "--families", "matmul,norm", "--dtypes", "fp32,bf16", "--zoo", "mlp-small,lenet5", "--country", "DEU",
                 "--tracking-uri", "http://h:5000", "--experiment", "e", "--ops-from", "a.parquet", "--seed", "7",
                 "--no-energy", "--array", "3")
    cfg = config_from_args(args)
    assert (cfg.out_dir, cfg.quick, cfg.budget_minutes) == (tmp_path, True, 2.5)
    assert cfg.families == ("matmul", "norm") and cfg.dtypes == ("fp32", "bf16")
    assert cfg.zoo == ("mlp-small", "lenet5") and cfg.country == "DEU" and cfg.ops_from == (Path("a.parquet"),)
    assert (cfg.tracking_uri, cfg.experiment, cfg.seed, cfg.energy, cfg.array) == ("http://h:5000", "e", 7, False, 3)
    assert config_from_args(parse("calibrate", "--zoo", "none")).zoo == ()
    assert config_from_args(parse("calibrate", "--families", "none")).families == ()


def test_defaults():
    cfg = config_from_args(parse("calibrate"))
    assert cfg.device == "cpu" and cfg.out_dir == Path("flopcast-calibration") and cfg.country == "FRA"
    assert cfg.tracking_uri is None and cfg.track and cfg.energy


def test_hardware_commands_are_composed():
    args = parse("hardware", "list")
    assert callable(args.func)


@pytest.mark.parametrize(("argv", "error", "match"), [
    (("--families", "matmull"), CalibrateConfigError, "unknown famil"),
    (("--zoo", "resnet19"), CalibrateConfigError, "resnet18"),
    (("--dtypes", "fp8"), CalibrateConfigError, "unknown dtype"),
    (("--configs-per-family", "0"), CalibrateConfigError, "give --ops-from"),
    (("--configs-per-family", "-1"), CalibrateConfigError, "configs per family must be >= 0"),
    (("--slurm", "--array", "0"), SlurmOptionsError, "--array"),
    (("--slurm", "--gres", "gpu", "--dry-run"), SlurmOptionsError, "--gres"),
])
def test_bad_options_are_value_errors_with_one_line(argv, error, match):
    args = parse("calibrate", *argv)
    with pytest.raises(error, match=match) as info:
        args.func(args)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_cuda_without_gpu_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(campaign.torch.cuda, "is_available", lambda: False)
    args = parse("calibrate", "--device", "cuda", "--out", str(tmp_path))
    with pytest.raises(NoDeviceError, match="no CUDA GPU"):
        args.func(args)


def test_unknown_hardware_name(tmp_path):
    args = parse("calibrate", "--hardware", "h1000", "--out", str(tmp_path), "--no-tracking")
    with pytest.raises(UnknownHardwareError):
        args.func(args)


def test_unreachable_tracking_uri_fails_before_measuring(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = parse("calibrate", "--out", str(tmp_path / "out"), "--tracking-uri", f"http://127.0.0.1:{port}")
    with pytest.raises(TrackingUnreachableError):
        args.func(args)
    assert not (tmp_path / "out").exists()


def test_dry_run_prints_the_script(capsys, tmp_path):
    args = parse("calibrate", "--slurm", "--partition", "p", "--gres", "gpu:a100:1", "--array", "2", "--dry-run",
                 "--out", str(tmp_path))
    assert args.func(args) == 0
    assert "#SBATCH --array=0-1%2" in capsys.readouterr().out


def test_zoo_steps_are_the_plain_step_unless_asked():
    from flopcast.features.step_options import StepOptions

    assert config_from_args(parse("calibrate")).step == StepOptions()  # comparable with the released steps
    cfg = config_from_args(parse("calibrate", "--loss", "auto", "--grad-clip", "1", "--grad-accumulation", "2",
                                 "--fused-optimizer", "--grad-scaler"))
    assert cfg.step == StepOptions("auto", 1.0, 2, True, True)
    with pytest.raises(ValueError, match="--grad-accumulation must be >= 1"):
        config_from_args(parse("calibrate", "--grad-accumulation", "0"))


@pytest.fixture
def fake_campaign(monkeypatch, tmp_path):
    """``run_campaign`` replaced by one that writes a synthetic campaign of ``test-cpu`` into ``--out``."""
    from flopcast.calibration import filing
    from flopcast.calibration.campaign import CampaignResult
    from flopcast.calibration.descriptor import HardwareDescriptor
    from flopcast.calibration.tracking import Emissions
    from flopcast.calibration.user_store import HOME_ENV
    from tests.datasets.synthetic import DEVICES, write_folder

    d = HardwareDescriptor.from_dict(DEVICES["test-cpu"])

    def run(cfg):
        folder = write_folder(cfg.out_dir, "test-cpu", n_ops=20)
        return CampaignResult(folder, d, "c1", None, 68, 0, 68, {"microbench": 20, "steps": 48}, 1.0, 3.0, False,
                              Emissions(1e-6, 1e-5))

    monkeypatch.setattr(campaign, "run_campaign", run)
    monkeypatch.setattr(filing, "probe_local", lambda: [d])
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    return tmp_path


def test_calibrate_ends_by_filing_the_campaign_and_printing_the_predict_that_uses_it(fake_campaign, capsys):
    args = parse("calibrate", "--quick", "--out", str(fake_campaign / "out"), "--no-tracking")
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith(f"filed as this machine's calibration in {fake_campaign / 'home' / 'calibrations'}")
    assert lines[-1].startswith("predict with it: flopcast predict ") and lines[-1].endswith("--hardware local")


def test_no_store_leaves_the_store_alone(fake_campaign, capsys):
    args = parse("calibrate", "--quick", "--out", str(fake_campaign / "out"), "--no-tracking", "--no-store")
    assert config_from_args(args).store is False
    assert args.func(args) == 0
    assert "filed" not in capsys.readouterr().out and not (fake_campaign / "home").exists()
