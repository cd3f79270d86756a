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
