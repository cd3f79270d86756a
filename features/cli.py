"""The ``flopcast analyze`` subcommand: arguments, the AnalyzeConfig they make, and the output."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from flopcast.features.analysis import Analysis
from flopcast.features.config import DEVICES, FRAMEWORKS, MODES, OPTIMIZERS, PRECISIONS, AnalyzeConfig
from flopcast.features.errors import OptionError
from flopcast.features.generate_options import CACHES, GenerateError, GenerateOptions
from flopcast.features.rules import CAUSAL_RULES, CHECKPOINTING_HELP, COUNT_UNITS, CountingRules
from flopcast.features.spec import parse_dims
from flopcast.features.step_options import AUTO_LOSS, LOSSES, StepOptions
from flopcast.features.table import write_ops_table


def add_target_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments that name what to analyse (shared by ``analyze`` and ``predict``)."""
    p.add_argument("target", help="path/file.py:name, model.onnx or hf:<model_type>")
    p.add_argument("--input", action="append", default=[], metavar="SPEC",
                   help="one per forward argument: DTYPE[DIM,...] with optional <HIGH, e.g. int64[B,128]<30522")
    p.add_argument("--batch-size", type=int, default=1, help="binds the B symbol (default 1)")
    p.add_argument("--dim", action="append", default=[], metavar="SYM=INT", help="binds another symbol")
    p.add_argument("--mode", choices=MODES, default="train")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    p.add_argument("--framework", choices=FRAMEWORKS, default="auto")
    p.add_argument("--config", dest="hf_config", metavar="CONFIG_JSON", help="config.json for hf: targets")
    p.add_argument("--set", dest="hf_set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the hf: config, e.g. n_layer=48")
    p.add_argument("--seq-len", type=int, default=512, help="sequence length of hf: default inputs (512)")
    p.add_argument("--trace-all-layers", action="store_true",
                   help="hf: trace every layer instead of composing the stack from 3-, 4- and 5-layer traces")
    add_step_arguments(p)
    add_generate_arguments(p)
    add_rules_arguments(p)
    p.add_argument("--dataset-size", type=int, help="samples per epoch, for whole-run totals")
    p.add_argument("--epochs", type=int, help="passes over the dataset (needs --dataset-size; default 1)")
    p.add_argument("--json", action="store_true",
                   help="print JSON instead of tables (analyze: one object; predict: a list, one object per device)")


def add_step_arguments(p: argparse.ArgumentParser, plain_default: bool = False) -> None:
    """Arguments that say how the train step is written (``analyze``, ``predict``; ``calibrate`` for zoo steps).

    Args:
        p: the parser.
        plain_default: default to the plain step (mean loss, no scaler) and offer no ``--step``: a campaign's
            steps stay comparable with the released ones unless asked otherwise.
    """
    g = p.add_argument_group("train step", "how the training step is written (train mode)")
    loss_default = "mean" if plain_default else AUTO_LOSS
    g.add_argument("--loss", choices=(AUTO_LOSS, *LOSSES), default=loss_default,
                   help="loss of the step; auto: cross-entropy for class logits (LM and classifier heads, "
                        f"labels from the inputs), else mean of the output (default: {loss_default})")
    g.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the gradients' total 2-norm to NORM")
    g.add_argument("--grad-accumulation", type=int, default=1, metavar="K",
                   help="K micro-batches of --batch-size, then one optimizer step; the step is all of it (1)")
    g.add_argument("--fused-optimizer", action="store_true", help="the optimizer's fused=True kernels")
    g.add_argument("--grad-scaler", action=argparse.BooleanOptionalAction, default=False if plain_default else None,
                   help="scale the loss with torch.amp.GradScaler (default: "
                        + ("off)" if plain_default else "on for fp16 training)"))
    if not plain_default:
        g.add_argument("--step", dest="step_fn", metavar="FILE.py:fn",
                       help="your own step, called as fn(model, inputs, optimizer), instead of the built-in one")


