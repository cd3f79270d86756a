"""`flopcast` error handling: user errors one line (exit 2), bugs shown as internal (exit 1), missing modules."""

from __future__ import annotations

import importlib

import pytest

import flopcast.features.api as api
from flopcast.features.errors import TargetError
from flopcast.predictor import main as entry
from flopcast.predictor.main import main


def failing_analysis(monkeypatch, error: BaseException) -> None:
    def analyze_config(config):
        raise error

    monkeypatch.setattr(api, "analyze_config", analyze_config)


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (TargetError("no such file: m.py"), 2, "flopcast: error: no such file: m.py"),
        (FileNotFoundError(2, "No such file or directory", "x.json"), 2, "flopcast: error: [Errno 2] No such file"),
        (ValueError("operands could not be broadcast"), 1,
         "flopcast: internal error: ValueError: operands could not be broadcast (a bug in flopcast; rerun with "
         "--debug for the traceback)"),
        (KeyError("hw_peak_fp32"), 1, "flopcast: internal error: KeyError: 'hw_peak_fp32'"),
        (ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow"), 2,
         "flopcast: error: tensorflow is not installed: pip install 'flopcast[tf]'"),
        (ModuleNotFoundError("No module named 'xgboost'", name="xgboost"), 2,
         "flopcast: error: xgboost is not installed, but flopcast depends on it: reinstall flopcast"),
    ],
)
def test_errors_are_told_apart(monkeypatch, capsys, error, code, line):
    failing_analysis(monkeypatch, error)
    assert main(["analyze", "m.py:build"]) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(line), err


@pytest.mark.parametrize("argv", [["--debug", "analyze", "m.py:build"], ["analyze", "m.py:build", "--debug"]])
def test_debug_before_or_after_the_subcommand_shows_the_traceback(monkeypatch, argv):
    failing_analysis(monkeypatch, ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        main(argv)


def test_a_stage_that_cannot_be_imported_says_what_to_install(monkeypatch, capsys):
    real = importlib.import_module

    def import_module(name, *args):
        if name == "flopcast.calibration.cli":
            raise ModuleNotFoundError("No module named 'mlflow'", name="mlflow")
        return real(name, *args)

    monkeypatch.setattr(entry.importlib, "import_module", import_module)
    assert main(["calibrate", "--quick"]) == 2
    assert capsys.readouterr().err.startswith("flopcast: error: mlflow is not installed, but flopcast depends on it")
    assert main(["hardware", "list"]) == 2  # both of the stage's commands are there, and say so
    assert "mlflow is not installed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:  # the other stages still work
        main(["predict", "--help"])
    assert done.value.code == 0
