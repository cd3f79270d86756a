"""Core records of the static analysis: tensor metadata, per-op cost and the op record itself."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch


class Category(str, enum.Enum):
    """Kind of work an operator does; the op-mix and the predictor's features group by it."""

    MATMUL = "matmul"
    CONV = "conv"
    ATTENTION = "attention"
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    NORM = "norm"
    SOFTMAX = "softmax"
    EMBEDDING = "embedding"
    DATA_MOVEMENT = "data-movement"
    OPTIMIZER = "optimizer"
    RNN = "rnn"
    OTHER = "other"


class Phase(str, enum.Enum):
    """Part of the step an operator belongs to."""

    FORWARD = "forward"
    BACKWARD = "backward"
    OPTIMIZER = "optimizer"


class Outcome(str, enum.Enum):
    """How an operator's cost was obtained: every traced op lands in exactly one."""

    FORMULA = "formula"
    ZERO = "zero"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class TensorMeta:
    """Shape and dtype of one tensor argument or result, with its contiguous size in bytes."""

    shape: tuple[int, ...]
    dtype: str
    itemsize_bytes: int

    @property
    def numel(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        """Size in bytes if stored contiguously."""
        return self.numel * self.itemsize_bytes

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorMeta:
        """Metadata of a (possibly fake or meta) tensor."""
        return cls(tuple(int(d) for d in t.shape), str(t.dtype).removeprefix("torch."), t.element_size())


@dataclass(frozen=True)
class OpCost:
    """What a cost formula returns for one operator call.

    Attributes:
        flops: floating-point operations (one multiply-add counts as 2 FLOPs).
        bytes_read: bytes the op reads from memory; ``None`` lets the tracer use the sum of input sizes.
        bytes_written: bytes the op writes; ``None`` lets the tracer use the sum of output sizes.
        macs: multiply-accumulates where the op has them (matmul, conv), else 0.
    """

    flops: int = 0
    bytes_read: int | None = None
    bytes_written: int | None = None
    macs: int = 0


@dataclass(frozen=True)
class OpRecord:
    """One recorded tensor operation of a traced step, with its cost features.

    Attributes:
        index: position of the op in execution order.
        op: operator name (``aten.mm.default`` style for PyTorch; front ends map to the same names).
        category: kind of work.
        phase: forward, backward or optimizer.
        module: dotted path of the owning module (``transformer.h.3.attn``), ``""`` for the root.
        inputs: metadata of the tensor inputs, in argument order.
        outputs: metadata of the tensor outputs.
        flops: FLOPs (2 x MACs for multiply-add ops).
        macs: multiply-accumulates.
        bytes_read: bytes read from memory.
        bytes_written: bytes written to memory.
        outcome: formula, zero or unsupported.
        framework: front end that produced the record (torch, numpy, tf, onnx).
        attrs: op attributes that shape cost beyond shapes (stride, groups, transposed, ...).
        python_call: whether the op was the first one a Python-level call dispatched (it pays the Python
            binding's overhead); ``False`` for the rest of that call's ops, run from C++ (a composite's parts,
            a recurrent layer's per-step ops, the autograd engine's backward ops).
        recomputed: whether the op re-runs a checkpointed layer's forward inside the backward (activation
            checkpointing, :mod:`flopcast.features.checkpointing`).
    """

    index: int
    op: str
    category: Category
    phase: Phase
    module: str
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]
    flops: int
    macs: int
    bytes_read: int
    bytes_written: int
    outcome: Outcome
    framework: str = "torch"
    attrs: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    python_call: bool = field(default=True, compare=False)
    recomputed: bool = field(default=False, compare=False)

    @property
    def dtype(self) -> str:
        """Dtype the op computes in: that of its first floating input, else of its first output."""
        for m in (*self.inputs, *self.outputs):
            if m.dtype.startswith(("float", "bfloat", "complex")):
                return m.dtype
        metas = self.inputs or self.outputs
        return metas[0].dtype if metas else "none"