def add_generate_arguments(p: argparse.ArgumentParser) -> None:
    """``--mode generate``'s request: prompt and new tokens, the KV cache (``analyze``, ``predict``)."""
    g = p.add_argument_group("generation", "--mode generate: model.generate() with a KV cache, greedy, fixed length")
    g.add_argument("--prompt-len", type=int, metavar="P", help="prompt tokens per sequence")
    g.add_argument("--new-tokens", type=int, metavar="N", help="generated tokens per sequence")
    g.add_argument("--cache", choices=CACHES, default="dynamic",
                   help="KV cache: dynamic (grows one token a step, the default) or static (allocated for P + N)")


def add_rules_arguments(p: argparse.ArgumentParser) -> None:
    """The counting rules, each with its documented default (:mod:`flopcast.features.rules`)."""
    g = p.add_argument_group("counting rules", "conventions the counts follow; each is stated under rules in --json")
    g.add_argument("--causal-attention", choices=CAUSAL_RULES, default="full",
                   help="full: the whole score matrix, torch's convention (default); halved: what a causal kernel "
                        "executes")
    g.add_argument("--count", choices=COUNT_UNITS, default="flops",
                   help="headline unit: flops (2 x MACs plus element-wise work, default) or macs")
    g.add_argument("--activation-checkpointing", default="none", metavar=CHECKPOINTING_HELP,
                   help="recompute the forward of every layer (full) or every K-th layer in the backward (none)")
    g.add_argument("--expert-load", metavar="FILE",
                   help="MoE: measured per-expert token shares (JSON list, or one list per MoE layer); default "
                        "uniform routing")


def rules_from_args(args: argparse.Namespace) -> CountingRules:
    """The CountingRules of parsed arguments."""
    return CountingRules(args.causal_attention, args.count, args.activation_checkpointing, args.expert_load)


def generate_from_args(args: argparse.Namespace) -> GenerateOptions | None:
    """The generation request of parsed arguments (``None`` unless ``--mode generate``).

    Raises:
        GenerateError: ``--mode generate`` without ``--prompt-len`` / ``--new-tokens``, or those without it.
    """
    given = args.prompt_len is not None or args.new_tokens is not None
    if args.mode != "generate":
        if given:
            raise GenerateError("--prompt-len and --new-tokens describe a generation request: add --mode generate")
        return None
    if args.prompt_len is None or args.new_tokens is None:
        raise GenerateError("--mode generate needs --prompt-len P and --new-tokens N")
    return GenerateOptions(args.prompt_len, args.new_tokens, args.cache)


def step_options_from_args(args: argparse.Namespace) -> StepOptions:
    """The StepOptions of parsed arguments (``--step`` leaves the loss to the function).

    Raises:
        StepOptionError: invalid or contradictory values (one line).
    """
    step_fn = getattr(args, "step_fn", None)
    loss = "mean" if step_fn and args.loss == AUTO_LOSS else args.loss
    return StepOptions(loss=loss, grad_clip=args.grad_clip, grad_accumulation=args.grad_accumulation,
                       fused_optimizer=args.fused_optimizer, grad_scaler=args.grad_scaler, step_fn=step_fn)


def run_scale(args: argparse.Namespace) -> tuple[int | None, int]:
    """``(dataset_size, epochs)`` of parsed arguments (``None``: no run totals).

    Raises:
        OptionError: ``--epochs`` without ``--dataset-size`` (it would be ignored), or a value below 1.
    """
    if args.epochs is not None and args.dataset_size is None:
        raise OptionError(f"--epochs {args.epochs} needs --dataset-size N (samples per epoch) for run totals")
    for flag, value in (("--dataset-size", args.dataset_size), ("--epochs", args.epochs)):
        if value is not None and value < 1:
            raise OptionError(f"{flag} must be >= 1, not {value}")
    return args.dataset_size, args.epochs or 1


