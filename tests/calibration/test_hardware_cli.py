from __future__ import annotations

import argparse

import pytest

from flopcast.calibration.catalog import UnknownHardwareError, get_hardware
from flopcast.calibration.descriptor import DescriptorError
from flopcast.calibration.hardware_cli import add_hardware_parser


@pytest.fixture
def run(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    parser = argparse.ArgumentParser(prog="flopcast")
    add_hardware_parser(parser.add_subparsers(dest="command", required=True))

    def invoke(*argv: str) -> str:
        args = parser.parse_args(["hardware", *argv])
        assert args.func(args) == 0
        return capsys.readouterr().out

    return invoke


def test_list(run):
    out = run("list")
    for name in ("h100-sxm", "mi300x", "cpu-epyc-genoa-32c"):
        assert name in out
    assert "989" in out  # H100 dense bf16 TFLOP/s


def test_show_alias(run):
    out = run("show", "h100")
    assert "NVIDIA H100 80GB HBM3" in out and "494.7" in out and "3.35 TB/s" in out


def test_show_errors(run):
    with pytest.raises(UnknownHardwareError, match="did you mean"):
        run("show", "h1000")
    with pytest.raises(DescriptorError, match="not found"):
        run("show", "nope/missing.json")


def test_probe_out_round_trip(run, tmp_path):
    path = tmp_path / "cpu.json"
    out = run("probe", "--device", "cpu", "--out", str(path))
    assert "local-cpu-" in out and "wrote" in out
    d = get_hardware(path)
    assert d.kind == "cpu" and not d.calibrated
    assert d.name in run("show", str(path))


def test_probe_measure_quick(run, tmp_path):
    path = tmp_path / "cpu.json"
    out = run("probe", "--device", "cpu", "--measure", "--quick", "--out", str(path))
    d = get_hardware(path)
    assert d.calibrated and d.measured_peak_flops_per_s["fp32"] > 0 and d.launch_overhead_s > 0
    assert "launch overhead" in out and "measured" in out


def test_parser_requires_a_subcommand():
    parser = argparse.ArgumentParser(prog="flopcast")
    add_hardware_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["hardware"])


def test_list_shows_the_calibrated_devices_of_the_store_and_which_is_this_machine(run, tmp_path, monkeypatch, capsys):
    import json

    from flopcast.calibration import hardware_cli
    from flopcast.calibration.descriptor import HardwareDescriptor
    from flopcast.calibration.user_store import ENTRY_FILE, HOME_ENV, save_campaign
    from tests.datasets.synthetic import DEVICES, write_folder

    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    assert "calibrated with `flopcast calibrate`" not in run("list")  # nothing filed: the catalog alone
    save_campaign(write_folder(tmp_path / "a", "test-cpu", n_ops=20))
    gpu = save_campaign(write_folder(tmp_path / "b", "test-gpu", n_ops=20))
    monkeypatch.setattr(hardware_cli, "probe_local", lambda: [HardwareDescriptor.from_dict(DEVICES["test-cpu"])])
    out = run("list")
    store = out[out.index("calibrated with `flopcast calibrate`"):]
    cpu_line = next(line for line in store.splitlines() if "test-cpu" in line)
    gpu_line = next(line for line in store.splitlines() if "test-gpu" in line)
    assert "yes: --hardware local" in cpu_line and " 20 │" in cpu_line and " 48 │" in cpu_line
    assert "│ no " in gpu_line
    (gpu.path / ENTRY_FILE).write_text(json.dumps({"format": 99}))
    args = hardware_cli.argparse.Namespace()
    assert hardware_cli.cmd_list(args) == 0
    captured = capsys.readouterr()
    assert "test-gpu" not in captured.out.split("calibrated with")[-1]
    (warning,) = captured.err.splitlines()
    assert warning.startswith("flopcast: warning: ignoring a stored calibration: ") and "stale" in warning
