"""Static op features of a microbenchmark config, traced from its own closure (never typed in)."""

from __future__ import annotations

from typing import Any

from flopcast.calibration.microbench.base import Config, Family
from flopcast.datasets.schema import OP_COLUMNS
from flopcast.features.records import OpRecord, Outcome
from flopcast.features.table import ops_table
from flopcast.features.trace_torch import trace_ops

_SUMMED = ("flops", "macs", "bytes_read", "bytes_written")


def main_record(records: list[OpRecord], main_ops: tuple[str, ...]) -> OpRecord:
    """The op that names a multi-op row: the first matching a ``main_ops`` prefix, else the costliest."""
    for r in records:
        if any(r.op.startswith(prefix) for prefix in main_ops):
            return r
    return max(records, key=lambda r: (r.flops, r.bytes_read + r.bytes_written))


def empty_features(config: Config) -> dict[str, Any]:
    """OP_COLUMNS of a config whose trace failed: no op, zero costs, outcome ``unsupported``."""
    row: dict[str, Any] = dict.fromkeys(OP_COLUMNS, "")
    row.update(dict.fromkeys(_SUMMED, 0), outcome="unsupported", framework="torch", dtype=config["dtype"])
    return row


def static_features(family: Family, config: Config) -> tuple[dict[str, Any], str]:
    """OP_COLUMNS values of one config, traced on CPU fake tensors with the family's own closure.

    A closure running several ops gives the main op's name, category and shapes with the sums of FLOPs,
    MACs and bytes over all its ops; any unsupported op makes the row's outcome ``unsupported``.

    Returns:
        The column values, and a problem (empty when the trace worked) for the row's ``reason``.
    """
    try:
        records = trace_ops(lambda: family.build(config, "cpu"), phase=family.phase(config))
    except Exception as e:
        return empty_features(config), f"trace failed: {type(e).__name__}: {e}"
    records = [r for r in records if r.op.startswith("aten.")]
    if not records:
        return empty_features(config), "trace recorded no aten op"
    row = ops_table([main_record(records, family.main_ops)]).astype(object).iloc[0].to_dict()
    row.update({k: int(sum(getattr(r, k) for r in records)) for k in _SUMMED})
    if any(r.outcome is Outcome.UNSUPPORTED for r in records):
        row["outcome"] = Outcome.UNSUPPORTED.value
    if config["dtype"] == "tf32":
        row["dtype"] = "tf32"  # fp32 storage, TF32 tensor cores: keep it apart from true fp32 rows
    return row, ""
