"""Registry of microbenchmark families: each family file registers one or more :class:`Family` objects.

A family samples configs (shapes and dtype, from tiny launch-bound to large compute-bound), builds
the closure that runs the op on a device, and maps rows of an ``analyze`` op table back to configs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from flopcast.calibration.microbench.base import Config, Family, packet

_FAMILIES: dict[str, Family] = {}


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator registering one instance of ``cls`` under ``cls.name``.

    Raises:
        ValueError: if a family of that name is already registered.
    """
    family = cls()
    if family.name in _FAMILIES:
        raise ValueError(f"microbenchmark family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return cls


def get_family(name: str) -> Family:
    """The family called ``name``.

    Raises:
        KeyError: naming the known families.
    """
    try:
        return _FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown microbenchmark family {name!r}; known: {', '.join(sorted(_FAMILIES))}") from None


def family_names() -> list[str]:
    """Names of every registered family, sorted."""
    return sorted(_FAMILIES)


def configs_from_ops_table(df: pd.DataFrame) -> list[tuple[str, Config]]:
    """Configs of the matching families for the ops of analysed models (rows of ``OP_COLUMNS``).

    Rows whose op no family covers, or whose shapes a family cannot rebuild, are skipped; identical
    configs are returned once.

    Returns:
        ``(family name, config)`` pairs in table order.
    """
    by_op: dict[str, list[Family]] = {}
    for fam in _FAMILIES.values():
        for op in fam.ops:
            by_op.setdefault(op, []).append(fam)
    seen: set[str] = set()
    out: list[tuple[str, Config]] = []
    for row in df.to_dict("records"):
        for fam in by_op.get(packet(str(row["op"])), []):
            config = fam.config_from_op(row)
            if config is None:
                continue
            ident = json.dumps([fam.name, config], sort_keys=True)
            if ident not in seen:
                seen.add(ident)
                out.append((fam.name, config))
    return out


def _load_families() -> None:
    from flopcast.calibration.microbench import (  # noqa: F401 - imported for their registrations
        attention,
        conv,
        data_movement,
        decode,
        elementwise,
        embedding,
        indexing,
        matmul,
        norm,
        optimizer,
        reduction,
        rnn,
        softmax,
    )


Builder = Callable[[Config, str], Callable[[], Any]]
__all__ = ["Config", "Family", "configs_from_ops_table", "family_names", "get_family", "register_family"]

_load_families()
