"""``flopcast report``: one self-contained HTML page of the analysis, predictions, model card and method.

Figures are inlined and nothing is fetched from the network.

Every number comes from the commands it gathers: ``analyze``'s analysis, ``predict``'s records, ``card``'s card
and the ``--plot`` figures, embedded as PNG data URIs.
"""

from __future__ import annotations

import argparse
import base64
import html
import re
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flopcast.features.cli import add_target_arguments, run_scale
from flopcast.features.report import describe_step, si
from flopcast.predictor.card import METHOD, add_card_arguments, card_markdown
from flopcast.predictor.cli import _interval, add_prediction_arguments, predict_config_from_args

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
img { max-width: 100%; margin: .5em 0; }
.note { color: #7a5b00; } pre { background: #f6f6f6; padding: 1em; overflow-x: auto; white-space: pre-wrap; }
"""


@dataclass(frozen=True)
class ReportConfig:
    """Everything ``flopcast report`` needs.

    Attributes:
        predict: the step's prediction config (several devices allowed).
        training: the training regimes (a column each per device).
        card: the card of the first device (``None``: no ``--dataset-size``, no card).
        out: the HTML file to write.
        top: modules listed in the analysis tables.
    """

    predict: Any
    training: Any
    card: Any
    out: Path
    top: int = 10


def add_report_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``flopcast report``."""
    p = subparsers.add_parser(
        "report", help="one self-contained HTML report: analysis, predictions per device, model card, method",
        description="Write one HTML file (figures inlined, no network access) with the analysis, the predictions "
                    "per device, the model card's compute-cost section and the method.")
    add_target_arguments(p)
    add_prediction_arguments(p)
    add_card_arguments(p, outputs=False)
    p.add_argument("-o", "--out", type=Path, required=True, metavar="REPORT.html", help="the HTML file to write")
    p.add_argument("--top", type=int, default=10, help="modules listed in the analysis table (10)")
    p.set_defaults(func=run_report, format="markdown")


def report_config_from_args(args: argparse.Namespace) -> ReportConfig:
    """The ReportConfig of parsed ``report`` arguments."""
    from flopcast.predictor.card import CardConfig
    from flopcast.predictor.ep import Training, training_from_args

    run_scale(args)
    config = predict_config_from_args(args)
    training = training_from_args(args)
    card = None
    if config.dataset_size is not None and config.analysis.mode == "train":
        card = CardConfig(predict=replace(config, hardware=config.hardware[:1]),
                          training=Training(training.regimes[:1], training.ep_free_steps, training.ep_nudged_steps),
                          inference_batch_size=args.batch_size if args.inference_batch_size is None
                          else args.inference_batch_size,
                          inference_samples=args.inference_samples, training_type=args.training_type)
    return ReportConfig(predict=config, training=training, card=card, out=args.out, top=args.top)


def run_report(args: argparse.Namespace) -> int:
    """Run ``flopcast report``; returns the exit code."""
    from flopcast.features.plots import pyplot
    from flopcast.predictor.io import load_model
    from flopcast.predictor.output import writable, write_text

    config = report_config_from_args(args)
    writable(config.out, "report")
    pyplot()  # matplotlib missing: say so before any work
    page = build_report(config, load_model(config.predict.model_dir))
    write_text(config.out, page, "report")
    print(f"wrote {config.out} ({len(page) / 1e6:.2f} MB)", file=sys.stderr)
    return 0


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _figures(paths: list[Path]) -> str:
    out = []
    for p in paths:
        if p.suffix == ".png":
            data = base64.b64encode(p.read_bytes()).decode("ascii")
            out.append(f'<figure><img alt="{_e(p.stem)}" src="data:image/png;base64,{data}"></figure>')
    return "\n".join(out)


def _markdown_html(text: str) -> str:
    """The card's Markdown (headings, one table, paragraphs, ``**bold**``, backticks) as HTML."""
    def inline(s: str) -> str:
        s = _e(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    out, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                rows.append([c.strip() for c in line.strip("|").split("|")])
            continue
        if rows:
            head, *body = rows
            out.append("<table><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</tbody></table>")
            rows = []
        if line.startswith("## "):
            out.append(f"<h3>{inline(line[3:])}</h3>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    return "\n".join(out)


def analysis_section(a: Any, top: int) -> str:
    """The analysis: summary, op mix and top modules tables."""
    summary = [["FLOPs", si(a.flops, "FLOP"), f"{si(a.macs, 'MAC')}"],
               ["bytes accessed", si(a.bytes_accessed, "B"),
                f"read {si(a.bytes_read, 'B')}, written {si(a.bytes_written, 'B')}"],
               ["arithmetic intensity", f"{a.arithmetic_intensity:.1f} FLOP/B", ""],
               ["parameters", si(a.params), f"trainable {si(a.trainable_params)}"],
               ["peak memory", si(a.peak_memory_bytes, "B", 1024) if a.memory else "not estimated",
                ", ".join(f"{k} {si(v, 'B', 1024)}" for k, v in a.memory.breakdown_bytes.items() if v)
                if a.memory else ""],
               ["ops", str(a.op_count), f"{len(a.ops)} recorded incl. views"],
               ["unsupported ops", str(sum(a.unsupported_ops.values())), f"{a.unsupported_share:.1%} of recorded ops"]]
    cats = a.by_category()
    mix = [[k, si(cats[k]["flops"], "FLOP"), f"{m['flops_share']:.1%}", si(cats[k]["bytes"], "B"),
            f"{m['bytes_share']:.1%}"] for k, m in sorted(a.op_mix().items(), key=lambda kv: -kv[1]["flops_share"])]
    mods = [[k, si(v["flops"], "FLOP"), si(v["bytes"], "B"), str(v["ops"])] for k, v in a.top_modules(top)]
    return (_table(["", "value", "detail"], summary) + "<h3>Op mix</h3>"
            + _table(["category", "FLOPs", "share", "bytes", "share"], mix)
            + f"<h3>Top {top} modules by FLOPs</h3>" + _table(["module", "FLOPs", "bytes", "ops"], mods))


def predictions_section(records: list[dict[str, Any]]) -> str:
    """The predictions, one column per device (and regime), the rows of ``predict``'s table, then the notes."""
    from flopcast.predictor.cli import fmt_time

    rows: list[tuple[str, Any]] = [
        ("step FLOPs", lambda r: si(r["flops"], "FLOP")),
        ("step time", lambda r: _interval(r, "step_time_s", "s")),
        ("step energy", lambda r: _interval(r, "step_energy_j", "J")),
        ("peak memory", lambda r: "not estimated" if r["peak_memory_bytes"] is None else
         f"{si(r['peak_memory_bytes'], 'B', 1024)} of {si(r['memory_bytes'], 'B', 1024)}"),
        ("fits", lambda r: {True: "yes", False: "no", None: "unknown"}[r["fits"]]),
        ("calibrated", lambda r: "yes" if r["calibrated"] else
         ("no: physical model" if r.get("physical_model") else "no (wider intervals)")),
    ]
    if "run_time_s" in records[0]:
        rows += [("run steps", lambda r: str(r["steps"])),
                 ("run time", lambda r: f"{fmt_time(r['run_time_s'])} [{fmt_time(r['run_time_s_p10'])}, "
                                        f"{fmt_time(r['run_time_s_p90'])}]"),
                 ("run energy", lambda r: _interval(r, "run_energy_kwh", "kWh")),
                 ("run CO2", lambda r: f"{_interval(r, 'run_co2_kg', 'kg')} ({r['region']}, PUE {r['pue']:g})")]
    table = _table(["", *(r.get("label", r["hardware"]) for r in records)],
                   [[label, *(cell(r) for r in records)] for label, cell in rows])
    notes = "".join(f'<li class="note">{_e(r.get("label", r["hardware"]))}: {_e(n)}</li>'
                    for r in records for n in r["notes"])
    return table + (f"<ul>{notes}</ul>" if notes else "")


def build_report(config: ReportConfig, model: Any, analyse: Any = None) -> str:
    """The HTML page (see the module docstring)."""
    from flopcast.features.plots import plot_analysis
    from flopcast.predictor.card import build_card
    from flopcast.predictor.cli import predict_records
    from flopcast.predictor.featurize import analysis_device
    from flopcast.predictor.plots import plot_predictions

    run = predict_records(config.predict, model, config.training, analyse)
    first = run.training.regimes[0]
    analysis = run.analyses[first][analysis_device(run.predictions[first][0].kind)]
    with tempfile.TemporaryDirectory() as tmp:
        static = _figures(plot_analysis(analysis, Path(tmp), top=config.top))
        predicted = _figures(plot_predictions(run, model, Path(tmp)))
    r0 = run.records[0]
    how = describe_step(r0["step"])
    title = f"flopcast report: {r0['target']}"
    card = ""
    if config.card is not None:
        markdown = card_markdown(build_card(config.card, model, analyse))
        card = (f"<h2>Model card: compute cost</h2>{_markdown_html(markdown)}"
                f"<details><summary>Markdown to paste into the model card</summary><pre>{_e(markdown)}</pre></details>")
    else:
        card = "<h2>Model card: compute cost</h2><p>Give --dataset-size (and --epochs) for the card's run totals.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{_e(title)}</h1>
<p>{_e(r0['mode'])} step, batch {_e(r0['batch_size'])}, {_e(r0['precision'])}{_e(', ' + how if how else '')};
cost model {_e(r0['model_version'])}. Predicted before the run; nothing ran on these devices.</p>
<h2>Analysis</h2>
{analysis_section(analysis, config.top)}
{static}
<h2>Predictions per device</h2>
<p>Median [10 %, 90 %].</p>
{predictions_section(run.records)}
{predicted}
{card}
<h2>Method</h2>
<p>{_e(METHOD.format(mode='training' if r0['mode'] == 'train' else 'inference'))}</p>
</body></html>
"""
