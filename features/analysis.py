"""The result of a static analysis: op records plus totals and aggregates, with a versioned JSON form."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from flopcast.features.records import Category, OpRecord, Outcome, Phase
from flopcast.features.rules import DEFAULT_RULES, CountingRules

JSON_SCHEMA_VERSION = "1.2"


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of a step and what is live at the peak.

    Attributes:
        peak_bytes: peak of allocated bytes over the step (allocator-rounded, like
            ``torch.cuda.max_memory_allocated`` in a steady-state step).
        breakdown_bytes: bytes live at the peak by kind: parameters, gradients, optimizer_state,
            activations (saved for backward), temporaries (everything else), inputs.
        peak_op_index: index of the op during which the peak was reached (-1 if none).
        start_bytes: bytes live by kind (in ``breakdown_bytes`` order) when the step starts; empty when
            the front end keeps no timeline.
        live_by_op_bytes: bytes live by kind once each op's outputs are counted, one tuple per op.
    """

    peak_bytes: int
    breakdown_bytes: dict[str, int]
    peak_op_index: int = -1
    start_bytes: tuple[int, ...] = field(default=(), compare=False, repr=False)
    live_by_op_bytes: tuple[tuple[int, ...], ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class StepSummary:
    """How the analysed train step was written (see :class:`flopcast.features.step.StepOptions`).

    Attributes:
        loss: the loss the step computed (mean, cross-entropy, mse; ``""`` for a user step function).
        loss_rule: why ``--loss auto`` chose it; empty when the loss was given.
        grad_clip: max gradient norm clipped to, or ``None``.
        grad_accumulation: micro-batches per optimizer step (the analysis covers all of them).
        fused_optimizer: whether the optimizer ran fused kernels.
        grad_scaler: whether a ``GradScaler`` scaled the loss.
        step_fn: the user-written step function (``FILE.py:fn``), or ``None`` for the built-in step.
    """

    loss: str = "mean"
    loss_rule: str = ""
    grad_clip: float | None = None
    grad_accumulation: int = 1
    fused_optimizer: bool = False
    grad_scaler: bool = False
    step_fn: str | None = None


@dataclass(frozen=True)
class Target:
    """What was analysed.

    Attributes:
        target: target string as given (``model.py:build``, ``hf:gpt2``).
        framework: front end (torch, numpy, tf, onnx).
        batch_size: bound value of the ``B`` symbol.
        mode: ``train`` or ``infer``.
        precision: fp32, tf32, bf16 or fp16.
        device: device kind the step is meant for (cuda or cpu).
        optimizer: optimizer traced (adamw, adam, sgd, none).
        inputs: input specs as given.
        dims: bound symbols.
        flopcast_version: version of the analyser.
        layers_traced: for a deep stack of identical layers composed from traces of a few layers
            (:mod:`flopcast.features.layer_repeat`), the layer counts traced; empty when every layer was.
        step: how the train step was written (loss, clipping, accumulation, ...).
        rules: the counting rules the totals follow (:mod:`flopcast.features.rules`).
    """

    target: str
    framework: str = "torch"
    batch_size: int = 1
    mode: str = "train"
    precision: str = "fp32"
    device: str = "cuda"
    optimizer: str = "adamw"
    inputs: tuple[str, ...] = ()
    dims: dict[str, int] = field(default_factory=dict)
    flopcast_version: str = ""
    layers_traced: tuple[int, ...] = ()
    step: StepSummary = field(default_factory=StepSummary)
    rules: CountingRules = DEFAULT_RULES

    @property
    def samples_per_step(self) -> int:
        """Samples one step consumes: the batch size times the accumulated micro-batches."""
        return self.batch_size * (self.step.grad_accumulation if self.mode == "train" else 1)


@dataclass(frozen=True)
class Analysis:
    """Every op of one step with its cost, plus the step's totals and aggregates.

    Attributes:
        ops: op records in execution order.
        target: what was analysed.
        params: number of parameters.
        trainable_params: number of parameters requiring gradients.
        memory: peak memory estimate, or ``None`` where the front end cannot estimate it.
        peak_without_checkpointing_bytes: with activation checkpointing, the peak of the same step traced
            without it, B (``None``: not traced).
    """

    ops: tuple[OpRecord, ...]
    target: Target
    params: int = 0
    trainable_params: int = 0
    memory: MemoryEstimate | None = None
    peak_without_checkpointing_bytes: int | None = None

    @property
    def flops(self) -> int:
        """Total FLOPs of the step, as the counting rules count them (``causal_attention``)."""
        return sum(counted(o, self.target.rules) for o in self.ops)

    @property
    def macs(self) -> int:
        """Total multiply-accumulates of the step, as the counting rules count them."""
        return sum(counted(o, self.target.rules, "macs") for o in self.ops)

    @property
    def work(self) -> int:
        """The headline count in the unit of the ``count`` rule: FLOPs or MACs."""
        return self.macs if self.target.rules.count == "macs" else self.flops

    @property
    def bytes_read(self) -> int:
        """Total bytes read, B."""
        return sum(o.bytes_read for o in self.ops)

    @property
    def bytes_written(self) -> int:
        """Total bytes written, B."""
        return sum(o.bytes_written for o in self.ops)

    @property
    def bytes_accessed(self) -> int:
        """Total bytes read plus written, B."""
        return self.bytes_read + self.bytes_written

    @property
    def op_count(self) -> int:
        """Number of ops that do work (zero-byte view and metadata ops excluded): a proxy of kernel launches."""
        return sum(1 for o in self.ops if not _is_free(o))

    @property
    def peak_memory_bytes(self) -> int:
        """Estimated peak memory, B (0 when not estimated)."""
        return self.memory.peak_bytes if self.memory else 0

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte accessed over the step."""
        return self.flops / self.bytes_accessed if self.bytes_accessed else 0.0

    @property
    def unsupported_ops(self) -> dict[str, int]:
        """Call count of each op without a cost formula, most frequent first."""
        counts = Counter(o.op for o in self.ops if o.outcome is Outcome.UNSUPPORTED)
        return dict(counts.most_common())

    @property
    def unsupported_share(self) -> float:
        """Share of ops (all recorded calls) that are unsupported."""
        return sum(self.unsupported_ops.values()) / len(self.ops) if self.ops else 0.0

    def by_phase(self) -> dict[str, dict[str, int]]:
        """FLOPs, bytes and op count per phase."""
        return _aggregate(self.ops, lambda o: o.phase.value, [p.value for p in Phase], self.target.rules)

    def by_category(self) -> dict[str, dict[str, int]]:
        """FLOPs, bytes and op count per category."""
        return _aggregate(self.ops, lambda o: o.category.value, [c.value for c in Category], self.target.rules)

    def op_mix(self) -> dict[str, dict[str, float]]:
        """Share of FLOPs and of bytes per category (categories with any work only)."""
        total_f, total_b = self.flops or 1, self.bytes_accessed or 1
        return {
            cat: {"flops_share": agg["flops"] / total_f, "bytes_share": agg["bytes"] / total_b}
            for cat, agg in self.by_category().items()
            if agg["flops"] or agg["bytes"]
        }

    def by_module(self, depth: int | None = None) -> dict[str, dict[str, int]]:
        """FLOPs, bytes and op count per module path, each op counted in all its ancestors.

        Args:
            depth: keep module paths up to this many components (``None``: all).
        """
        tree: dict[str, dict[str, int]] = defaultdict(lambda: {"flops": 0, "bytes": 0, "ops": 0})
        for o in self.ops:
            parts = o.module.split(".") if o.module else []
            limit = len(parts) if depth is None else min(depth, len(parts))
            for k in range(limit + 1):
                agg = tree[".".join(parts[:k])]
                agg["flops"] += counted(o, self.target.rules)
                agg["bytes"] += o.bytes_read + o.bytes_written
                agg["ops"] += 0 if _is_free(o) else 1
        return dict(tree)

    def top_modules(self, n: int = 10, depth: int = 3) -> list[tuple[str, dict[str, int]]]:
        """The ``n`` modules (up to ``depth`` components, root excluded) with most FLOPs."""
        rows = [(k, v) for k, v in self.by_module(depth).items() if k]
        return sorted(rows, key=lambda kv: -kv[1]["flops"])[:n]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary following schema :data:`JSON_SCHEMA_VERSION` (documented in ARCHITECTURE.md)."""
        t = self.target
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "target": t.target,
            "framework": t.framework,
            "batch_size": t.batch_size,
            "mode": t.mode,
            "precision": t.precision,
            "device": t.device,
            "optimizer": t.optimizer,
            "inputs": list(t.inputs),
            "dims": dict(t.dims),
            "flopcast_version": t.flopcast_version,
            "layers_traced": list(t.layers_traced),
            "step": self.step_dict(),
            "rules": self.rules_dict(),
            "flops": self.flops,
            "macs": self.macs,
            "work": self.work,
            "work_unit": "MAC" if t.rules.count == "macs" else "FLOP",
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "bytes_accessed": self.bytes_accessed,
            "arithmetic_intensity": self.arithmetic_intensity,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "peak_memory_bytes": self.peak_memory_bytes if self.memory else None,  # null: not estimated
            "peak_memory_breakdown": dict(self.memory.breakdown_bytes) if self.memory else {},
            "op_count": self.op_count,
            "recorded_ops": len(self.ops),
            "op_mix": self.op_mix(),
            "phases": self.by_phase(),
            "categories": self.by_category(),
            "top_modules": [{"module": k, **v} for k, v in self.top_modules()],
            "unsupported_ops": self.unsupported_ops,
            "unsupported_share": self.unsupported_share,
            **({"checkpointing": c} if (c := self.checkpointing_dict()) else {}),
        }

    def step_dict(self) -> dict[str, Any]:
        """The ``step`` object of the JSON form: how the step was written (``loss`` null for an infer step)."""
        t, s = self.target, self.target.step
        train = t.mode == "train"
        return {"loss": (s.loss or None) if train else None, "loss_rule": s.loss_rule if train else "",
                "grad_clip": s.grad_clip if train else None,
                "grad_accumulation": s.grad_accumulation if train else 1, "micro_batch_size": t.batch_size,
                "samples_per_step": t.samples_per_step, "fused_optimizer": s.fused_optimizer and train,
                "grad_scaler": s.grad_scaler and train, "step_fn": s.step_fn if train else None}

    def checkpointing_dict(self) -> dict[str, Any] | None:
        """What activation checkpointing costs and saves (``None`` without it).

        The recomputed forward ops and their FLOPs (inside the backward), and the peak memory saved against the
        same step traced without it.
        """
        if not self.target.rules.checkpoint_every:
            return None
        again = [o for o in self.ops if o.recomputed]
        saved = None if self.peak_without_checkpointing_bytes is None else \
            self.peak_without_checkpointing_bytes - self.peak_memory_bytes
        return {"recomputed_ops": sum(not _is_free(o) for o in again),
                "recomputed_flops": sum(counted(o, self.target.rules) for o in again),
                "peak_without_bytes": self.peak_without_checkpointing_bytes, "memory_saved_bytes": saved}

    def rules_dict(self) -> dict[str, Any]:
        """The ``rules`` object of the JSON form: the counting conventions the totals follow."""
        return self.target.rules.as_dict(self.step_dict()["grad_accumulation"])

    def to_json(self, indent: int | None = 2) -> str:
        """The :meth:`to_dict` summary as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def scaled_to_run(self, dataset_size: int, epochs: int = 1) -> dict[str, float]:
        """Totals of a whole run: ``ceil(dataset_size / batch_size)`` steps per epoch.

        Args:
            dataset_size: number of samples in the dataset.
            epochs: passes over the dataset.
        """
        steps = math.ceil(dataset_size / max(self.target.samples_per_step, 1)) * epochs
        return {
            "steps": steps,
            "run_flops": float(self.flops) * steps,
            "run_bytes_accessed": float(self.bytes_accessed) * steps,
        }


def _is_free(o: OpRecord) -> bool:
    return o.outcome is Outcome.ZERO and o.bytes_read == 0 and o.bytes_written == 0


def counted(o: OpRecord, rules: CountingRules, what: str = "flops") -> int:
    """An op's FLOPs (or MACs) as ``rules`` count them: a causal attention op's executed share under ``halved``.

    Args:
        o: the op record (its ``flops`` and ``macs`` charge the full score matrix).
        rules: the counting rules.
        what: ``flops`` or ``macs``.
    """
    value = o.macs if what == "macs" else o.flops
    if rules.causal_attention == "full" or o.category is not Category.ATTENTION or not value:
        return value
    from flopcast.features.attention_mask import causal_work_share

    return round(value * causal_work_share(o.op, o.attrs, [list(m.shape) for m in o.inputs]))


def _aggregate(ops, key, order: list[str], rules: CountingRules = DEFAULT_RULES) -> dict[str, dict[str, int]]:
    agg: dict[str, dict[str, int]] = {k: {"flops": 0, "bytes": 0, "ops": 0} for k in order}
    for o in ops:
        a = agg.setdefault(key(o), {"flops": 0, "bytes": 0, "ops": 0})
        a["flops"] += counted(o, rules)
        a["bytes"] += o.bytes_read + o.bytes_written
        a["ops"] += 0 if _is_free(o) else 1
    return agg
