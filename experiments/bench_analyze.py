"""Wall time and peak RSS of `flopcast analyze` on the issue's reference targets (each in a fresh process).

Run: ``python experiments/bench_analyze.py [--repeats 3]``; prints a table and writes
``experiments/results/bench_analyze.md``. Targets: Llama-7B train step < 5 s and < 2 GB RSS, GPT-2 small < 1 s
(analysis time; the first analysis in a fresh process includes transformers' lazy import of the model
class; a second, warm analysis in the same process is reported beside it; medians over fresh processes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
LLAMA_7B = ["--set", "hidden_size=4096", "--set", "num_hidden_layers=32", "--set", "intermediate_size=11008",
            "--set", "vocab_size=32000", "--set", "num_attention_heads=32", "--set", "num_key_value_heads=32"]
CASES = {
    "gpt2 small (bs 8, seq 1024, train)": ["hf:gpt2", "--batch-size", "8", "--seq-len", "1024"],
    "bert base (bs 8, seq 512, train)": ["hf:bert", "--batch-size", "8", "--seq-len", "512"],
    "resnet50 (bs 64, 224px, train)": [f"{ROOT / 'models' / 'resnet.py'}:resnet50", "--batch-size", "64"],
    "llama-7b (bs 1, seq 2048, bf16, train)": ["hf:llama", *LLAMA_7B, "--batch-size", "1", "--seq-len", "2048",
                                               "--precision", "bf16"],
}
CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from flopcast.features.api import analyze_config
from flopcast.features.cli import config_from_args
from flopcast.predictor.main import build_parser
args = build_parser().parse_args(["analyze", *sys.argv[1:]])
t1 = time.perf_counter()
a = analyze_config(config_from_args(args, args.device))
t2 = time.perf_counter()
analyze_config(config_from_args(args, args.device))
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "analyze_s": t2 - t1, "warm_s": t3 - t2, "ops": len(a.ops), "flops": a.flops,
                  "peak_memory_bytes": a.peak_memory_bytes,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_case(argv: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    lines = ["| target | first analysis s | warm analysis s | CLI import s | peak RSS MB | ops | FLOPs | "
             "est. peak memory GiB |", "|---|---|---|---|---|---|---|---|"]
    for name, argv in CASES.items():
        runs = [run_case(argv) for _ in range(args.repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        lines.append(f"| {name} | {med['analyze_s']:.2f} | {med['warm_s']:.2f} | {med['import_s']:.2f} | "
                     f"{med['rss_mb']:.0f} | "
                     f"{int(med['ops'])} | {med['flops']:.3e} | {med['peak_memory_bytes'] / 2**30:.1f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(f"\n{table}")
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "bench_analyze.md").write_text(f"# bench_analyze ({args.repeats} runs each)\n\n{table}\n")


if __name__ == "__main__":
    main()
