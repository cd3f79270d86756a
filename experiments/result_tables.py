"""Markdown tables of the experiment scripts' results (no optional dependency such as tabulate)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd


def markdown(df: pd.DataFrame, cell: Callable[[object], str] = str) -> str:
    """A DataFrame as a GitHub Markdown table, each value written by ``cell``."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


RESULTS = Path(__file__).resolve().parent / "results"
"""Where every experiment script writes its tables."""


def write_result(df: pd.DataFrame, name: str, title: str, notes: Sequence[str] = (),
                 cell: Callable[[object], str] = str) -> tuple[Path, Path]:
    """Write ``df`` as ``experiments/results/NAME.md`` (title, notes, Markdown table) and ``NAME.csv``.

    Args:
        df: the table.
        name: file stem under ``experiments/results/``.
        title: the Markdown heading (the command that reproduces the table, by convention).
        notes: paragraphs written between the heading and the table.
        cell: writes one value of the Markdown table.

    Returns:
        The Markdown and CSV paths.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    md, csv = RESULTS / f"{name}.md", RESULTS / f"{name}.csv"
    df.to_csv(csv, index=False)
    md.write_text("\n\n".join([f"# {title}", *notes, markdown(df, cell)]) + "\n")
    return md, csv
