"""Collective microbenchmarks: bus bandwidth of all-reduce, all-gather, reduce-scatter and send/recv by size.

Run in every rank of a ``torch.distributed`` job (``torchrun -m flopcast.calibration.collective_bench``, or a
SLURM task through :mod:`flopcast.calibration.collective_launch`). Each collective of each size is called
``repeats`` times back to back after a warm-up, in ``windows`` windows; a window's time per call is the slowest
rank's (a collective ends when its last rank does). Bandwidths follow nccl-tests (``doc/PERFORMANCE.md``): algbw =
size / time, busbw = algbw x :func:`flopcast.calibration.interconnect.bus_factor`. Rank 0 appends one row per
(collective, size) to ``<out>/collectives.jsonl`` (:data:`flopcast.datasets.schema.COLLECTIVE_COLUMNS`), like the op
microbenchmarks' store, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist

from flopcast.calibration.interconnect import COLLECTIVES, bus_factor
from flopcast.calibration.provenance import Provenance
from flopcast.calibration.store import Store, row_key
from flopcast.datasets.schema import COLLECTIVE_COLUMNS

TABLE = "collectives"
DEFAULT_SIZES = tuple(4 ** k * 1024 for k in range(1, 11))
"""4 KiB to 1 GiB by factors of 4, bytes: latency-bound sizes to the bandwidth plateau."""
ELEMENT = torch.float32


@dataclass(frozen=True)
class BenchConfig:
    """What every rank measures.

    Attributes:
        out_dir: campaign directory (shared by the ranks' nodes).
        sizes: collective sizes as nccl-tests counts them, bytes (rounded down to whole fp32 elements per rank).
        collectives: which of :data:`COLLECTIVES`.
        repeats: calls per timed window.
        windows: timed windows per size.
        warmup: untimed calls first.
        hardware: descriptor name of the GPUs (rows never mix hardware).
        campaign: campaign id.
    """

    out_dir: Path
    sizes: tuple[int, ...] = DEFAULT_SIZES
    collectives: tuple[str, ...] = COLLECTIVES
    repeats: int = 10
    windows: int = 5
    warmup: int = 3
    hardware: str = ""
    campaign: str = ""


def _buffers(op: str, nbytes: int, ranks: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and output of one call whose nccl-tests size is ``nbytes``."""
    per_rank = max(nbytes // ELEMENT.itemsize // ranks, 1)
    whole = per_rank * ranks
    if op == "all_gather":
        return torch.ones(per_rank, dtype=ELEMENT, device=device), torch.empty(whole, dtype=ELEMENT, device=device)
    if op == "reduce_scatter":
        return torch.ones(whole, dtype=ELEMENT, device=device), torch.empty(per_rank, dtype=ELEMENT, device=device)
    n = whole if op == "all_reduce" else max(nbytes // ELEMENT.itemsize, 1)  # send/recv: the message
    return torch.ones(n, dtype=ELEMENT, device=device), torch.empty(n, dtype=ELEMENT, device=device)


def call(op: str, x: torch.Tensor, y: torch.Tensor) -> None:
    """One collective; send/recv is nccl-tests' ring: each rank sends to the next and receives from the previous."""
    if op == "all_reduce":
        dist.all_reduce(x)
    elif op == "all_gather":
        dist.all_gather_into_tensor(y, x)
    elif op == "reduce_scatter":
        dist.reduce_scatter_tensor(y, x)
    else:
        rank, n = dist.get_rank(), dist.get_world_size()
        ops = [dist.P2POp(dist.isend, x, (rank + 1) % n), dist.P2POp(dist.irecv, y, (rank - 1) % n)]
        for w in dist.batch_isend_irecv(ops):
            w.wait()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_collective(op: str, nbytes: int, cfg: BenchConfig, device: torch.device) -> tuple[int, list[float]]:
    """The size actually moved (bytes) and the slowest rank's time per call in each window, s."""
    ranks = dist.get_world_size()
    x, y = _buffers(op, nbytes, ranks, device)
    size = (y if op == "all_gather" else x).numel() * ELEMENT.itemsize
    for _ in range(cfg.warmup):
        call(op, x, y)
    _sync(device)
    out = []
    for _ in range(cfg.windows):
        dist.barrier()
        start = time.perf_counter()
        for _ in range(cfg.repeats):
            call(op, x, y)
        _sync(device)
        local = torch.tensor([(time.perf_counter() - start) / cfg.repeats], dtype=torch.float64, device=device)
        dist.all_reduce(local, op=dist.ReduceOp.MAX)
        out.append(float(local.item()))
    return size, out


def measure(cfg: BenchConfig, device: torch.device, provenance: Provenance) -> int:
    """Measure every collective and size in this rank (``dist`` initialised); rank 0 writes the rows.

    Returns:
        Rows written by this rank (0 on the others).
    """
    ranks, backend = dist.get_world_size(), dist.get_backend()
    nodes = int(os.environ.get("FLOPCAST_NODES", "1"))
    store = Store(cfg.out_dir, TABLE, COLLECTIVE_COLUMNS) if dist.get_rank() == 0 else None
    written = 0
    for op in cfg.collectives:
        for nbytes in cfg.sizes:
            size, times = time_collective(op, nbytes, cfg, device)
            if store is None:
                continue
            key = row_key(kind="collective", op=op, bytes=size, ranks=ranks, nodes=nodes, backend=backend,
                          **provenance.versions())
            t = statistics.median(times)
            algbw = size / t
            store.append({"collective": op, "bytes": size, "ranks": ranks, "nodes": nodes, "backend": backend,
                          "time_s": t, "time_s_min": min(times), "time_s_max": max(times), "n_repeats": cfg.repeats,
                          "n_windows": cfg.windows, "algbw_bytes_per_s": algbw,
                          "busbw_bytes_per_s": algbw * bus_factor(op, ranks), **provenance.columns(key)})
            written += 1
    if store is not None:
        store.to_parquet()
        store.close()
    return written


def run_rank(cfg: BenchConfig, backend: str) -> int:
    """One rank of the job from its environment (torchrun's or submitit's): join, measure, leave.

    Returns:
        Rows written by this rank.
    """
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend)
    try:
        from flopcast.calibration.probe import probe_cpu, probe_gpu

        descriptor = probe_gpu(local) if device.type == "cuda" else probe_cpu()
        if cfg.hardware:
            descriptor = replace(descriptor, name=cfg.hardware)
        return measure(cfg, device, Provenance.of(descriptor, cfg.campaign))
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """``torchrun ... -m flopcast.calibration.collective_bench --out DIR``: what each rank runs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--backend", default="nccl", choices=("nccl", "gloo"))
    p.add_argument("--sizes", help="comma-separated sizes in bytes (default 4 KiB to 1 GiB by 4x)")
    p.add_argument("--hardware", default="")
    p.add_argument("--campaign", default="")
    args = p.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else DEFAULT_SIZES
    run_rank(BenchConfig(args.out, sizes, hardware=args.hardware, campaign=args.campaign), args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
