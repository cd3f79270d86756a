"""What each parallel strategy sends per step: the collectives (op, bytes, group, count), from the traced step.

DDP, FSDP / ZeRO-3, Megatron tensor parallelism and pipeline stages:

- DDP (``torch.nn.parallel.DistributedDataParallel``): one all-reduce per gradient bucket, buckets filled in the
  order gradients become ready in the backward (DDP rebuilds them so after its first iteration), the first
  closed at 1 MiB (``torch.distributed._DEFAULT_FIRST_BUCKET_BYTES``) and the others at 25 MiB
  (``_DEFAULT_BUCKET_CAP_MB``), each launched when its last gradient is ready, beside the rest of the backward.
  Accumulated micro-batches run under ``no_sync``: one round of buckets per step.
- FSDP / ZeRO-3 (one unit per stack layer plus the root, a transformer auto-wrap policy): per step an
  all-gather of each unit's parameters before its forward and again before its backward (the root unit keeps
  its parameters after the forward), and a reduce-scatter of each unit's gradients.
- Tensor parallelism (Megatron-LM): per micro-batch, an all-reduce of each row-parallel output in the forward and
  of each column-parallel input's gradient in the backward (where that input needs one); a vocabulary-parallel
  embedding all-reduces its output in the forward, the vocabulary-parallel head its input's gradient in the
  backward, and the vocabulary-parallel cross-entropy all-reduces three floats per token (the logits' max, the
  target logit, the sum of exponentials).
- Pipeline stages: per micro-batch, the activation a stage's last layer outputs, sent forward, and its gradient,
  sent back; a word embedding held by the first and the last stage has its gradient all-reduced between them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from flopcast.predictor.parallel.collectives import Collective
from flopcast.predictor.parallel.plan import Group
from flopcast.predictor.parallel.shard import Param, ShardRecord

FIRST_BUCKET_BYTES = 1024 * 1024
"""DDP's first gradient bucket cap, bytes (``torch.distributed._DEFAULT_FIRST_BUCKET_BYTES``)."""
BUCKET_CAP_BYTES = 25 * 1024 * 1024
"""DDP's gradient bucket cap, bytes (``bucket_cap_mb`` default 25, MiB: ``_DEFAULT_BUCKET_CAP_MB``)."""
CROSS_ENTROPY_ALL_REDUCES = 3
"""All-reduces of one fp32 per token a vocabulary-parallel cross-entropy issues (max, target logit, sum of exp)."""
FP32_BYTES = 4


def _on(group: Group) -> dict[str, int]:
    return {"group": group.size, "nodes": group.nodes, "per_node": group.per_node}


def ddp_buckets(ready: Sequence[Param], first: int = FIRST_BUCKET_BYTES, cap: int = BUCKET_CAP_BYTES
                ) -> list[list[Param]]:
    """Gradient buckets as DDP's reducer assigns them (``compute_bucket_assignment_by_size``).

    Args:
        ready: trainable parameters in the order their gradients become ready.
        first: the first bucket's cap, bytes.
        cap: every later bucket's cap, bytes.

    Returns:
        The buckets, in launch order: a bucket closes once it holds at least its cap; buckets are per dtype.
    """
    open_: dict[int, list[Param]] = {}
    size: dict[int, int] = {}
    limit: dict[int, int] = {}
    out: list[list[Param]] = []
    for p in ready:
        key = p.itemsize
        open_.setdefault(key, []).append(p)
        size[key] = size.get(key, 0) + p.bytes
        limit.setdefault(key, first)
        if size[key] >= limit[key]:
            out.append(open_.pop(key))
            size[key], limit[key] = 0, cap
    out.extend(b for b in open_.values() if b)
    return out


def ddp_collectives(buckets: list[list[Param]], group: Group) -> list[Collective]:
    """One all-reduce per bucket, overlapped with the backward."""
    if group.size == 1:
        return []
    n = len(buckets)
    return [Collective("all_reduce", sum(p.bytes for p in b), count=1, phase="backward", overlapped=True,
                       what=f"gradient bucket {i + 1} of {n}", **_on(group)) for i, b in enumerate(buckets)]


