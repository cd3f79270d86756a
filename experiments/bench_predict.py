"""Wall time of `flopcast predict` end to end (fresh process: imports, analysis, prediction) on reference targets.

Run: ``python experiments/bench_predict.py [--repeats 3] [--hardware h100]``; prints a table and writes
``experiments/results/bench_predict.md``. Target: Llama-7B train step (bs 1, seq 2048, bf16) < 10 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from flopcast.calibration.probe import cpu_identity

RESULTS = Path(__file__).resolve().parent / "results"
LLAMA_7B = ["hf:llama", "--set", "hidden_size=4096", "--set", "num_hidden_layers=32", "--set",
            "intermediate_size=11008", "--set", "vocab_size=32000", "--set", "num_attention_heads=32", "--set",
            "num_key_value_heads=32", "--batch-size", "1", "--seq-len", "2048", "--precision", "bf16"]
CASES = {
    "llama-7b train (bs 1, seq 2048, bf16)": LLAMA_7B,
    "llama-7b train, 3 devices + run CO2": [*LLAMA_7B, "--dataset-size", "100000", "--region", "FR"],
    "gpt2 small train (bs 8, seq 1024)": ["hf:gpt2", "--batch-size", "8", "--seq-len", "1024"],
}


def run_once(args: list[str]) -> float:
    """Seconds of one ``flopcast predict ... --json`` in a fresh process (raises on failure)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flopcast.predictor.main", "predict", *args, "--json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"predict failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - t0


def machine() -> str:
    """The machine running the benchmark in a few words (CPU model, family, logical cores)."""
    name, _, family, _, _ = cpu_identity()
    family_text = f", CPU family {family}" if family is not None else ""
    return f"{name}{family_text}, {os.cpu_count()} logical cores, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hardware", default="h100")
    args = parser.parse_args()
    rows = []
    for name, case in CASES.items():
        hardware = "h100,a100,cpu" if "3 devices" in name else args.hardware
        times = [run_once([*case, "--hardware", hardware]) for _ in range(args.repeats)]
        rows.append((name, hardware, statistics.median(times), min(times)))
        print(f"{name:42s} {hardware:14s} median {rows[-1][2]:.2f} s  min {rows[-1][3]:.2f} s", flush=True)
    RESULTS.mkdir(exist_ok=True)
    lines = ["# `flopcast predict` wall time, fresh process (`python experiments/bench_predict.py`)", "",
             f"{args.repeats} runs each on {machine()}; target: Llama-7B train step < 10 s.", "",
             "| case | hardware | median (s) | min (s) |", "|---|---|---|---|"]
    lines += [f"| {n} | {h} | {m:.2f} | {lo:.2f} |" for n, h, m, lo in rows]
    (RESULTS / "bench_predict.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
