"""Recompute the static features of released rows with the current formulas and tracer.

The measured columns of a row never change. A microbenchmark row's op features (FLOPs, MACs, bytes, op name,
shapes) are a function of its ``family`` and ``config`` and are traced again from the family's own closure; a
step row's ``analyze`` columns (FLOPs, bytes, op count, params, peak-memory estimate) are a function of its
model, batch size, mode, precision, optimizer and device kind and are analysed again. So a formula or tracer
fixed after a campaign (causal attention counting only the unmasked pairs; inference steps whose matmuls an
early tracer missed) reaches the released data.

Run: ``python -m flopcast.datasets.refresh datasets/<hardware-id> [...]``; prints the rows changed per folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from flopcast.calibration.microbench import get_family
from flopcast.calibration.microbench.static import static_features
from flopcast.calibration.zoo_steps import STATIC_COLUMNS, StepConfig, static_columns

FEATURE_COLUMNS = ("op", "category", "dtype", "input_shapes", "input_dtypes", "output_shapes", "flops", "macs",
                   "bytes_read", "bytes_written", "outcome")
"""Microbenchmark columns rewritten from the trace; every measured and provenance column is kept as measured."""

STEP_FEATURE_COLUMNS = STATIC_COLUMNS
"""Step columns rewritten from ``analyze`` of the row's config; measured and provenance columns are kept."""


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


def refreshed_steps(steps: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A copy of a step table with its ``analyze`` columns computed again, and the number of changed rows."""
    out = steps.copy()
    changed = 0
    for i, r in out.iterrows():
        features, problem = static_columns(StepConfig.from_row(r), str(r["device_kind"]))
        if problem:
            continue  # a model the zoo no longer has, or no longer traces: keep the campaign's values
        if any(_differs(out.at[i, c], features[c]) for c in STEP_FEATURE_COLUMNS):
            changed += 1
            for c in STEP_FEATURE_COLUMNS:
                out.at[i, c] = features[c]
    return out, changed


def refresh_folder(folder: str | Path) -> tuple[int, int]:
    """Rewrite ``folder``'s microbenchmark and step tables in place with features traced again.

    Returns:
        Changed microbenchmark rows and changed step rows.
    """
    counts = []
    for name, refresh in (("microbench", refreshed), ("steps", refreshed_steps)):
        path = Path(folder) / f"{name}.parquet"
        changed = 0
        if path.is_file():
            table, changed = refresh(pd.read_parquet(path))
            if changed:
                table.to_parquet(path, index=False, compression="zstd")
        counts.append(changed)
    return counts[0], counts[1]


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
        ops, steps = refresh_folder(folder)
        print(f"{folder}: {ops} microbenchmark row(s) with new op features, {steps} step row(s) with new analyses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
