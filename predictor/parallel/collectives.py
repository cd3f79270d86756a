"""The collectives a parallel step issues and their time: a bandwidth/latency model of NCCL's ring and tree.

This is a physical model of its own, apart from the learned cost model: a collective of ``S`` bytes over ``n``
GPUs takes ``latency + S x factor / busbw`` by the ring (``factor`` = 2(n-1)/n for all-reduce, (n-1)/n for
all-gather and reduce-scatter, 1 for send/recv: nccl-tests' ``doc/PERFORMANCE.md``), and an all-reduce can also
take NCCL's tree (half the algorithm bandwidth of 92 % of the bus bandwidth, logarithmic latency across nodes);
like NCCL's tuner (``src/graph/tuning.cc``: ``ncclTopoTuneModel``, ``ncclTopoGetAlgoTime``), the faster one is
chosen. Latencies are NCCL's tuner constants for its Simple protocol. The bus bandwidth is the slowest fabric the
group crosses: the intra-node fabric's, and for a group across nodes also the network's share per GPU (a node's
NICs shared by its GPUs, which all communicate at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flopcast.calibration.interconnect import COLLECTIVES, Interconnect, bus_factor

OPS = COLLECTIVES
BASE_LATENCY_S = {"ring": 8.4e-6, "tree": 8.4e-6}
"""NCCL's base latency of a collective, Simple protocol (``baseLatencies``, ``src/graph/tuning.cc``), s."""
HOP_LATENCY_S = {"nvlink": {"ring": 3.4e-6, "tree": 4.0e-6}, "pcie": {"ring": 5.7e-6, "tree": 4.0e-6},
                 "net": {"ring": 14.0e-6, "tree": 14.0e-6}}
"""NCCL's per-step latency by path and algorithm, Simple protocol (``hwLatencies``, ``src/graph/tuning.cc``), s."""
TREE_BANDWIDTH_SHARE = 0.92
"""NCCL's tree all-reduce reaches this share of the bus bandwidth (``busBw * .92``, ``src/graph/tuning.cc``)."""
TREE_ALGBW_RATIO = 0.5
"""A tree all-reduce's algorithm bandwidth is half its bus bandwidth (``ratio *= .5``, ``src/graph/tuning.cc``)."""
TREE_CORRECTION = (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .5, .5, .6, .6, .7, .8, .9)
"""NCCL's static correction of tree bandwidth by message size (Simple protocol, powers of two from 64 B:
``treeCorrectionFactor``, ``src/graph/tuning.cc``)."""
RING_PLATEAU = 1.9
"""Latency factor of a large multi-node ring all-reduce (``lat *= 1.9``, NCCL's "plateau effect of ring")."""


@dataclass(frozen=True)
class Collective:
    """One kind of collective a step issues.

    Attributes:
        op: ``all_reduce``, ``all_gather``, ``reduce_scatter`` or ``send_recv``.
        bytes: size of one call as nccl-tests counts it (the whole buffer, ``count x dtype size x ranks`` for an
            all-gather's output or a reduce-scatter's input; the message of a send/recv), bytes.
        group: ranks in the communicator.
        count: calls per step.
        phase: when it runs: ``forward``, ``backward`` or ``step`` (after the backward).
        what: what it moves (``gradient bucket 3 of 12``, ``row-parallel output of transformer.h.0.mlp.c_proj``).
        nodes: nodes the communicator spans.
        per_node: most of its ranks on one node.
        overlapped: whether it runs beside computation (DDP's buckets during the backward, FSDP's prefetches);
            otherwise the GPU waits for it.
    """

    op: str
    bytes: int
    group: int
    count: int
    phase: str
    what: str
    nodes: int = 1
    per_node: int = 0
    overlapped: bool = False

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"collective op must be one of {OPS}, not {self.op!r}")

    @property
    def bus_factor(self) -> float:
        """Bytes each GPU sends per byte of ``bytes`` (nccl-tests' bus bandwidth factor)."""
        return bus_factor(self.op, self.group)

    @property
    def bytes_per_gpu(self) -> float:
        """Bytes each GPU sends per call, bytes."""
        return self.bytes * self.bus_factor if self.group > 1 else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return {"op": self.op, "bytes": self.bytes, "group": self.group, "nodes": self.nodes, "count": self.count,
                "phase": self.phase, "what": self.what, "overlapped": self.overlapped,
                "bytes_per_gpu": self.bytes_per_gpu}


def busbw_bytes_per_s(c: Collective, ic: Interconnect, gpus_per_node: int) -> float:
    """Bus bandwidth a collective reaches: the intra-node fabric's, and across nodes at most the network per GPU.

    Args:
        c: the collective.
        ic: the interconnect.
        gpus_per_node: GPUs of the run on each node (they share the node's NICs).
    """
    bw = ic.intra.busbw(c.op)
    if c.nodes > 1:
        network = ic.inter.busbw(c.op) * ic.nics_per_node / max(gpus_per_node, 1)
        bw = min(bw, network) if c.per_node > 1 else network
    return bw


def _steps(op: str, n: int) -> int:
    return 2 * (n - 1) if op == "all_reduce" else n - 1 if op in ("all_gather", "reduce_scatter") else 1


def algorithm_times_s(c: Collective, ic: Interconnect, gpus_per_node: int) -> dict[str, float]:
    """Time of one call by each algorithm NCCL can run it with (``ring``; ``tree`` for an all-reduce), s."""
    if c.group <= 1:
        return {"ring": 0.0}
    bw = busbw_bytes_per_s(c, ic, gpus_per_node)
    intra_hops = HOP_LATENCY_S[ic.intra.latency_class]
    net_hops = HOP_LATENCY_S["net"]
    n, nodes = c.group, max(c.nodes, 1)
    steps = _steps(c.op, n)
    inter_steps = 0 if nodes == 1 else (2 * (nodes - 1) if c.op == "all_reduce" else nodes - 1 if c.op != "send_recv"
                                        else 1)
    measured = ic.intra.latency_s if nodes == 1 and ic.intra.latency_s is not None else None
    lat = measured if measured is not None else \
        BASE_LATENCY_S["ring"] + (steps - inter_steps) * intra_hops["ring"] + inter_steps * net_hops["ring"]
    if c.op == "all_reduce" and nodes > 1 and c.bytes >= n / 16.0 * 65536:
        lat *= RING_PLATEAU
    out = {"ring": lat + c.bytes * c.bus_factor / bw}
    if c.op == "all_reduce":
        ppn = c.per_node or max(n // nodes, 1)
        tree_lat = measured if measured is not None else BASE_LATENCY_S["tree"] + 2 * (
            (ppn - 1) * intra_hops["tree"] + math.log2(nodes) * net_hops["tree"])
        log_size = int(math.log2(max(c.bytes >> 6, 1)))
        correction = TREE_CORRECTION[log_size] if log_size < len(TREE_CORRECTION) else 1.0
        out["tree"] = tree_lat + c.bytes / (TREE_ALGBW_RATIO * TREE_BANDWIDTH_SHARE * correction * bw)
    return out


def collective_time_s(c: Collective, ic: Interconnect, gpus_per_node: int) -> tuple[float, str]:
    """Time of one call and the algorithm NCCL's tuner would pick (the faster), s.

    Args:
        c: the collective.
        ic: the interconnect.
        gpus_per_node: GPUs of the run on each node.
    """
    times = algorithm_times_s(c, ic, gpus_per_node)
    algo = min(times, key=times.get)
    return times[algo], algo
