"""Summary of the released measurement data: rows per family, ceilings vs spec, idle power, launch overhead.

Run: ``python experiments/summarize_datasets.py [--data DIR ...]``. Prints the tables and writes
``experiments/results/datasets_summary.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from result_tables import markdown

from flopcast.datasets.loader import load_datasets

RESULTS = Path(__file__).resolve().parent / "results"


def _fmt(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def ceilings(descriptors: dict) -> pd.DataFrame:
    """Measured matmul peak and bandwidth against the spec values of each device."""
    rows = []
    for name, d in descriptors.items():
        spec, measured = d.get("peak_flops_per_s") or {}, d.get("measured_peak_flops_per_s") or {}
        for key, value in sorted(measured.items()):
            rows.append({"hardware": name, "ceiling": f"matmul {key} TFLOP/s", "measured": value / 1e12,
                         "spec": (spec.get(key) or float("nan")) / 1e12})
        rows.append({"hardware": name, "ceiling": "bandwidth GB/s",
                     "measured": (d.get("measured_bandwidth_bytes_per_s") or float("nan")) / 1e9,
                     "spec": (d.get("memory_bandwidth_bytes_per_s") or float("nan")) / 1e9})
        rows.append({"hardware": name, "ceiling": "launch overhead us",
                     "measured": (d.get("launch_overhead_s") or float("nan")) * 1e6, "spec": float("nan")})
        rows.append({"hardware": name, "ceiling": "idle power W", "measured": d.get("idle_power_w") or float("nan"),
                     "spec": d.get("tdp_w") or float("nan")})
    out = pd.DataFrame(rows)
    out["measured/spec"] = out["measured"] / out["spec"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", default=[])
    args = parser.parse_args()
    ds = load_datasets(args.data or None)
    mb, st = ds.microbench, ds.steps
    families = mb.groupby(["hardware", "family"]).agg(
        rows=("key", "size"), trusted=("trusted", "sum"), with_energy=("energy_j", lambda s: int(s.notna().sum())),
        dtypes=("dtype", lambda s: ",".join(sorted(set(s))))).reset_index()
    steps = st.groupby(["hardware", "mode", "precision"]).agg(
        rows=("key", "size"), models=("model", "nunique"), trusted=("trusted", "sum"),
        with_energy=("energy_j", lambda s: int(s.notna().sum()))).reset_index()
    sections = [f"# Released data (`python experiments/summarize_datasets.py`)\n\ndataset {ds.version}",
                "## Op microbenchmarks per family", markdown(families, _fmt),
                "## Model steps", markdown(steps, _fmt),
                "## Ceilings vs spec", markdown(ceilings(ds.descriptors), _fmt)]
    text = "\n\n".join(sections) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "datasets_summary.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
