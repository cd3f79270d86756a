"""The ML.ENERGY leaderboard's measured LLM chat serving on one H100 beside ``flopcast predict --mode generate``.

``python experiments/mlenergy_benchmark.py --mlenergy PATH [--prompt-len 256]`` (PATH: a checkout or bare git
directory of https://github.com/ml-energy/leaderboard, the v3 leaderboard, whose
``public/data/tasks/lm-arena-chat.json`` holds one row per model, GPU and ``max_num_seqs``). The rows kept are
single-H100, bf16, dense models flopcast builds offline from their published config values (:data:`MODELS`):
Llama 3.1 8B and Qwen 3 8B / 14B / 32B. Each is priced through
:func:`flopcast.predictor.generate.generation_records` (the function behind ``flopcast predict --mode generate
--hardware h100-sxm --json``, bundled cost model, no calibration store) and the script writes
``experiments/results/mlenergy_benchmark.{md,csv}``: measured and predicted J per output token, output tokens/s
and time per output token, each error |predicted / measured - 1| and their medians.

What is measured and what is modelled differ, and the table says so: the leaderboard ran vLLM 0.11.1 with
continuous batching (requests join and leave a running batch capped at ``max_num_seqs``, chunked prefill mixed
into decode steps, CUDA graphs, paged attention, bf16 weights) and reports steady-state GPU energy per output
token (Zeus), output tokens/s and the client's median inter-token latency. flopcast prices one static batch of
B = round(``avg_batch_size``) requests of P prompt tokens and N = round(``avg_output_len``) new tokens with
transformers' own ``generate()`` (greedy, dynamic KV cache, ``--precision bf16-pure``: bf16 weights, as vLLM holds).
The leaderboard publishes no prompt length: LM Arena chat prompts (all earlier turns of a conversation
concatenated) are short, and P is an assumption (``--prompt-len``, 256 by default), stated in the output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from result_tables import write_result

RESULTS = Path(__file__).resolve().parent / "results"
TASK_FILE = "public/data/tasks/lm-arena-chat.json"
"""The leaderboard's LLM chat rows, relative to the repository root."""
GPU = "H100"
"""The leaderboard's name of the GPU kept (the NVIDIA H100 80GB HBM3, SXM)."""
HARDWARE = "h100-sxm"
"""flopcast's catalog name of that GPU."""
COLUMNS = ("model_id", "gpu_model", "num_gpus", "weight_precision", "architecture", "max_num_seqs",
           "avg_batch_size", "avg_output_len", "energy_per_token_joules", "output_throughput_tokens_per_sec",
           "median_itl_ms")
"""Columns every row of the task file must have."""

_LLAMA31_8B = ("num_hidden_layers=32", "hidden_size=4096", "num_attention_heads=32", "num_key_value_heads=8",
               "intermediate_size=14336", "vocab_size=128256", "max_position_embeddings=131072",
               "rms_norm_eps=1e-05", "tie_word_embeddings=false")


def _qwen3(layers: int, hidden: int, heads: int, intermediate: int) -> tuple[str, ...]:
    """``--set`` overrides of a dense Qwen 3 (8 KV heads of 128, vocabulary 151936, untied head)."""
    return (f"num_hidden_layers={layers}", f"hidden_size={hidden}", f"num_attention_heads={heads}",
            "num_key_value_heads=8", "head_dim=128", f"intermediate_size={intermediate}", "vocab_size=151936",
            "max_position_embeddings=40960", "rms_norm_eps=1e-06", "tie_word_embeddings=false")


MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "meta-llama/Llama-3.1-8B-Instruct": ("hf:llama", _LLAMA31_8B),
    "Qwen/Qwen3-8B": ("hf:qwen3", _qwen3(36, 4096, 32, 12288)),
    "Qwen/Qwen3-14B": ("hf:qwen3", _qwen3(40, 5120, 40, 17408)),
    "Qwen/Qwen3-32B": ("hf:qwen3", _qwen3(64, 5120, 64, 25600)),
}
"""Leaderboard model id -> flopcast target and ``--set`` overrides, from each model's published
``config.json`` on the Hugging Face Hub (meta-llama/Llama-3.1-8B-Instruct, Qwen/Qwen3-{8,14,32}B); fields that
change no shape (rope scaling, token ids) are left at transformers' defaults."""


class InputError(Exception):
    """The leaderboard path, its task file or a column is missing or unreadable (exit status 2)."""


@dataclass(frozen=True)
class Source:
    """Where the measured rows came from.

    Attributes:
        path: the repository folder given with ``--mlenergy``.
        commit: ``git rev-parse HEAD`` of it, or ``unknown (not a git repository)``.
        license: top-level license file names, or ``none at the top level``.
    """

    path: Path
    commit: str
    license: str


