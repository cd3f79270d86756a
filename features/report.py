"""Human-readable rendering of an Analysis (rich tables) and number formatting shared by the CLIs."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flopcast.features.analysis import Analysis


def si(value: float, unit: str = "", base: int = 1000) -> str:
    """Format ``value`` with an SI (or binary, ``base=1024``) prefix: ``1.23 GFLOP``, ``4.5 kJ``, ``3.4 GiB``."""
    prefixes = ["", "k" if base == 1000 else "K", "M", "G", "T", "P", "E"]
    v, i = float(value), 0
    while abs(v) >= base and i < len(prefixes) - 1:
        v /= base
        i += 1
    p = prefixes[i] + ("i" if base == 1024 and i else "")
    return f"{v:.3g} {p}{unit}".strip()


def describe_step(step: dict[str, object]) -> str:
    """How a train step was written, as a phrase (``analysis.step_dict()``; empty for an infer step).

    E.g. ``loss cross-entropy (auto: the model returns logits [8, 512, 50257]), 4 micro-batches per
    optimizer step (the step is all 4), grad clip 1, fused optimizer, GradScaler``.
    """
    if step.get("step_fn"):
        parts = [f"step function {step['step_fn']}"]
    elif step.get("loss"):
        parts = [f"loss {step['loss']}" + (f" (auto: {step['loss_rule']})" if step.get("loss_rule") else "")]
    else:
        return ""
    k = int(step.get("grad_accumulation") or 1)
    if k > 1:
        parts.append(f"{k} micro-batches of {step['micro_batch_size']} per optimizer step (the step is all {k})")
    if step.get("grad_clip") is not None:
        parts.append(f"grad clip {step['grad_clip']:g}")
    if step.get("fused_optimizer"):
        parts.append("fused optimizer")
    if step.get("grad_scaler"):
        parts.append("GradScaler")
    return ", ".join(parts)


def render_analysis(a: Analysis, console: Console, top: int = 10, run: dict[str, float] | None = None,
                    device_note: str = "") -> None:
    """Print the summary, phases, op mix, top modules and unsupported ops of ``a``.

    Args:
        a: the analysis.
        console: where to print.
        top: modules listed.
        run: whole-run totals, if any.
        device_note: why the trace assumed its device (shown after it), e.g. that it is this machine's kind.
    """
    t = a.target
    parts = [f"{t.mode} step, batch {t.batch_size}", t.precision,
             f"for {t.device}" + (f" ({device_note})" if device_note else "")]
    parts += [f"optimizer {t.optimizer}"] if t.mode == "train" else []
    parts += [escape(how)] if (how := describe_step(a.step_dict())) else []
    console.print(f"[bold]{t.target}[/bold]  " + ", ".join(parts))
    summary = Table(show_header=False, box=None)
    summary.add_row("FLOPs", si(a.flops, "FLOP"), f"({si(a.macs, 'MAC')})")
    summary.add_row("bytes accessed", si(a.bytes_accessed, "B"),
                    f"read {si(a.bytes_read, 'B')}, written {si(a.bytes_written, 'B')}")
    summary.add_row("arithmetic intensity", f"{a.arithmetic_intensity:.1f} FLOP/B", "")
    summary.add_row("parameters", si(a.params), f"trainable {si(a.trainable_params)}")
    if a.memory:
        parts = ", ".join(f"{k} {si(v, 'B', 1024)}" for k, v in a.memory.breakdown_bytes.items() if v)
        summary.add_row("peak memory", si(a.peak_memory_bytes, "B", 1024), parts)
    summary.add_row("ops", str(a.op_count), f"{len(a.ops)} recorded incl. views")
    share = a.unsupported_share
    summary.add_row("unsupported ops", f"{sum(a.unsupported_ops.values())}", f"{share:.1%} of recorded ops")
    if run:
        summary.add_row("run", f"{int(run['steps'])} steps", f"{si(run['run_flops'], 'FLOP')} in total")
    console.print(summary)

    phases = Table(title="by phase", title_justify="left")
    for col in ("phase", "FLOPs", "bytes", "ops"):
        phases.add_column(col, justify="right" if col != "phase" else "left")
    for name, agg in a.by_phase().items():
        if agg["ops"] or agg["flops"]:
            phases.add_row(name, si(agg["flops"]), si(agg["bytes"], "B"), str(agg["ops"]))
    console.print(phases)

    mix = Table(title="op mix", title_justify="left")
    for col in ("category", "FLOPs", "share", "bytes", "share "):
        mix.add_column(col, justify="right" if col != "category" else "left")
    cats = a.by_category()
    for name, m in sorted(a.op_mix().items(), key=lambda kv: -kv[1]["flops_share"]):
        mix.add_row(name, si(cats[name]["flops"]), f"{m['flops_share']:.1%}", si(cats[name]["bytes"], "B"),
                    f"{m['bytes_share']:.1%}")
    console.print(mix)

    mods = Table(title=f"top {top} modules by FLOPs", title_justify="left")
    for col in ("module", "FLOPs", "bytes", "ops"):
        mods.add_column(col, justify="right" if col != "module" else "left")
    for name, agg in a.top_modules(top):
        mods.add_row(name, si(agg["flops"]), si(agg["bytes"], "B"), str(agg["ops"]))
    console.print(mods)
    if a.unsupported_ops:
        listed = ", ".join(f"{k} x{v}" for k, v in list(a.unsupported_ops.items())[:12])
        console.print(f"[yellow]unsupported (counted with 0 FLOPs, bytes kept):[/yellow] {listed}")


def render_generation_summary(s: dict[str, object], console: Console) -> None:
    """Print the static summary of a ``--mode generate`` request (:meth:`GenerationTrace.summary`)."""
    unit = str(s["work_unit"])
    console.print(f"[bold]{s['target']}[/bold]  generate: batch {s['batch_size']}, prompt {s['prompt_len']} + "
                  f"{s['new_tokens']} new tokens (greedy), {s['cache']} KV cache, {s['precision']}, for {s['device']}")
    table = Table(title="per step and per request", title_justify="left")
    for col in ("", unit, "bytes accessed", "peak memory"):
        table.add_column(col, justify="right" if col else "left")
    rows = [("prefill", s["prefill"]), ("decode, first step", s.get("decode_first")),
            ("decode, last step", s.get("decode_last")),
            (f"decode, all {s['decode_steps']} steps", s.get("decode_total")), ("request", s["request"])]
    for label, c in rows:
        if c:
            peak = c.get("peak_memory_bytes")
            table.add_row(label, si(c["work"], unit), si(c["bytes_accessed"], "B"),
                          "" if peak is None else si(peak, "B", 1024))
    console.print(table)
    traced = ", ".join(map(str, s.get("decode_traced_cache_lengths", []))) or "-"
    console.print(f"KV cache {si(s['kv_cache_bytes_per_token'], 'B', 1024)} per token, "
                  f"{si(s['kv_cache_bytes_final'], 'B', 1024)} at the end; peak memory "
                  f"{si(s['peak_memory_bytes'], 'B', 1024)}; decode traced at cache lengths {traced}")
    rules = s["rules"]
    console.print("rules: " + ", ".join(f"{k} {v}" for k, v in rules.items() if v is not None))
