"""When a parallel step's communication runs against its computation, and what of it the GPU waits for.

DDP's buckets run beside the backward, FSDP's gathers are prefetched, tensor-parallel all-reduces block, and a
pipeline fills and drains.

- Overlapped collectives run one after another on NCCL's own stream, each from the moment its data is ready; the
  GPU waits only for what is still running when its computation of that phase ends (``overlap_exposed_s``).
- A pipeline (GPipe or 1F1B, which keep the same critical path) runs ``K`` micro-batches over ``p`` stages: the
  first micro-batch passes every stage, the others follow at the pace of the slowest, and each hand-over between
  stages waits for its send: ``sum_s t_s + (K - 1) max_s t_s + 2 (p + K - 2) t_p2p`` (``t_s``: forward and
  backward of one micro-batch on stage ``s``; forward and backward hand-overs). With equal stages the GPUs idle
  ``(p - 1) / (K + p - 1)`` of the pipeline's time: the bubble.
"""

from __future__ import annotations

from collections.abc import Sequence


def overlap_exposed_s(ready_s: Sequence[float], comm_s: Sequence[float], compute_s: float) -> float:
    """Time the GPU waits after ``compute_s`` for collectives run in order on one stream.

    Args:
        ready_s: when each collective's data is ready, from the phase's start, s.
        comm_s: each collective's duration, s.
        compute_s: the phase's computation, s.
    """
    end = 0.0
    for ready, t in zip(ready_s, comm_s, strict=True):
        end = max(end, ready) + t
    return max(0.0, end - compute_s)


def prefetched_exposed_s(compute_s: Sequence[float], before_s: Sequence[float], after_s: Sequence[float]) -> float:
    """Time the GPU waits in a phase of FSDP units run in order, each needing a gather before it.

    The gather of unit ``i + 1`` is issued when unit ``i`` starts computing (one unit of prefetch, FSDP's
    ``BACKWARD_PRE`` and its forward issue order), after the gathers and reductions queued before it on the
    one communication stream; a reduction (``after_s``) is queued when its unit's computation ends.

    Args:
        compute_s: each unit's computation, in execution order, s.
        before_s: the collective each unit waits for before computing (its all-gather), s.
        after_s: the collective issued after each unit's computation (its reduce-scatter; 0 for none), s.
    """
    comm_free = compute_end = 0.0
    starts: list[float] = []
    pending: list[tuple[float, float]] = []  # (ready, duration) of reductions waiting for the stream
    for i, (c, b, a) in enumerate(zip(compute_s, before_s, after_s, strict=True)):
        issue = max(comm_free, starts[i - 1] if i else 0.0)
        for ready, t in pending:  # reductions queued before this gather was issued
            if ready <= issue:
                comm_free = max(comm_free, ready) + t
        pending = [(r, t) for r, t in pending if r > issue]
        gathered = max(comm_free, issue) + b
        comm_free = gathered
        start = max(compute_end, gathered)
        starts.append(start)
        compute_end = start + c
        if a > 0:
            pending.append((compute_end, a))
    for ready, t in pending:
        comm_free = max(comm_free, ready) + t
    return max(compute_end, comm_free) - sum(compute_s)


def bubble_share(stages: int, micro_batches: int) -> float:
    """Share of a pipeline's time its GPUs idle with equal stages: ``(p - 1) / (K + p - 1)``."""
    return (stages - 1) / (micro_batches + stages - 1)


def pipeline_s(stage_s: Sequence[float], micro_batches: int, p2p_s: float) -> float:
    """Forward and backward of ``micro_batches`` micro-batches through the stages (see the module doc), s.

    Args:
        stage_s: forward + backward of one micro-batch on each stage, s.
        micro_batches: micro-batches per step.
        p2p_s: one hand-over between neighbouring stages (the activation or its gradient), s.
    """
    p = len(stage_s)
    hand_overs = 2 * (p + micro_batches - 2) if p > 1 else 0
    return sum(stage_s) + (micro_batches - 1) * max(stage_s) + hand_overs * p2p_s
