"""The ``flopcast`` executable: full output and the right exit code, whether it ends fast or normally."""

from __future__ import annotations

import json
import subprocess
import sys

TARGET = '''
import torch
INPUTS = ["float32[B,16]"]


def build():
    return torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
'''


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flopcast.predictor.main", *args], capture_output=True, text=True,
                          timeout=300)


def test_fast_exit_keeps_the_whole_output_and_code(tmp_path):
    (tmp_path / "net.py").write_text(TARGET)
    done = _run("analyze", str(tmp_path / "net.py:build"), "--batch-size", "4", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["flops"] > 0  # flushed before the process ended
    done = _run("predict", str(tmp_path / "net.py:build"), "--batch-size", "4", "--hardware", "h100,cpu", "--json")
    assert done.returncode == 0, done.stderr
    assert [r["hardware"] for r in json.loads(done.stdout)] == ["h100-sxm", "cpu-generic-avx2-8c"]


def test_fast_exit_after_a_written_file_keeps_the_whole_file(tmp_path):
    (tmp_path / "net.py").write_text(TARGET)
    out = tmp_path / "card.md"
    done = _run("card", str(tmp_path / "net.py:build"), "--batch-size", "4", "--hardware", "h100",
                "--dataset-size", "1000", "-o", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith("## Compute cost") and "**Method.**" in text  # closed before the process ended


def test_errors_keep_their_line_and_code(tmp_path):
    done = _run("predict", str(tmp_path / "absent.py:build"), "--hardware", "h100", "--json")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"flopcast: error: no such file: {tmp_path / 'absent.py'}"]
    assert done.stdout == ""
    done = _run("hardware", "show", "no-such-device")  # a command that exits normally
    assert done.returncode == 2 and done.stderr.startswith("flopcast: error: unknown hardware 'no-such-device'")


def test_a_shape_error_is_one_line_from_the_child_and_the_parent(tmp_path):
    # torch logs a failing meta kernel's traceback before raising; the prefetch child and the parent's
    # in-process retry both trace, so without the tracer silencing that log this printed two walls
    (tmp_path / "net.py").write_text(TARGET)
    for command in (["analyze"], ["predict", "--hardware", "h100,cpu"]):
        done = _run(command[0], str(tmp_path / "net.py:build"), "--input", "float32[B,17]", *command[1:])
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            "flopcast: error: module '0' raised RuntimeError in forward: a and b must have same reduction dim, "
            "but got [1, 17] X [16, 16]."]
