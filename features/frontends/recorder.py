"""Turn front-end operator calls into :class:`OpRecord` s through the shared cost registry.

Every front end (NumPy, TF, ONNX) maps its operators onto registry names (``aten.mm``,
``numpy.linalg.solve``) and hands a shape-only :class:`Call`; the recorder looks the name up and
assigns exactly one outcome: formula, documented zero, or unsupported (never a silent zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flopcast.features.analysis import Analysis, Target
from flopcast.features.config import AnalyzeConfig
from flopcast.features.records import Category, OpCost, OpRecord, Outcome, Phase, TensorMeta
from flopcast.features.registry import Call, lookup


def _ensure_formulas() -> None:
    # Importing the packages fills the registry (aten formulas and the front ends' own vocabulary).
    import flopcast.features.formulas
    import flopcast.features.frontends.vocabulary  # noqa: F401


class Recorder:
    """Collects the op records of one traced step.

    Args:
        framework: front end name written into every record (numpy, tf, onnx).
    """

    def __init__(self, framework: str) -> None:
        _ensure_formulas()
        self.framework = framework
        self.records: list[OpRecord] = []

    def add(
        self,
        op: str,
        call: Call,
        *,
        phase: Phase = Phase.FORWARD,
        module: str = "",
        attrs: dict[str, object] | None = None,
        category: Category | None = None,
        io: tuple[Sequence[TensorMeta], Sequence[TensorMeta]] | None = None,
    ) -> OpRecord:
        """Cost one operator call and append its record.

        Args:
            op: registry name (``aten.mm``).
            call: shape-only call in the signature the registered formula expects.
            phase: forward, backward or optimizer.
            module: owning module path (Keras layer, NumPy function chain, ONNX node scope).
            attrs: front-end attributes kept with the record (original op type, ...).
            category: overrides the registry category (e.g. attention matmuls found by pattern).
            io: the op's real inputs and outputs when they differ from the call's (a TF matmul
                given to ``aten.bmm`` with folded batch dims); default: the call's tensors.

        Returns:
            The new record.
        """
        inputs, outputs = io if io is not None else (call.tensor_args(), call.outputs)
        read = sum(m.nbytes for m in inputs)
        written = sum(m.nbytes for m in outputs)
        entry = lookup(op)
        if entry is None:
            outcome, cost, cat = Outcome.UNSUPPORTED, OpCost(), Category.OTHER
        elif entry.formula is None:
            outcome, cost, cat = Outcome.ZERO, OpCost(), entry.category
            if not entry.moves_bytes:
                read = written = 0
        else:
            outcome, cost, cat = Outcome.FORMULA, entry.formula(call), entry.category
        rec = OpRecord(
            index=len(self.records),
            op=op,
            category=category or cat,
            phase=phase,
            module=module,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            flops=int(cost.flops),
            macs=int(cost.macs),
            bytes_read=int(read if cost.bytes_read is None else cost.bytes_read),
            bytes_written=int(written if cost.bytes_written is None else cost.bytes_written),
            outcome=outcome,
            framework=self.framework,
            attrs=dict(attrs or {}),
        )
        self.records.append(rec)
        return rec

    def add_all(self, calls: Sequence[tuple[str, Call]], **kwargs: Any) -> None:
        """Record several calls that together implement one front-end op (same phase/module/attrs)."""
        for op, call in calls:
            self.add(op, call, **kwargs)

    def analysis(self, config: AnalyzeConfig, *, params: int = 0, trainable_params: int = 0) -> Analysis:
        """The :class:`Analysis` of the recorded step (``memory=None``: front ends do not estimate it)."""
        target = Target(
            target=config.target,
            framework=self.framework,
            batch_size=config.batch_size,
            mode=config.mode,
            precision=config.precision,
            device=config.device,
            optimizer=config.optimizer if config.mode == "train" else "none",
            inputs=tuple(config.inputs),
            dims=dict(config.dims),
            flopcast_version=_version(),
        )
        return Analysis(tuple(self.records), target, params=params, trainable_params=trainable_params)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("flopcast")
    except Exception:  # not installed as a distribution (source checkout)
        return ""