def _git(path: Path, *args: str) -> str | None:
    """``git -C path args`` stdout, or ``None`` when git fails (not a repository, no such object)."""
    try:
        done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def read_task_text(path: Path) -> str:
    """The task file's text: from the work tree, else (a bare mirror) from ``HEAD`` through git.

    Raises:
        InputError: ``path`` is not a folder, or holds no :data:`TASK_FILE`.
    """
    if not path.is_dir():
        raise InputError(f"--mlenergy {path}: no such folder (a checkout of github.com/ml-energy/leaderboard)")
    file = path / TASK_FILE
    if file.is_file():
        return file.read_text()
    text = _git(path, "show", f"HEAD:{TASK_FILE}")
    if text is None:
        raise InputError(f"--mlenergy {path}: no {TASK_FILE} (not the v3 ML.ENERGY leaderboard repository?)")
    return text


def source(path: Path) -> Source:
    """The repository's commit and license file names."""
    commit = (_git(path, "rev-parse", "HEAD") or "").strip() or "unknown (not a git repository)"
    listed = _git(path, "ls-tree", "--name-only", "HEAD")
    names = listed.split() if listed is not None else [p.name for p in path.iterdir()]
    licenses = sorted(n for n in names if n.upper().startswith(("LICENSE", "LICENCE", "COPYING")))
    return Source(path, commit, ", ".join(licenses) or "none at the top level")


