"""What the released H200 steps say about fixed GPU allocations the step estimate misses (issue 15).

Run: ``python experiments/h200_workspace_check.py``. The campaign measures each step's peak above what was
allocated before it, in one process that measured earlier steps: the cuBLAS workspaces, allocated at a
thread's first matmul and never freed, sit in "before" for all but the first steps, so the released rows
show the step's own allocations. The script prints (1) how closely the analysis estimate matches them for
the small models (no conv: no transient cuDNN workspace), (2) the step peak a fresh training process would
need for ``max_memory_allocated`` to come out at 0.61-0.65x of the estimate if the gap were the workspaces
alone (Hopper, train: 2 x 32 MiB + 1 MiB Lt), and (3) which released rows are of that size.
"""

from __future__ import annotations

import sys

import pandas as pd

from flopcast.calibration.catalog import get_hardware
from flopcast.datasets.loader import DATASETS_DIR
from flopcast.predictor.memory import blas_workspace_bytes

MIB = 2**20
CONV_FAMILIES = {"cnn", "conv1d", "mobilenet", "resnet", "unet", "vgg", "vit"}


def main() -> int:
    steps = pd.read_parquet(DATASETS_DIR / "h200" / "steps.parquet")
    steps["gap_mib"] = (steps["measured_peak_memory_bytes"] - steps["est_peak_memory_bytes"]) / MIB
    small = steps[(steps["est_peak_memory_bytes"] < 600 * MIB) & ~steps["family"].isin(CONV_FAMILIES)]
    exact = small[small["gap_mib"] == 0]
    print(f"released H200 steps: {len(steps)}; small non-conv steps (estimate < 600 MiB): {len(small)}")
    print(f"  measured = estimate to the byte: {len(exact)} ({', '.join(sorted(set(exact['model'])))})")
    near = small[[any(abs(g - w) < 1.5 for w in (32, 33, 64, 65)) for g in small["gap_mib"]]]
    which = ", ".join(near["model"] + " bs " + near["batch_size"].astype(str))
    print(f"  |measured - estimate| median {small['gap_mib'].abs().median():.2f} MiB, "
          f"within 4 MiB: {(small['gap_mib'].abs() <= 4).mean():.0%}; gaps of 32-33 or 64-65 MiB "
          f"(a workspace inside the window): {len(near)} {which}")
    ops = pd.DataFrame({"op": ["aten.addmm", "aten.mm"], "phase": ["forward", "backward"]})
    workspace = blas_workspace_bytes(get_hardware("h200"), ops, env={})
    print(f"workspaces a fresh H200 train process adds (MLP-like step): {workspace / MIB:.0f} MiB")
    for ratio in (0.61, 0.65):
        print(f"  estimate / max_memory_allocated = {ratio}: step peak {ratio * workspace / (1 - ratio) / MIB:.0f} MiB")
    lo, hi = (r * workspace / (1 - r) for r in (0.61, 0.65))
    band = steps[steps["est_peak_memory_bytes"].between(lo * 0.8, hi * 1.2)]
    print("released steps of about that size (their fresh-process ratio with the workspaces):")
    for _, r in band.sort_values("est_peak_memory_bytes").iterrows():
        est = r["est_peak_memory_bytes"]
        print(f"  {r['model']:>16} bs {r['batch_size']:>5} {r['precision']}: estimate {est / MIB:6.1f} MiB, "
              f"ratio {est / (r['measured_peak_memory_bytes'] + workspace):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
