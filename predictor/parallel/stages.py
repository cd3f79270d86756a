"""One GPU's share of a traced step, as analyses the one cost path (``predict_on``) prices.

Pipeline stages cut from the op records, FSDP's sharded optimizer step, and the per-GPU memory estimate each
strategy leaves.

Pipeline stages split the layer stack into contiguous runs of layers (Megatron-LM's even split; earlier stages
take the extra layer when the count does not divide). Ops of a stack layer belong to its stage; ops outside the
stack belong to the first stage when they run before it in the forward (embeddings) and to the last otherwise
(final norm, head, loss), and backward ops likewise, mirrored. The optimizer's multi-tensor ops keep the tensors
of the stage's parameters; a parameter used on two stages (a word embedding tied to the LM head) is held by both,
as Megatron-LM does.

Memory is the analysis' breakdown at its peak, divided as documented in :func:`stage_memory` and
:func:`fsdp_memory`, and :data:`DDP_BUCKET_COPY` for DDP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from flopcast.features.analysis import Analysis, MemoryEstimate
from flopcast.features.records import OpRecord, Phase, TensorMeta
from flopcast.predictor.parallel.plan import ParallelError
from flopcast.predictor.parallel.shard import Param, ShardRecord, layer_of

MEMORY_KINDS = ("parameters", "buffers", "optimizer_state", "inputs", "activations", "gradients", "temporaries")
DDP_BUCKET_COPY = True
"""DDP keeps its gradient buckets beside the gradients (``gradient_as_bucket_view=False``, the default: "the saved
memory size will be equal to the total gradients size" when it is True, torch.nn.parallel.DistributedDataParallel
docs), so a DDP replica holds one more copy of its gradients."""
FSDP_GATHERED_UNITS = 2
"""Units whose full parameters an FSDP rank holds at once: the one computing and the one prefetched
(``BackwardPrefetch.BACKWARD_PRE``, FSDP's default)."""


@dataclass(frozen=True)
class Stage:
    """One pipeline stage of the traced model.

    Attributes:
        index: stage number (0 first).
        layers: the stack layers it holds, ``(first, last + 1)``.
        analysis: its ops (one micro-batch's forward and backward, and its optimizer step) and memory estimate.
        keep: which of the model's parameters (``ShardRecord.params`` order) it holds.
        boundary: module path of its last layer, whose output it sends to the next stage (``None``: last stage).
    """

    index: int
    layers: tuple[int, int]
    analysis: Analysis
    keep: tuple[bool, ...]
    boundary: str | None


def layer_stages(n_layers: int, pp: int) -> list[int]:
    """Stage of each of ``n_layers`` stack layers over ``pp`` contiguous stages (earlier stages take the extra)."""
    sizes = [n_layers // pp + (1 if s < n_layers % pp else 0) for s in range(pp)]
    return [s for s, n in enumerate(sizes) for _ in range(n)]


def _op_stages(a: Analysis, stack: tuple[str, int], of_layer: list[int], pp: int) -> list[int | None]:
    """Stage of each op record (``None``: an optimizer op, split by parameters instead)."""
    layers = [layer_of(o.module, stack) for o in a.ops]
    first = {ph: next((i for i, (o, L) in enumerate(zip(a.ops, layers, strict=True))
                       if o.phase == ph and L is not None), None) for ph in (Phase.FORWARD, Phase.BACKWARD)}
    out: list[int | None] = []
    for i, (o, layer) in enumerate(zip(a.ops, layers, strict=True)):
        if o.phase == Phase.OPTIMIZER:
            out.append(None)
        elif layer is not None:
            out.append(of_layer[layer])
        else:
            before = first[o.phase] is None or i < first[o.phase]
            out.append((0 if before else pp - 1) if o.phase == Phase.FORWARD else (pp - 1 if before else 0))
    return out


def _param_stages(params: list[Param], a: Analysis, stack: tuple[str, int], of_layer: list[int], pp: int
                  ) -> list[set[int]]:
    """Stages holding each parameter: its owners' stages (outside the stack: first stage if used before it)."""
    first_fwd: dict[str, int] = {}
    stack_start = next((i for i, o in enumerate(a.ops) if o.phase == Phase.FORWARD
                        and layer_of(o.module, stack) is not None), len(a.ops))
    for i, o in enumerate(a.ops):
        if o.phase == Phase.FORWARD:
            first_fwd.setdefault(o.module, i)

    def stage_of_module(m: str) -> int:
        layer = layer_of(m, stack)
        if layer is not None:
            return of_layer[layer]
        used = [i for mod, i in first_fwd.items() if mod == m or mod.startswith(m + ".")]
        return 0 if not used or min(used) < stack_start else pp - 1

    return [{stage_of_module(m) for m in (p.module, *p.shared_with)} for p in params]


def subset_optimizer_op(o: OpRecord, params: list[Param], keep: list[bool], shard: int = 1) -> OpRecord | None:
    """An optimizer op over the kept parameters only, each tensor cut to ``1 / shard`` (FSDP's flat shard).

    A multi-tensor op lists ``k`` tensors per parameter (``k`` lists of the parameters' shape, then scalars):
    the tensors of dropped parameters go, kept ones become ``(ceil(numel / shard),)``, and FLOPs and bytes scale
    with the elements kept. An op that lists no per-parameter tensors (a scalar of the clipping) stays whole.

    Returns:
        The op, or ``None`` when it keeps no tensor.
    """
    n = len(params)
    numel = [p.numel for p in params]
    groups = len(o.inputs) // n if n else 0
    per_param = groups > 0 and all(
        math.prod(t.shape) == numel[j % n] or t.shape == () for j, t in enumerate(o.inputs[:groups * n]))
    if not per_param:
        return o if shard == 1 or any(keep) else None

    def cut(tensors: tuple[TensorMeta, ...]) -> tuple[TensorMeta, ...]:
        g = len(tensors) // n
        kept = []
        for j, t in enumerate(tensors[:g * n]):
            if keep[j % n]:
                size = math.prod(t.shape)
                kept.append(t if shard == 1 or t.shape == () else
                            TensorMeta((math.ceil(size / shard),), t.dtype, t.itemsize_bytes))
        return (*kept, *tensors[g * n:])

    total = sum(numel)
    share = sum(v for v, k in zip(numel, keep, strict=True) if k) / shard / total if total else 0.0
    if share == 0:
        return None
    return replace(o, inputs=cut(o.inputs), outputs=cut(o.outputs) if len(o.outputs) >= n else o.outputs,
                   flops=round(o.flops * share), macs=round(o.macs * share),
                   bytes_read=round(o.bytes_read * share), bytes_written=round(o.bytes_written * share))


def _breakdown(a: Analysis) -> dict[str, int]:
    if a.memory is None:
        return {}
    return {k: int(a.memory.breakdown_bytes.get(k, 0)) for k in MEMORY_KINDS}


def _renumbered(ops: list[OpRecord]) -> tuple[OpRecord, ...]:
    return tuple(replace(o, index=i) for i, o in enumerate(ops))


def stage_memory(a: Analysis, params: list[Param], keep: list[bool], act_share: float, in_flight: int,
                 first: bool) -> dict[str, int]:
    """Memory by kind of one pipeline stage, from the whole model's breakdown at its peak (one micro-batch).

    Parameters and gradients: the stage's own. Optimizer state: the model's in proportion to the stage's
    trainable bytes. Activations and temporaries: the model's times the stage's share of the forward's written
    bytes, times the micro-batches in flight on the stage (1F1B keeps ``min(K, p - s)`` on stage ``s``). Inputs:
    the first stage's.
    """
    whole = _breakdown(a)
    all_bytes = sum(p.bytes for p in params) or 1
    trainable = sum(p.bytes for p in params if p.trainable) or 1
    own = sum(p.bytes for p, k in zip(params, keep, strict=True) if k)
    own_trainable = sum(p.bytes for p, k in zip(params, keep, strict=True) if k and p.trainable)
    return {
        "parameters": round(whole["parameters"] * own / all_bytes),
        "buffers": round(whole["buffers"] * act_share),
        "optimizer_state": round(whole["optimizer_state"] * own_trainable / trainable),
        "inputs": whole["inputs"] if first else 0,
        "activations": round(whole["activations"] * act_share * in_flight),
        "gradients": round(whole["gradients"] * own_trainable / trainable),
        "temporaries": round(whole["temporaries"] * act_share),
    }


def split_stages(a: Analysis, record: ShardRecord, pp: int, micro_batches: int) -> list[Stage]:
    """Cut the traced step (one micro-batch) into ``pp`` pipeline stages.

    Raises:
        ParallelError: no layer stack, or more stages than layers.
    """
    if record.stack is None:
        raise ParallelError("pipeline parallelism needs a stack of layers (an nn.ModuleList or nn.Sequential "
                            "holding most of the parameters); this model has none")
    stack = record.stack
    if pp > stack[1]:
        raise ParallelError(f"{pp} pipeline stages but the layer stack {stack[0] or 'of the model'} has only "
                            f"{stack[1]} layers")
    of_layer = layer_stages(stack[1], pp)
    op_stage = _op_stages(a, stack, of_layer, pp)
    holders = _param_stages(record.params, a, stack, of_layer, pp)
    trainable = [p for p in record.params if p.trainable]
    fwd_bytes = [o.bytes_written if o.phase == Phase.FORWARD else 0 for o in a.ops]
    total_fwd = sum(fwd_bytes) or 1
    head = f"{stack[0]}." if stack[0] else ""
    out = []
    for s in range(pp):
        keep = [s in h for h in holders]
        keep_trainable = [s in h for h, p in zip(holders, record.params, strict=True) if p.trainable]
        ops: list[OpRecord] = []
        for o, st in zip(a.ops, op_stage, strict=True):
            if st == s:
                ops.append(o)
            elif st is None:
                cut = subset_optimizer_op(o, trainable, keep_trainable)
                if cut is not None:
                    ops.append(cut)
        share = sum(b for b, st in zip(fwd_bytes, op_stage, strict=True) if st == s) / total_fwd
        memory = stage_memory(a, record.params, keep, share, min(micro_batches, pp - s), s == 0)
        estimate = MemoryEstimate(sum(memory.values()), memory) if a.memory is not None else None
        layers = [i for i, st in enumerate(of_layer) if st == s]
        kept_params = [p for p, k in zip(record.params, keep, strict=True) if k]
        analysis = replace(a, ops=_renumbered(ops), params=sum(p.numel for p in kept_params),
                           trainable_params=sum(p.numel for p in kept_params if p.trainable), memory=estimate)
        out.append(Stage(s, (layers[0], layers[-1] + 1), analysis, tuple(keep),
                         f"{head}{layers[-1]}" if s < pp - 1 else None))
    return out


def fsdp_memory(breakdown: dict[str, int], dp: int, largest_unit_bytes: int) -> dict[str, int]:
    """Memory by kind of an FSDP / ZeRO-3 rank.

    Parameters, gradients and optimizer state divided by ``dp``, plus the full parameters of
    :data:`FSDP_GATHERED_UNITS` units (the largest) gathered at once; activations, temporaries, buffers and inputs
    as without sharding.
    """
    out = dict(breakdown)
    for k in ("parameters", "gradients", "optimizer_state"):
        out[k] = math.ceil(breakdown.get(k, 0) / dp)
    out["parameters"] += FSDP_GATHERED_UNITS * largest_unit_bytes
    return out


def fsdp_shard(a: Analysis, params: list[Param], dp: int, largest_unit_bytes: int) -> Analysis:
    """The analysis an FSDP rank runs: its optimizer step over ``1 / dp`` of every parameter, its memory sharded."""
    if dp == 1:
        return a
    trainable = [p for p in params if p.trainable]
    keep = [True] * len(trainable)
    ops = [o if o.phase != Phase.OPTIMIZER else subset_optimizer_op(o, trainable, keep, shard=dp) for o in a.ops]
    memory = None
    if a.memory is not None:
        m = fsdp_memory(_breakdown(a), dp, largest_unit_bytes)
        memory = MemoryEstimate(sum(m.values()), m)
    return replace(a, ops=_renumbered([o for o in ops if o is not None]), memory=memory)


def ddp_memory(a: Analysis, grad_bytes: int) -> Analysis:
    """The analysis of a DDP replica: its peak plus the gradient buckets' copy (:data:`DDP_BUCKET_COPY`)."""
    if a.memory is None or not DDP_BUCKET_COPY:
        return a
    m = dict(a.memory.breakdown_bytes)
    m["gradients"] = m.get("gradients", 0) + grad_bytes
    return replace(a, memory=MemoryEstimate(a.memory.peak_bytes + grad_bytes, m, a.memory.peak_op_index))