def load_rows(text: str) -> pd.DataFrame:
    """The task file's configurations, one row each.

    Raises:
        InputError: not JSON, no ``configurations`` list, or a row without one of :data:`COLUMNS`.
    """
    try:
        rows = json.loads(text)["configurations"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{TASK_FILE}: not a leaderboard task file ({type(e).__name__}: {e})") from None
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{TASK_FILE}: 'configurations' is not a non-empty list")
    table = pd.DataFrame(rows)
    missing = [c for c in COLUMNS if c not in table.columns or table[c].isna().any()]
    if missing:
        raise InputError(f"{TASK_FILE}: column {missing[0]!r} missing (in some row or all)")
    return table


def select(table: pd.DataFrame) -> pd.DataFrame:
    """The rows flopcast rebuilds: one :data:`GPU`, bf16 weights, a model of :data:`MODELS`; by model, batch."""
    keep = (table["gpu_model"] == GPU) & (table["num_gpus"] == 1) & (table["weight_precision"] == "bfloat16") \
        & table["model_id"].isin(list(MODELS))
    return table[keep].sort_values(["model_id", "max_num_seqs"]).reset_index(drop=True)


def request_shape(row: pd.Series, prompt_len: int) -> tuple[int, int, int]:
    """The static batch modelling a measured row: B, P, N (B and N the measured means, rounded)."""
    return max(1, round(row["avg_batch_size"])), prompt_len, max(2, round(row["avg_output_len"]))


def predicted(model_id: str, shape: tuple[int, int, int], cost_model: Any) -> dict[str, Any]:
    """``flopcast predict --mode generate --hardware h100-sxm --precision bf16-pure --json``'s record of one request."""
    from flopcast.features.config import AnalyzeConfig
    from flopcast.features.generate_options import GenerateOptions
    from flopcast.predictor.generate import generation_records
    from flopcast.predictor.predict import PredictConfig

    target, sets = MODELS[model_id]
    batch, prompt_len, new_tokens = shape
    analysis = AnalyzeConfig(target=target, hf_overrides=sets, batch_size=batch, mode="generate",
                             optimizer="none", precision="bf16-pure",
                             generate=GenerateOptions(prompt_len, new_tokens, "dynamic"))
    config = PredictConfig(analysis, hardware=(HARDWARE,), use_store=False)
    return generation_records(config, cost_model)[0]


def compare(row: pd.Series, record: dict[str, Any], shape: tuple[int, int, int]) -> dict[str, Any]:
    """One table row: the leaderboard's figures, the prediction and the errors |pred / meas - 1|."""
    out = {"model": row["model_id"].split("/")[-1], "max_num_seqs": int(row["max_num_seqs"]),
           "B": shape[0], "P": shape[1], "N": shape[2],
           "meas_j_per_tok": row["energy_per_token_joules"], "pred_j_per_tok": record["energy_per_token_j"],
           "meas_tok_per_s": row["output_throughput_tokens_per_sec"], "pred_tok_per_s": record["tokens_per_s"],
           "meas_tpot_ms": row["median_itl_ms"], "pred_tpot_ms": record["time_per_output_token_s"] * 1e3,
           "pred_fits": record["fits"], "energy_source": record["energy_source"]}
    for what in ("j_per_tok", "tok_per_s", "tpot_ms"):
        out[f"{what}_err"] = abs(out[f"pred_{what}"] / out[f"meas_{what}"] - 1)
    return out


def medians(table: pd.DataFrame) -> str:
    """The median errors, one sentence."""
    parts = [f"{name} {statistics.median(table[f'{what}_err']):.1%}" for what, name in
             (("j_per_tok", "J per output token"), ("tok_per_s", "output tokens/s"), ("tpot_ms", "time per "
              "output token (vs median ITL)"))]
    ratios = [f"{name} {statistics.median(table[f'pred_{what}'] / table[f'meas_{what}']):.3g}x" for what, name in
              (("j_per_tok", "J per token"), ("tok_per_s", "tokens/s"), ("tpot_ms", "time per token"))]
    return (f"median |error| over {len(table)} rows: " + ", ".join(parts) + "; median predicted / measured: "
            + ", ".join(ratios) + " (an error of tokens/s below the measure cannot pass 100 %)")


def notes(src: Source, prompt_len: int, table: pd.DataFrame) -> str:
    """The Markdown text above the table: source, approximations, medians."""
    return "\n\n".join([
        f"Measured: the ML.ENERGY leaderboard v3 (https://github.com/ml-energy/leaderboard, commit {src.commit}, "
        f"file `{TASK_FILE}`; license file: {src.license}). vLLM 0.11.1 serving LM Arena chat prompts on one "
        "H100 80GB HBM3 with continuous batching at `max_num_seqs`; steady-state GPU energy per output token "
        "(Zeus), output tokens/s, median inter-token latency (client side).",
        f"Predicted: flopcast's bundled cost model on `{HARDWARE}` (no calibration store), one static batch of "
        f"B = round(avg_batch_size) requests, P = {prompt_len} prompt tokens (assumed: the leaderboard publishes "
        "no prompt length), N = round(avg_output_len) new tokens; transformers' generate(), greedy, dynamic KV "
        "cache, `--precision bf16-pure` (bf16 weights, as vLLM holds them). The static "
        "batch stands in for vLLM's continuous batching (requests at every stage of their generation, chunked "
        "prefill inside decode steps); `pred_tpot_ms` is the mean decode step, compared with the median ITL.",
        medians(table) + ".",
        "Columns: `meas_*` the leaderboard's figures, `pred_*` flopcast's, `*_err` |pred / meas - 1|; "
        "`pred_fits` flopcast's memory verdict; `energy_source` where flopcast's energy comes from."])


def run(path: Path, prompt_len: int, out: Path) -> pd.DataFrame:
    """Read, select, predict and write the result table; the table.

    Raises:
        InputError: bad ``--mlenergy`` path, task file or column, or no row to compare.
    """
    text = read_task_text(path)
    rows = select(load_rows(text))
    if rows.empty:
        raise InputError(f"{TASK_FILE}: no single-{GPU} bf16 row of {', '.join(MODELS)}")
    src = source(path)
    from flopcast.predictor.io import load_model

    cost_model = load_model(None)
    results = []
    for _, row in rows.iterrows():
        shape = request_shape(row, prompt_len)
        results.append(compare(row, predicted(row["model_id"], shape, cost_model), shape))
        print(f"{results[-1]['model']} B={shape[0]}: predicted {results[-1]['pred_tpot_ms']:.1f} ms/token "
              f"(measured {results[-1]['meas_tpot_ms']:.1f})", flush=True)
    table = pd.DataFrame(results)
    command = f"python experiments/mlenergy_benchmark.py --mlenergy PATH --prompt-len {prompt_len}"
    write_result(out, "mlenergy_benchmark", f"ML.ENERGY leaderboard (H100, LLM chat) vs flopcast (`{command}`)",
                 notes(src, prompt_len, table), table, lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
    return table


def main(argv: list[str] | None = None) -> int:
    """Command line; exit status 0, or 2 with one line on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlenergy", type=Path, required=True,
                        help="checkout or bare git folder of github.com/ml-energy/leaderboard")
    parser.add_argument("--prompt-len", type=int, default=256, help="assumed prompt tokens P (256)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files")
    args = parser.parse_args(argv)
    if args.prompt_len < 1:
        print(f"error: --prompt-len must be >= 1, not {args.prompt_len}", file=sys.stderr)
        return 2
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        run(args.mlenergy, args.prompt_len, args.out)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'mlenergy_benchmark'}.md and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
