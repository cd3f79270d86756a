"""The answers of issue 17 for GPT-2 small and ResNet-50: model card, suggest on a pool, plots, HTML report.

Run: ``python experiments/answers.py [--model MODEL_DIR] [--out experiments/results/answers]``. Every file is
written by the ``flopcast`` commands themselves (``card``, ``suggest``, ``predict --plot``, ``report``), so
the results are what a user gets; ``commands.md`` lists each command line and the cost model used.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import sys
import time
from pathlib import Path

from flopcast.predictor.main import main as flopcast

REPO = Path(__file__).resolve().parent.parent
ROOT = Path("experiments")
"""Paths relative to the repository root (the script runs there), so the outputs name no local folder."""
HYPOTHETICAL = Path("predictor") / "hypothetical"
POOL = ROOT / "pools" / "example-cluster.yaml"
TARGETS = {
    "gpt2-small": ["hf:gpt2", "--batch-size", "8", "--seq-len", "1024", "--precision", "bf16",
                   "--dataset-size", "1000000", "--epochs", "1"],
    "resnet50": [f"{ROOT / 'models' / 'resnet.py'}:resnet50", "--batch-size", "64", "--precision", "bf16",
                 "--dataset-size", "1281167", "--epochs", "90"],
}
"""GPT-2 small: 10^6 sequences of 1024 tokens (about 1 B tokens); ResNet-50: ImageNet-1k, 90 epochs."""


def run(args: list[str], out: Path | None, log: list[str]) -> None:
    """One ``flopcast`` command; its standard output goes to ``out`` (if given); the command line is logged."""
    shown = " ".join(shlex.quote(a) for a in args)
    started = time.perf_counter()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = flopcast(args)
    if code != 0:
        raise SystemExit(f"flopcast {shown} failed with exit code {code}")
    if out is not None:
        out.write_text(buffer.getvalue())
    log.append(f"- `flopcast {shown}` ({time.perf_counter() - started:.0f} s)")
    print(log[-1], file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="cost model folder (default: the bundled one)")
    parser.add_argument("--out", type=Path, help="output folder (default: experiments/results/answers)")
    parser.add_argument("--country", default="FR")
    parser.add_argument("--model-note", default="", help="how the --model was made, for commands.md")
    args = parser.parse_args()
    if args.model:
        args.model = args.model.resolve()
    args.out = args.out.resolve() if args.out else ROOT / "results" / "answers"
    os.chdir(REPO)
    os.environ["COLUMNS"] = "160"  # tables as wide as a terminal shows them, not cut to 80 columns
    model = ["--model", str(args.model)] if args.model else []
    log: list[str] = []
    for name, target in TARGETS.items():
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        common = [*target, *model, "--country", args.country]
        generation = ["--prompt-len", "512", "--new-tokens", "128"] if target[0].startswith("hf:") else []
        run(["card", *common, "--hardware", "h100", "--inference-batch-size", "32", *generation], out / "card.md", log)
        run(["card", *common, "--hardware", "h100", "--inference-batch-size", "32", "--format", "yaml"],
            out / "card.yaml", log)
        run(["suggest", *common, "--pool", str(POOL), "--objective", "cost", "--deadline", "3d",
             "--max-gpus", "8", "--sbatch", str(out / "job.sh")], out / "suggest.txt", log)
        run(["suggest", *common, "--pool", str(POOL), "--objective", "co2", "--json", "--plot", str(out / "plots")],
            out / "suggest-co2.json", log)
        devices = f"h100,a100-80gb,{HYPOTHETICAL / 'photonic-matrix-engine.json'}"
        run(["predict", *common, "--hardware", devices, "--training", "bp,ep", "--plot", str(out / "plots")],
            out / "predict.txt", log)
        run(["report", *common, "--hardware", f"h100,{HYPOTHETICAL / 'photonic-matrix-engine.json'}",
             "-o", str(out / "report.html")], None, log)
    model_note = (f"`{args.model}`" if args.model else "the bundled model") + (f" ({args.model_note})"
                                                                               if args.model_note else "")
    (args.out / "commands.md").write_text(
        "# Issue 17 answers: the commands behind these files\n\n"
        f"Written by `python experiments/answers.py` with cost model {model_note}.\n\n" + "\n".join(log) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
