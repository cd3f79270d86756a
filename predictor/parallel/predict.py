"""``flopcast predict --gpus N``: a step on N GPUs under DDP, FSDP, tensor and pipeline parallelism, and its run.

One cost path: each GPU's computation is its sharded step (:mod:`~flopcast.predictor.parallel.shard`,
:mod:`~flopcast.predictor.parallel.stages`) priced by :func:`flopcast.predictor.predict.predict_on`, the function
behind a single-GPU ``predict``. Communication is a separate physical model
(:mod:`~flopcast.predictor.parallel.traffic`: what is sent; :mod:`~flopcast.predictor.parallel.collectives`: how
long it takes; :mod:`~flopcast.predictor.parallel.schedule`: what of it the GPU waits for).

``--batch-size`` is the global batch of one optimizer step: each data-parallel replica takes ``1 / dp`` of it,
each pipeline micro-batch ``1 / K`` of that. Energy per step is every GPU's predicted energy for its work plus
its idle power while it waits (communication, pipeline bubble), plus the host's share: the node's maximum power
beyond its GPUs' TDPs (a catalog system's spec, an upper bound), for the GPUs of the node the run uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.interconnect import Interconnect, resolve_interconnect
from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig
from flopcast.features.records import Phase
from flopcast.predictor.analysis_cache import StepAnalysis
from flopcast.predictor.compose import op_times
from flopcast.predictor.featurize import analysis_device
from flopcast.predictor.model import CostModel
from flopcast.predictor.parallel.collectives import Collective, collective_time_s
from flopcast.predictor.parallel.plan import ParallelError, ParallelPlan
from flopcast.predictor.parallel.schedule import bubble_share, overlap_exposed_s, pipeline_s, prefetched_exposed_s
from flopcast.predictor.parallel.shard import ShardRecord, layer_of, sharded_builder
from flopcast.predictor.parallel.stages import ddp_memory, fsdp_shard, split_stages
from flopcast.predictor.parallel.traffic import (
    ddp_buckets,
    ddp_collectives,
    embedding_collectives,
    fsdp_collectives,
    pipeline_collectives,
    tensor_parallel_collectives,
)
from flopcast.predictor.power import idle_power_w, tdp_w
from flopcast.predictor.predict import (
    PredictConfig,
    Prediction,
    calibrated_for,
    predict_on,
    resolve_hardware,
    run_totals,
)

Transform = Callable[[Callable[[], torch.nn.Module]], Callable[[], torch.nn.Module]]
Analyse = Callable[[AnalyzeConfig, Transform | None], Analysis]
PHASES = ("forward", "backward", "optimizer")


@dataclass(frozen=True)
class ParallelConfig:
    """Everything ``flopcast predict --gpus`` needs.

    Attributes:
        predict: the step and run (its ``analysis.batch_size`` is the global batch), the GPUs to compare.
        gpus: GPUs of the run.
        nodes: nodes they sit on.
        parallel: ``--parallel``: ``dp``, ``fsdp``, ``tp``, ``pp`` or degrees (``dp2,tp2,pp2``).
        micro_batches: pipeline micro-batches per step.
        interconnect: ``--interconnect``: ``nvlink``, ``pcie``, a fabric name, ``INTRA,NETWORK`` or a file
            (``None``: the GPU's catalog system).
    """

    predict: PredictConfig
    gpus: int
    nodes: int = 1
    parallel: str = "dp"
    micro_batches: int = 1
    interconnect: str | None = None

    def __post_init__(self) -> None:
        plan = self.plan
        a = self.predict.analysis
        if plan.pp > 1 and a.step.grad_accumulation > 1:
            raise ParallelError("with pipeline stages give --micro-batches, not --grad-accumulation")
        if a.mode != "train" and (plan.fsdp or plan.pp > 1):
            raise ParallelError("--parallel fsdp and pp are predicted for training steps: use --mode train")
        split = plan.dp * (plan.micro_batches if plan.pp > 1 else 1)
        if a.batch_size % split:
            what = f"{plan.dp} data-parallel replicas" + (f" x {plan.micro_batches} micro-batches" if plan.pp > 1
                                                           else "")
            raise ParallelError(f"--batch-size {a.batch_size} (the global batch) cannot be split evenly over {what}")

    @property
    def plan(self) -> ParallelPlan:
        """The parallel layout."""
        return ParallelPlan.parse(self.parallel, self.gpus, self.nodes, self.micro_batches)

    @property
    def micro_batch_size(self) -> int:
        """Samples of one GPU's forward and backward pass."""
        plan = self.plan
        return self.predict.analysis.batch_size // plan.dp // (plan.micro_batches if plan.pp > 1 else 1)


@dataclass(frozen=True)
class TimedCollective:
    """A collective with its time.

    Attributes:
        collective: what is sent.
        time_s: one call, s.
        algorithm: ``ring`` or ``tree``, as NCCL's tuner would pick.
    """

    collective: Collective
    time_s: float
    algorithm: str

    @property
    def total_s(self) -> float:
        """All its calls in one step, s."""
        return self.time_s * self.collective.count

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {**self.collective.to_dict(), "time_s": self.time_s, "algorithm": self.algorithm,
                "step_time_s": self.total_s}


@dataclass(frozen=True)
class Role:
    """GPUs that run the same work: every GPU of a run without pipeline stages, else one stage's GPUs.

    Attributes:
        name: ``every GPU`` or ``stage 2 (layers 18-26)``.
        gpus: how many GPUs run it.
        prediction: ``predict_on`` of its step (one micro-batch's forward and backward plus the optimizer step
            with pipeline stages).
        phase_share: share of that step's op time per phase (forward, backward, optimizer).
        collectives: what it sends per step, timed.
        busy_s: its computation per step (every micro-batch), 10 / 50 / 90 %, s.
        exposed_s: communication it waits for outside the pipeline schedule, s.
    """

    name: str
    gpus: int
    prediction: Prediction
    phase_share: dict[str, float]
    collectives: tuple[TimedCollective, ...]
    busy_s: tuple[float, float, float]
    exposed_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        p = self.prediction
        return {"role": self.name, "gpus": self.gpus, "compute_s": self.busy_s[1], "compute_s_p10": self.busy_s[0],
                "compute_s_p90": self.busy_s[2], "exposed_comm_s": self.exposed_s,
                "peak_memory_bytes": p.peak_memory_bytes, "est_peak_memory_bytes": p.est_peak_memory_bytes,
                "fits": p.fits, "phase_share": self.phase_share,
                "collectives": [c.to_dict() for c in self.collectives]}


@dataclass(frozen=True)
class ParallelPrediction:
    """One training step on N GPUs of one type.

    Attributes:
        hardware: the GPU.
        plan: the layout.
        interconnect: the links.
        roles: the GPUs' kinds of work.
        step_time_s: the step, 10 / 50 / 90 %, s.
        comm_exposed_s: communication on the step's critical path, s.
        comm_total_s: every collective of one GPU's step, hidden or not, s (the busiest role).
        bubble_share: pipeline idle share with equal stages, ``(p - 1) / (K + p - 1)`` (``None``: no pipeline).
        single_gpu: ``predict_on`` of the whole global batch on one GPU.
        step_energy_j: every GPU plus the host share, 10 / 50 / 90 %, J.
        gpu_energy_j: every GPU's share of the median, J.
        host_energy_j: the host share of the median, J.
        notes: one-line caveats.
        extra: run totals and anything a caller adds.
    """

    hardware: str
    plan: ParallelPlan
    interconnect: Interconnect
    roles: tuple[Role, ...]
    step_time_s: tuple[float, float, float]
    comm_exposed_s: float
    comm_total_s: float
    bubble_share: float | None
    single_gpu: Prediction
    step_energy_j: tuple[float, float, float]
    gpu_energy_j: float
    host_energy_j: float
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        """One GPU's step at the global batch over this step."""
        return self.single_gpu.step_time_s[1] / self.step_time_s[1]

    @property
    def scaling_efficiency(self) -> float:
        """Speed-up per GPU: 1 when N GPUs are N times faster than one."""
        return self.speedup / self.plan.gpus

    @property
    def peak_memory_bytes(self) -> int | None:
        """The largest per-GPU peak of the roles (``None``: not estimated)."""
        peaks = [r.prediction.peak_memory_bytes for r in self.roles]
        return None if any(p is None for p in peaks) else max(p for p in peaks if p is not None)

    @property
    def fits(self) -> bool | None:
        """Whether every GPU's peak fits its memory (``None``: unknown)."""
        fits = [r.prediction.fits for r in self.roles]
        return None if any(f is None for f in fits) else all(fits)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of ``predict --gpus --json``."""
        t, e, one = self.step_time_s, self.step_energy_j, self.single_gpu
        plan = self.plan
        return {
            "hardware": self.hardware, "gpus": plan.gpus, "nodes": plan.nodes, "parallel": plan.describe(),
            "dp": plan.dp, "tp": plan.tp, "pp": plan.pp, "fsdp": plan.fsdp, "micro_batches": plan.micro_batches,
            "interconnect": self.interconnect.describe(), "calibrated": one.calibrated,
            "step_time_s": t[1], "step_time_s_p10": t[0], "step_time_s_p90": t[2],
            "compute_s": max(r.busy_s[1] for r in self.roles), "comm_exposed_s": self.comm_exposed_s,
            "comm_total_s": self.comm_total_s, "bubble_share": self.bubble_share,
            "step_energy_j": e[1], "step_energy_j_p10": e[0], "step_energy_j_p90": e[2],
            "gpu_energy_j": self.gpu_energy_j, "host_energy_j": self.host_energy_j,
            "peak_memory_bytes": self.peak_memory_bytes, "memory_bytes": one.memory_bytes, "fits": self.fits,
            "single_gpu_step_time_s": one.step_time_s[1], "single_gpu_fits": one.fits, "speedup": self.speedup,
            "scaling_efficiency": self.scaling_efficiency, "roles": [r.to_dict() for r in self.roles],
            "notes": list(self.notes), **self.extra,
        }


def analyse_target(config: AnalyzeConfig, transform: Transform | None) -> Analysis:
    """The CLI's analysis of a target, its builder wrapped by ``transform`` (one GPU's shard)."""
    from flopcast.features.api import analyze_config

    return analyze_config(config, transform=transform)


def _phase_share(model: CostModel, step: StepAnalysis, d: HardwareDescriptor, precision: str
                 ) -> tuple[dict[str, float], list[float]]:
    """Share of the op model's time per phase, and each op row's median time (0 for free ops)."""
    t = op_times(model, step.ops, d, precision)
    times = [0.0] * len(step.ops)
    for label, q in zip(t.work.index, t.q[:, 1], strict=True):
        if isinstance(label, int) and 0 <= label < len(times):
            times[label] += float(q)
    by_phase = {ph: 0.0 for ph in PHASES}
    for ph, q in zip(t.work["phase"].astype(str), t.q[:, 1], strict=True):
        by_phase[ph] = by_phase.get(ph, 0.0) + float(q)
    total = sum(by_phase.values()) or 1.0
    return {k: v / total for k, v in by_phase.items()}, times


def ready_order(record: ShardRecord, a: Analysis, op_s: list[float]) -> list[tuple[float, int]]:
    """When each trainable parameter's gradient is ready, as a share of the backward, and its index.

    The backward runs the forward's modules in reverse, so a module's gradients are ready once the backward has
    done the work of every module after it: ``1 - (forward op time before the module's first op) / (forward op
    time)``. Ties (a module's own parameters) go in reverse definition order.
    """
    forward = [(o.module, s) for o, s in zip(a.ops, op_s, strict=True) if o.phase == Phase.FORWARD]
    total = sum(s for _, s in forward) or 1.0
    before: dict[str, float] = {}
    done = 0.0
    for module, s in forward:
        before.setdefault(module, done)
        done += s

    def start(module: str) -> float:
        starts = [v for m, v in before.items() if m == module or m.startswith(module + ".")]
        return min(starts) if starts else 0.0

    out = []
    for i, p in enumerate(record.params):
        if p.trainable:
            first = min(start(m) for m in (p.module, *p.shared_with))
            out.append((1.0 - first / total, i))
    return sorted(out, key=lambda x: (x[0], -x[1]))


def _timed(cs: list[Collective], ic: Interconnect, plan: ParallelPlan) -> tuple[TimedCollective, ...]:
    out = []
    for c in cs:
        t, algo = collective_time_s(c, ic, plan.gpus_per_node)
        out.append(TimedCollective(c, t, algo))
    return tuple(out)


def _check_gpu(d: HardwareDescriptor, plan: ParallelPlan, ic: Interconnect) -> None:
    if d.kind != "gpu":
        raise ParallelError(f"--gpus predicts GPUs: {d.name} is a {d.kind}")
    if ic.gpus_per_node and plan.gpus_per_node > ic.gpus_per_node:
        raise ParallelError(f"{plan.gpus_per_node} GPUs per node, but a {ic.system} node holds {ic.gpus_per_node}: "
                            f"add --nodes {math.ceil(plan.gpus / ic.gpus_per_node)}")
    if ic.intra.max_gpus and plan.gpus_per_node > ic.intra.max_gpus:
        raise ParallelError(f"{ic.intra.name} joins at most {ic.intra.max_gpus} GPUs: {plan.gpus_per_node} per node "
                            "need more nodes or another --interconnect")


def _exposed_ddp(role_colls: tuple[TimedCollective, ...], ready: list[float], backward_s: float) -> float:
    """DDP buckets beside the backward (one micro-batch's)."""
    buckets = [c for c in role_colls if c.collective.what.startswith("gradient bucket")]
    return overlap_exposed_s([r * backward_s for r in ready], [c.time_s for c in buckets], backward_s)


def _bucket_ready(buckets: list[list[Any]], order: list[tuple[float, int]], record: ShardRecord) -> list[float]:
    when = {record.params[i].name: frac for frac, i in order}
    return [max(when[p.name] for p in b) for b in buckets]


def _exposed_fsdp(colls: tuple[TimedCollective, ...], units: dict[str, int], share: dict[str, float],
                  compute_s: float) -> float:
    """FSDP's gathers and reductions against the forward and backward (units' compute by parameter share)."""
    total = sum(units.values()) or 1
    names = list(units)
    by = {(c.collective.op, c.collective.phase, c.collective.what.split(" of ", 1)[1].split(" (")[0]): c.time_s
          for c in colls}
    exposed = 0.0
    for phase, order in (("forward", names), ("backward", names[::-1])):
        c = [compute_s * share[phase] * units[u] / total for u in order]
        before = [by.get(("all_gather", phase, u), 0.0) for u in order]
        after = [by.get(("reduce_scatter", phase, u), 0.0) for u in order]
        exposed += prefetched_exposed_s(c, before, after)
    return exposed


def _scale(q: tuple[float, float, float], by: float) -> tuple[float, float, float]:
    return (q[0] * by, q[1] * by, q[2] * by)


def predict_parallel(config: ParallelConfig, model: CostModel, analyse: Analyse = analyse_target
                     ) -> list[ParallelPrediction]:
    """Predict the configured step on ``config.gpus`` GPUs of each configured GPU type.

    Raises:
        ParallelError: a layout the model or the batch cannot take, a CPU, too many GPUs for a node.
        UnknownInterconnectError: an interconnect the catalog does not know.
    """
    plan = config.plan
    model, calibration, _ = calibrated_for(config.predict, model)
    out = []
    for name in config.predict.hardware:
        d = resolve_hardware(name, calibration)
        ic = resolve_interconnect(d, config.interconnect) if d.kind == "gpu" else None
        if ic is None:
            raise ParallelError(f"--gpus predicts GPUs: {d.name} is a {d.kind}")
        _check_gpu(d, plan, ic)
        out.append(_predict_one(config, plan, model, d, ic, analyse))
    return out


def _predict_one(config: ParallelConfig, plan: ParallelPlan, model: CostModel, d: HardwareDescriptor,
                 ic: Interconnect, analyse: Analyse) -> ParallelPrediction:
    base = replace(config.predict.analysis, device=analysis_device(d.kind), trace_all_layers=True)
    precision, mode = base.precision, base.mode
    train = mode == "train"
    record = ShardRecord()
    micro = replace(base, batch_size=config.micro_batch_size)
    a = analyse(micro, lambda build: sharded_builder(build, plan.tp, record, stack=plan.pp > 1 or plan.fsdp))
    one = predict_on(model, StepAnalysis.of(analyse(base, None)), d, precision, mode)
    accumulation = base.step.grad_accumulation
    roles: list[Role] = []
    notes = list(ic.assumed) if plan.nodes > 1 else []
    tp_group, dp_group, pp_group = plan.group("tp"), plan.group("dp"), plan.group("pp")
    largest_unit = max(record.units.values(), default=0)

    def role(name: str, analysis: Analysis, n_gpus: int, units: dict[str, int], layers: set[str] | None,
             keep: tuple[bool, ...] | None, extra: list[Collective], micro_batches: int
             ) -> tuple[Role, dict[str, float]]:
        held = [p for i, p in enumerate(record.params) if keep is None or keep[i]]
        if plan.fsdp:
            analysis = fsdp_shard(analysis, held, plan.dp, largest_unit)
        elif plan.dp > 1 and train:
            analysis = ddp_memory(analysis, sum(p.bytes for p in held if p.trainable))
        step = StepAnalysis.of(analysis)
        p = predict_on(model, step, d, precision, mode)
        share, op_s = _phase_share(model, step, d, precision)
        colls: list[Collective] = tensor_parallel_collectives(record, tp_group, train, micro_batches, layers)
        ready: list[float] = []
        if train and plan.fsdp:
            colls += fsdp_collectives(units, dp_group, train)
        elif train and plan.dp > 1:
            order = [(f, i) for f, i in ready_order(record, analysis, op_s) if keep is None or keep[i]]
            buckets = ddp_buckets([record.params[i] for _, i in order])
            colls += ddp_collectives(buckets, dp_group)
            ready = _bucket_ready(buckets, order, record)
        timed = _timed(colls + extra, ic, plan)
        t = p.step_time_s
        backward_s = t[1] * share["backward"] / max(micro_batches, accumulation)
        blocking = sum(c.total_s for c in timed if _blocking(c))
        if plan.fsdp:
            overlapped = _exposed_fsdp(timed, units, share, t[1])
        else:
            overlapped = _exposed_ddp(timed, ready, backward_s) if ready else 0.0
        return Role(name, n_gpus, p, share, timed, t, blocking + overlapped), share

    if plan.pp == 1:
        r, _ = role("every GPU", a, plan.gpus, record.units, None, None, [], accumulation)
        roles.append(r)
        step_s = _scale_add(r.prediction.step_time_s, r.exposed_s)
        exposed, bubble = r.exposed_s, None
    else:
        stages = split_stages(a, record, plan.pp, plan.micro_batches)
        stack = record.stack
        assert stack is not None  # split_stages checked it
        head = f"{stack[0]}." if stack[0] else ""
        shared = [len(s) > 1 for s in _holders(stages)]
        fb: list[tuple[float, float, float]] = []
        after: list[float] = []
        compute_fb: list[float] = []
        compute_after: list[float] = []
        p2p_s = 0.0
        for st in stages:
            layers = {f"{head}{i}" for i in range(*st.layers)}
            ends = _stage_ends(record, st.index, plan.pp, stack)
            units = {k: v for k, v in record.units.items() if _unit_in(k, st.layers, st.index, plan.pp)}
            extra = pipeline_collectives(record, st.boundary, pp_group, True, plan.micro_batches) if st.boundary else []
            if st.index == 0:
                extra += embedding_collectives(record.params, shared, pp_group)
            r, share = role(f"stage {st.index} (layers {st.layers[0]}-{st.layers[1] - 1})", st.analysis,
                            plan.gpus // plan.pp, units, layers | ends, st.keep, extra, plan.micro_batches)
            tp_s = sum(c.total_s for c in r.collectives if _blocking(c)) / plan.micro_batches
            fb_share = share["forward"] + share["backward"]
            compute_fb.append(r.prediction.step_time_s[1] * fb_share)
            fb.append(tuple(x * fb_share + tp_s for x in r.prediction.step_time_s))
            p2p_s = max([p2p_s, *(c.time_s for c in r.collectives if c.collective.op == "send_recv")])
            emb = sum(c.total_s for c in r.collectives if c.collective.phase == "step")
            dp_exposed = r.exposed_s - tp_s * plan.micro_batches
            optimizer_s = r.prediction.step_time_s[1] * share["optimizer"]
            after.append(optimizer_s + dp_exposed + emb)
            compute_after.append(optimizer_s)
            busy = _scale(r.prediction.step_time_s, plan.micro_batches * fb_share + share["optimizer"])
            roles.append(replace(r, busy_s=busy, exposed_s=dp_exposed + emb))
        pipe = tuple(pipeline_s([f[q] for f in fb], plan.micro_batches, p2p_s) for q in range(3))
        step_s = tuple(x + max(after) for x in pipe)
        compute_only = pipeline_s(compute_fb, plan.micro_batches, 0.0) + max(compute_after)
        exposed, bubble = max(step_s[1] - compute_only, 0.0), bubble_share(plan.pp, plan.micro_batches)
    comm_total = max(sum(c.total_s for c in r.collectives) for r in roles)
    gpu_j, host_j = _energy(roles, step_s, d, ic, plan)
    if ic.max_power_w is None:
        notes.append("host power not counted: the catalog has no system around this GPU (an interconnect file "
                     "with max_power_w adds it)")
    else:
        notes.append(f"host share: {ic.system}'s {ic.max_power_w / 1e3:.1f} kW maximum beyond its GPUs' TDP, an "
                     "upper bound")
    notes += [n for r in roles for n in r.prediction.notes if n not in notes]
    if one.fits is False:
        notes.append("the global batch does not fit one GPU: the speed-up is against a step that could not run")
    pred = ParallelPrediction(
        hardware=d.name, plan=plan, interconnect=ic, roles=tuple(roles), step_time_s=step_s,
        comm_exposed_s=exposed, comm_total_s=comm_total, bubble_share=bubble,
        single_gpu=one, step_energy_j=tuple(g + h for g, h in zip(gpu_j, host_j, strict=True)),
        gpu_energy_j=gpu_j[1], host_energy_j=host_j[1], notes=tuple(notes))
    return _with_run(config, pred)


def _with_run(config: ParallelConfig, pred: ParallelPrediction) -> ParallelPrediction:
    c = config.predict
    if not c.dataset_size:
        return pred
    as_one = replace(pred.single_gpu, step_time_s=pred.step_time_s, step_energy_j=pred.step_energy_j)
    samples = c.analysis.batch_size * c.analysis.step.grad_accumulation
    return replace(pred, extra={**pred.extra, **run_totals(as_one, samples, c.dataset_size, c.epochs, c.region,
                                                           c.pue)})


def _energy(roles: list[Role], step_s: tuple[float, ...], d: HardwareDescriptor, ic: Interconnect,
            plan: ParallelPlan) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Every GPU's energy per step (its work's predicted energy plus idle power while it waits) and the host's."""
    idle = idle_power_w(d)
    gpu = [0.0, 0.0, 0.0]
    for r in roles:
        work = r.busy_s[1] / r.prediction.step_time_s[1] if r.prediction.step_time_s[1] > 0 else 1.0
        for q in range(3):
            wait = max(step_s[q] - r.busy_s[q], 0.0)
            gpu[q] += r.gpus * (r.prediction.step_energy_j[q] * work + idle * wait)
    host = (0.0, 0.0, 0.0)
    if ic.max_power_w is not None and ic.gpus_per_node:
        beyond = max(ic.max_power_w - ic.gpus_per_node * tdp_w(d), 0.0)
        watts = beyond * plan.gpus_per_node / ic.gpus_per_node * plan.nodes
        host = tuple(watts * t for t in step_s)
    return tuple(gpu), host


def _scale_add(q: tuple[float, float, float], add: float) -> tuple[float, float, float]:
    return (q[0] + add, q[1] + add, q[2] + add)


def _in(module: str, layers: set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in layers)


def _blocking(c: TimedCollective) -> bool:
    """A collective the GPU waits for where it is issued (tensor parallelism's all-reduces)."""
    return not c.collective.overlapped and c.collective.op != "send_recv" and c.collective.phase != "step"


def _holders(stages: list[Any]) -> list[set[int]]:
    n = len(stages[0].keep)
    return [{s.index for s in stages if s.keep[i]} for i in range(n)]


def _stage_ends(record: ShardRecord, stage: int, pp: int, stack: tuple[str, int]) -> set[str]:
    """Module paths outside the stack a stage runs: the embedding on the first, the head on the last."""
    if record.vocab is None:
        return set()
    emb, head = record.vocab
    return ({emb} if stage == 0 and layer_of(emb, stack) is None else set()) | (
        {head} if stage == pp - 1 and layer_of(head, stack) is None else set())


def _unit_in(unit: str, layers: tuple[int, int], stage: int, pp: int) -> bool:
    if unit == "root":
        return stage in (0, pp - 1)
    return layers[0] <= int(unit.split()[-1]) < layers[1]
