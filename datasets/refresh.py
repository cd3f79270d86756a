"""Recompute the static op features of released microbenchmark rows with the current formulas.

The measured columns of a row never change; its op features (FLOPs, MACs, bytes, op name, shapes) are a
function of its ``family`` and ``config`` and are traced again from the family's own closure, so a formula
fixed after a campaign (e.g. causal attention counting only the unmasked pairs) reaches the released data.

Run: ``python -m flopcast.datasets.refresh datasets/<hardware-id> [...]``; prints the rows changed per folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from flopcast.calibration.microbench import get_family
from flopcast.calibration.microbench.static import static_features

FEATURE_COLUMNS = ("op", "category", "dtype", "input_shapes", "input_dtypes", "output_shapes", "flops", "macs",
                   "bytes_read", "bytes_written", "outcome")
"""Columns rewritten from the trace; every measured and provenance column is kept as measured."""


def refreshed(microbench: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A copy of a microbenchmark table with its op features traced again, and the number of changed rows."""
    out = microbench.copy()
    changed = 0
    for i, family, config in zip(out.index, out["family"], out["config"], strict=True):
        features, problem = static_features(get_family(family), json.loads(config))
        if problem:
            continue  # keep the campaign's values where the closure no longer traces
        new = {c: features[c] for c in FEATURE_COLUMNS if c in features}
        if any(_differs(out.at[i, c], v) for c, v in new.items()):
            changed += 1
            for c, v in new.items():
                out.at[i, c] = v
    return out, changed


def refresh_folder(folder: str | Path) -> int:
    """Rewrite ``folder/microbench.parquet`` in place with traced-again features; returns rows changed."""
    path = Path(folder) / "microbench.parquet"
    table, changed = refreshed(pd.read_parquet(path))
    if changed:
        table.to_parquet(path, index=False, compression="zstd")
    return changed


def _differs(old: object, new: object) -> bool:
    if isinstance(new, (int, float)) and not isinstance(new, bool):
        return old is None or pd.isna(old) or float(old) != float(new)
    return str(old) != str(new)


def main(argv: list[str] | None = None) -> int:
    """Refresh each folder given on the command line."""
    folders = (argv if argv is not None else sys.argv[1:])
    if not folders:
        print("usage: python -m flopcast.datasets.refresh DATASET_FOLDER [...]", file=sys.stderr)
        return 2
    for folder in folders:
        print(f"{folder}: {refresh_folder(folder)} row(s) with new op features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
