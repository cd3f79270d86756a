"""On a lent GPU: whether a fresh process's ``max_memory_allocated`` exceeds the step estimate by the workspaces.

Run on the device machine (about 30 s): ``python3 experiments/device/check_workspaces.py``. Each config runs in
a fresh process (so no workspace exists before it): build an MLP (biased linears: addmm forward, mm backward)
and a bias-free one, on the GPU, run 3 steps, and print ``max_memory_allocated`` beside flopcast's analysis
estimate of the step and :func:`flopcast.predictor.memory.blas_workspace_bytes` for this GPU. The gap should
equal the workspace column (2 x 32 MiB + 1 MiB for an H100/H200 train step, 32 + 1 MiB for inference);
``torch._C._cuda_clearCublasWorkspaces()`` then shows how much of the allocated memory the workspaces were.
"""

from __future__ import annotations

import json
import subprocess
import sys

CONFIGS = [("mlp", "train", 256), ("mlp", "infer", 256), ("nobias", "train", 256), ("mlp", "train", 8192)]

CHILD = r"""
import json, sys, torch
from torch import nn
from flopcast.calibration.probe import probe_local
from flopcast.features.api import analyze
from flopcast.features.step import make_step
from flopcast.predictor.analysis_cache import StepAnalysis
from flopcast.predictor.memory import blas_workspace_bytes

kind, mode, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
bias = kind == "mlp"

def build():
    return nn.Sequential(nn.Linear(784, 1024, bias=bias), nn.ReLU(), nn.Linear(1024, 1024, bias=bias), nn.ReLU(),
                         nn.Linear(1024, 10, bias=bias))

opt = "adamw" if mode == "train" else "none"
a = analyze(build, ["float32[B,784]"], batch_size=batch, mode=mode, optimizer=opt, device="cuda")
workspace = blas_workspace_bytes(probe_local("cuda")[0], StepAnalysis.of(a).ops)
torch.cuda.reset_peak_memory_stats()
step = make_step(build().cuda(), [torch.randn(batch, 784, device="cuda")], mode=mode, optimizer=opt,
                 precision="fp32", device="cuda")
for _ in range(3):
    step()
torch.cuda.synchronize()
peak, allocated = torch.cuda.max_memory_allocated(), torch.cuda.memory_allocated()
torch._C._cuda_clearCublasWorkspaces()
print(json.dumps({"peak": peak, "estimate": a.peak_memory_bytes, "workspace": workspace,
                  "freed_by_clearing": allocated - torch.cuda.memory_allocated()}))
"""


def main() -> int:
    mib = 2**20
    print(f"{'config':>22} {'max_alloc':>10} {'estimate':>10} {'gap':>8} {'workspace':>10} {'cleared':>8}  (MiB)")
    for kind, mode, batch in CONFIGS:
        out = subprocess.run([sys.executable, "-c", CHILD, kind, mode, str(batch)], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{kind + ' ' + mode + ' bs ' + str(batch):>22} {r['peak'] / mib:10.1f} {r['estimate'] / mib:10.1f} "
              f"{(r['peak'] - r['estimate']) / mib:8.1f} {r['workspace'] / mib:10.1f} "
              f"{r['freed_by_clearing'] / mib:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
