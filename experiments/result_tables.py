"""Markdown tables of the experiment scripts' results (no optional dependency such as tabulate)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd


def markdown(df: pd.DataFrame, cell: Callable[[object], str] = str) -> str:
    """A DataFrame as a GitHub Markdown table, each value written by ``cell``."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def write_result(folder: Path, stem: str, script: str, about: str, table: pd.DataFrame,
                 cell: Callable[[object], str] = str) -> None:
    """Write a result table as ``<stem>.csv`` and ``<stem>.md`` in ``folder``, and print it.

    The Markdown file has a title naming ``script``, the ``about`` line and the table.
    """
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / f"{stem}.csv", index=False)
    (folder / f"{stem}.md").write_text(f"# {script}\n\n{about}\n\n{markdown(table, cell)}\n")
    with pd.option_context("display.width", 250, "display.max_rows", 500, "display.max_columns", 30):
        print(about)
        print(table.to_string(index=False))
