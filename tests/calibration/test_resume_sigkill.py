"""Kill a running campaign with SIGKILL at random points, rerun it, and lose nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUNNER = (
    "import argparse, sys\n"
    "from flopcast.calibration.cli import add_calibrate_parser\n"
    "p = argparse.ArgumentParser(); add_calibrate_parser(p.add_subparsers())\n"
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
)
KILLS = 5


def _command(out: Path) -> list[str]:
    return [sys.executable, "-c", RUNNER, "calibrate", "--out", str(out), "--quick", "--no-tracking", "--no-energy",
            "--no-progress", "--families", "matmul,elementwise_unary,reduction,softmax", "--configs-per-family", "10",
            "--zoo", "none", "--seed", "3"]


def _finished_keys(out: Path) -> list[str]:
    """Keys of the complete lines on disk (a torn last line has no newline)."""
    path = out / "microbench.jsonl"
    if not path.exists():
        return []
    data = path.read_bytes()
    return [json.loads(line)["key"] for line in data[: data.rfind(b"\n") + 1].splitlines() if line.strip()]


@pytest.mark.integration
def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path):
    out, rng = tmp_path / "out", random.Random(0)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    seen: set[str] = set()
    killed = 0
    for _ in range(KILLS):
        before = len(_finished_keys(out))
        proc = subprocess.Popen(_command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(_finished_keys(out)) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # wait until this run is measuring, then kill it somewhere in the next rows
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed += proc.returncode == -signal.SIGKILL
        seen |= set(_finished_keys(out))
    assert killed == KILLS and 0 < len(seen) < 40, "every kill must land while the campaign runs"
    done = subprocess.run(_command(out), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    final = _finished_keys(out)
    assert len(final) == len(set(final)), "duplicate keys"
    assert seen <= set(final), "finished rows lost"
    assert len(final) == 40  # 4 families x 10 configs: complete after resume
    assert "calibrated" in done.stdout
