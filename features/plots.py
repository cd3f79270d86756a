"""Figures of a static analysis (op mix, FLOPs per module) and the helpers every ``--plot`` shares (matplotlib Agg).

matplotlib is the ``plots`` extra (``pip install 'flopcast[plots]'``); it is imported only when a figure is drawn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flopcast.features.analysis import Analysis

FORMATS = ("png", "svg")
"""Every figure is written in both: PNG to show, SVG to edit or embed."""
TOP_MODULES = 15
"""Modules shown in a per-module figure."""
MODULE_DEPTH = 2
"""Module paths are cut to this many components (``transformer.h``), so repeated blocks add up."""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg back end (no display), with deterministic SVG output.

    Raises:
        ModuleNotFoundError: matplotlib is not installed (``main`` turns it into ``pip install 'flopcast[plots]'``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "flopcast", "svg.fonttype": "none", "figure.dpi": 100,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def slug(text: str) -> str:
    """A file-name-safe form of a device or target name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "figure"


def save(fig: Any, folder: Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``folder/stem.png`` and ``.svg`` (no timestamps: the same figure gives the same SVG)."""
    plt = pyplot()
    paths = []
    for fmt in FORMATS:
        path = folder / f"{stem}.{fmt}"
        fig.savefig(path, format=fmt, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        paths.append(path)
    plt.close(fig)
    return paths


def module_key(module: str, depth: int = MODULE_DEPTH) -> str:
    """The module path an op counts under: cut to ``depth`` components; the root is the loss and optimizer."""
    return ".".join(module.split(".")[:depth]) if module else "(root: loss, optimizer)"


def hbar(ax: Any, labels: Sequence[str], values: Sequence[float], xlabel: str, title: str) -> None:
    """Horizontal bars, largest at the top."""
    y = list(range(len(labels)))[::-1]
    ax.barh(y, values, color="#4C72B0")
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left", fontsize=11)


def plot_analysis(a: Analysis, folder: Path, top: int = TOP_MODULES) -> list[Path]:
    """The static side of a step: op mix (FLOPs and bytes shares by category) and FLOPs per module.

    Args:
        a: the analysis.
        folder: where to write (must exist).
        top: modules shown.

    Returns:
        The files written.
    """
    plt = pyplot()
    name = slug(a.target.target.split(":")[-1] if ":" in a.target.target else Path(a.target.target).stem)
    mix = sorted(a.op_mix().items(), key=lambda kv: -kv[1]["flops_share"] - kv[1]["bytes_share"])
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(mix) + 1.5))
    y = range(len(mix))[::-1]
    ax.barh([v + 0.2 for v in y], [m["flops_share"] * 100 for _, m in mix], height=0.4, label="FLOPs", color="#4C72B0")
    ax.barh([v - 0.2 for v in y], [m["bytes_share"] * 100 for _, m in mix], height=0.4, label="bytes", color="#DD8452")
    ax.set_yticks(list(y), [k for k, _ in mix])
    ax.set_xlabel("share of the step, %")
    ax.set_title(f"op mix by category: {a.target.target} ({a.target.mode}, batch {a.target.batch_size})",
                 loc="left", fontsize=11)
    ax.legend(frameon=False)
    paths = save(fig, folder, f"op-mix-{name}")
    mods: dict[str, float] = {}
    for o in a.ops:
        mods[module_key(o.module)] = mods.get(module_key(o.module), 0.0) + o.flops
    rows = sorted(mods.items(), key=lambda kv: -kv[1])[:top]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.5))
    hbar(ax, [k for k, _ in rows], [v / 1e9 for _, v in rows], "GFLOP per step", f"FLOPs per module (top {top})")
    return paths + save(fig, folder, f"modules-flops-{name}")
