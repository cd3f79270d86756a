"""Markdown tables of the experiment scripts' results (no optional dependency such as tabulate)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd


def markdown(df: pd.DataFrame, cell: Callable[[object], str] = str) -> str:
    """A DataFrame as a GitHub Markdown table, each value written by ``cell``."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