def local_device_kind() -> str:
    """``cuda`` when this machine's torch sees a GPU, else ``cpu``: what ``analyze`` assumes without ``--device``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def config_from_args(args: argparse.Namespace, device: str) -> AnalyzeConfig:
    """The AnalyzeConfig described by parsed arguments."""
    return AnalyzeConfig(
        target=args.target, inputs=tuple(args.input), batch_size=args.batch_size, dims=parse_dims(args.dim),
        mode=args.mode, precision=args.precision, device=device, optimizer=args.optimizer,
        framework=args.framework, hf_config=args.hf_config, hf_overrides=tuple(args.hf_set), seq_len=args.seq_len,
        trace_all_layers=args.trace_all_layers, step=step_options_from_args(args), rules=rules_from_args(args),
        generate=generate_from_args(args),
    )


def add_analyze_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``flopcast analyze``."""
    p = subparsers.add_parser("analyze", help="static analysis of one step: FLOPs, bytes, memory, op mix",
                              description="Analyse one training or inference step from code, on shape-only "
                                          "tensors: no data, no weights, no device work.")
    add_target_arguments(p)
    p.add_argument("--device", choices=DEVICES,
                   help="device kind the step is meant for: autocast policy and optimizer kernels (default: this "
                        "machine's, cuda with a GPU, else cpu)")
    p.add_argument("--ops-csv", metavar="FILE", help="write the op-level table as CSV")
    p.add_argument("--ops-parquet", metavar="FILE", help="write the op-level table as parquet")
    p.add_argument("--top", type=int, default=10, help="modules listed in the table output (10)")
    p.add_argument("--plot", metavar="DIR", help="write figures (op mix, FLOPs per module; PNG and SVG) to DIR")
    p.set_defaults(func=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    """Run ``flopcast analyze`` and print its result; returns the exit code."""
    from flopcast.features.api import analyze_config

    dataset_size, epochs = run_scale(args)
    if args.plot:
        from flopcast.features.plots import pyplot

        pyplot()  # matplotlib missing: say so before the analysis
    config = config_from_args(args, args.device or local_device_kind())
    if config.mode == "generate":
        return _analyze_generation(args, config)
    analysis = analyze_config(config)
    for path in (args.ops_csv, args.ops_parquet):
        if path:
            write_ops_table(analysis.ops, path, source=analysis.target.target)
    run = analysis.scaled_to_run(dataset_size, epochs) if dataset_size else None
    if args.json:
        out = analysis.to_dict()
        if run:
            out["run"] = run
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from flopcast.features.report import render_analysis

        device_note = "" if args.device else "this machine's kind; --device cuda|cpu for another"
        render_analysis(analysis, Console(), top=args.top, run=run, device_note=device_note)
    if args.plot:
        from pathlib import Path

        from flopcast.features.plots import plot_analysis

        folder = Path(args.plot)
        folder.mkdir(parents=True, exist_ok=True)
        for path in plot_analysis(analysis, folder, top=max(args.top, 1)):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _analyze_generation(args: argparse.Namespace, config: AnalyzeConfig) -> int:
    """``analyze --mode generate``: the request's prefill, decode steps and totals (JSON or a table)."""
    from flopcast.features.api import analyze_generation

    if args.ops_csv or args.ops_parquet or args.plot or args.dataset_size:
        raise OptionError("--mode generate: --ops-csv, --ops-parquet, --plot and --dataset-size describe one step")
    summary = analyze_generation(config).summary()
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from flopcast.features.report import render_generation_summary

        render_generation_summary(summary, Console())
    return 0


def analysis_summary(a: Analysis) -> dict[str, object]:
    """The analysis keys that ``predict --json`` repeats."""
    d = a.to_dict()
    keys = ("flops", "macs", "bytes_accessed", "params", "peak_memory_bytes", "op_count", "op_mix", "unsupported_ops",
            "step", "rules", "work", "work_unit")
    return {k: d[k] for k in keys}