def fsdp_collectives(units: dict[str, int], group: Group, train: bool) -> list[Collective]:
    """FSDP's all-gathers and reduce-scatters per step (see the module doc)."""
    if group.size == 1:
        return []
    out = []
    for unit, nbytes in units.items():
        out.append(Collective("all_gather", nbytes, count=1, phase="forward", overlapped=True,
                              what=f"parameters of {unit}", **_on(group)))
        if not train:
            continue
        if unit != "root":
            out.append(Collective("all_gather", nbytes, count=1, phase="backward", overlapped=True,
                                  what=f"parameters of {unit} (resharded after the forward)", **_on(group)))
        out.append(Collective("reduce_scatter", nbytes, count=1, phase="backward", overlapped=True,
                              what=f"gradients of {unit}", **_on(group)))
    return out


def tensor_parallel_collectives(record: ShardRecord, group: Group, train: bool, micro_batches: int,
                                layers: set[str] | None = None) -> list[Collective]:
    """Megatron's all-reduces over the tensor-parallel group (see the module doc), per step.

    Args:
        record: the surgery and the traced calls.
        group: the tensor-parallel group.
        train: whether the step has a backward.
        micro_batches: forward/backward passes per step.
        layers: module paths of the pipeline stage's layers and ends to keep (``None``: all).
    """
    if group.size == 1 or record.tp == 1:
        return []
    out = []

    def keep(path: str) -> bool:
        return layers is None or any(path == p or path.startswith(p + ".") for p in layers)

    for pair in record.pairs:
        row, col = record.calls.get(pair.row), record.calls.get(pair.columns[0])
        if row is None or col is None or not keep(pair.row):
            continue
        out.append(Collective("all_reduce", row.out_bytes, count=micro_batches, phase="forward",
                              what=f"row-parallel output of {pair.row}", **_on(group)))
        if train and col.in_requires_grad:
            out.append(Collective("all_reduce", col.in_bytes, count=micro_batches, phase="backward",
                                  what=f"input gradient of {', '.join(pair.columns)}", **_on(group)))
    if record.vocab is not None:
        emb, head = (record.calls.get(p) for p in record.vocab)
        if emb is not None and keep(record.vocab[0]):
            out.append(Collective("all_reduce", emb.out_bytes, count=micro_batches, phase="forward",
                                  what=f"vocabulary-parallel embedding {record.vocab[0]}", **_on(group)))
        if head is not None and keep(record.vocab[1]) and train:
            tokens = math.prod(head.out_shape[:-1])
            out.append(Collective("all_reduce", tokens * FP32_BYTES, count=CROSS_ENTROPY_ALL_REDUCES * micro_batches,
                                  phase="forward", what="vocabulary-parallel cross-entropy (max, target, sum)",
                                  **_on(group)))
            if head.in_requires_grad:
                out.append(Collective("all_reduce", head.in_bytes, count=micro_batches, phase="backward",
                                      what=f"input gradient of {record.vocab[1]}", **_on(group)))
    return out


def pipeline_collectives(record: ShardRecord, boundary: str, group: Group, train: bool, micro_batches: int
                         ) -> list[Collective]:
    """The activation a stage sends forward (and its gradient back) per micro-batch."""
    call = record.calls.get(boundary)
    if call is None:
        return []
    link = {"group": 2, "nodes": 1 + (group.nodes > 1), "per_node": 1 if group.nodes > 1 else 2}
    out = [Collective("send_recv", call.out_bytes, count=micro_batches, phase="forward",
                      what=f"activations out of {boundary}", **link)]
    if train:
        out.append(Collective("send_recv", call.out_bytes, count=micro_batches, phase="backward",
                              what=f"their gradient back to {boundary}", **link))
    return out


def embedding_collectives(params: list[Param], shared: list[bool], group: Group) -> list[Collective]:
    """The all-reduce of parameters the first and last stage both hold (a tied word embedding), once per step."""
    nbytes = sum(p.bytes for p, s in zip(params, shared, strict=True) if s and p.trainable)
    if not nbytes:
        return []
    link = {"group": 2, "nodes": 1 + (group.nodes > 1), "per_node": 1 if group.nodes > 1 else 2}
    return [Collective("all_reduce", nbytes, count=1, phase="step",
                       what="gradient of the word embedding the first and last stage share", **link)]
