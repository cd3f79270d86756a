"""Retrain the model shipped in ``predictor/default_model/`` from the released ``datasets/`` (via ``flopcast fit``).

Run: ``python experiments/train_default_model.py [--data DIR ...] [--out DIR]``. Validates the data first
(problems are printed, not fatal: untrusted rows are skipped by the fit), then runs ``flopcast fit`` and
prints the fitted model's summary. Re-run whenever a hardware folder lands in ``datasets/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flopcast.datasets.loader import load_datasets
from flopcast.datasets.validate import validate
from flopcast.predictor.io import default_model_dir, load_model
from flopcast.predictor.main import main as flopcast


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", default=[], help="hardware folders (default datasets/)")
    parser.add_argument("--out", type=Path, default=default_model_dir(), help="model directory (default: packaged)")
    parser.add_argument("--n-estimators", type=int, default=300)
    args = parser.parse_args()
    ds = load_datasets(args.data or None)
    print(f"dataset {ds.version}: {', '.join(ds.hardware) or 'no hardware'}; "
          f"{len(ds.microbench)} op rows, {len(ds.steps)} step rows")
    for problem in validate(ds):
        print(f"  data check: {problem}")
    fit_args = ["fit", "--out", str(args.out), "--n-estimators", str(args.n_estimators)]
    for d in args.data:
        fit_args += ["--data", str(d)]
    code = flopcast(fit_args)
    if code == 0:
        print(json.dumps(load_model(args.out).summary(), indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
