"""Shape-only tracing of PyTorch code: a TorchDispatchMode over FakeTensorMode records every aten op.

Nothing is allocated for weights or activations and no device work happens: the model is built on the
meta device, moved to fake CPU tensors, and one step runs under the recorder, which costs each op from
the formula registry, labels its phase and owning module, and tracks storage lifetimes for peak memory.
CompositeImplicitAutograd ops that reach the recorder whole (under ``inference_mode``, which skips the
Autograd keys) are decomposed as real execution decomposes them: an infer step records the kernels a
real one runs. Ops whose fake kernels lack what the real kernel allocates (cuDNN RNNs: the reserve
space; their backward has no fake kernel) run the shape functions of ``cuda_rnn.FAKE_KERNELS``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
    unset_fake_temporarily,
)
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

import flopcast.features.formulas  # noqa: F401  (fills the registry)
from flopcast.features.cuda_rnn import FAKE_KERNELS
from flopcast.features.errors import DataDependentError, TooLargeError
from flopcast.features.memory import MemoryTracker
from flopcast.features.module_path import ModulePathTracker
from flopcast.features.moe import FAKE_KERNELS as MOE_FAKE_KERNELS
from flopcast.features.records import Category, OpRecord, Outcome, Phase, TensorMeta
from flopcast.features.registry import Call, lookup, op_name

aten = torch.ops.aten
MAX_TENSOR_BYTES = 10**15  # 1 PB: beyond this a shape is a mistake, not a model
_SCALAR_READS = {aten._local_scalar_dense.default, aten.is_nonzero.default, aten.equal.default}
# record_function markers and metadata queries (``x.device``): not tensor operations
_SKIPPED_NAMESPACES = {"profiler", "prim"}
_ATTR_CATEGORIES = {Category.CONV, Category.ATTENTION}
_DATA_DEPENDENT = (DynamicOutputShapeException, DataDependentOutputException)
try:  # torch >= 2.1
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    _DATA_DEPENDENT = (*_DATA_DEPENDENT, GuardOnDataDependentSymNode)
except ImportError:  # pragma: no cover
    pass


_DROPOUTS = {aten.dropout.default, aten.feature_dropout.default, aten.alpha_dropout.default,
             aten.feature_alpha_dropout.default}


def _real_alias(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The input itself where the real kernel returns it unchanged but the fake kernel would copy it.

    ``dropout(x, p, train)`` returns ``x`` when ``train`` is false or ``p`` is 0: no new memory, no work.
    """
    if func in _DROPOUTS:
        p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
        train = args[2] if len(args) > 2 else kwargs.get("train", True)
        if not train or p == 0:
            return args[0]
    return None


_COMPOSITE_IMPLICIT = torch._C.DispatchKey.CompositeImplicitAutograd
_decomposes: dict[Any, bool] = {}


def _is_composite_implicit(func: Any) -> bool:
    """Whether ``func`` has a C++ CompositeImplicitAutograd kernel (cached per overload).

    Only the C++ kernel counts: ops such as ``aten.lstm.input`` or ``aten.native_batch_norm`` also
    carry Python ``py_impl`` decompositions (for tracing compilers) that eager execution never runs.
    """
    known = _decomposes.get(func)
    if known is None:
        try:
            known = torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), _COMPOSITE_IMPLICIT)
        except (AttributeError, RuntimeError):  # not an OpOverload, or unknown to the dispatcher
            known = False
        _decomposes[func] = known
    return known


def _decompose(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run the C++ CompositeImplicitAutograd kernel of ``func``: its parts dispatch as separate ops."""
    op_dk = getattr(func, "_op_dk", None)
    if op_dk is None:  # pragma: no cover  (older torch)
        return func.decompose(*args, **kwargs)
    return op_dk(_COMPOSITE_IMPLICIT, *args, **kwargs)


# Inside these composites a plain tensor takes the in-place op where a tensor subclass (FakeTensor)
# takes the out-of-place one (``isTensorSubclassLike`` branches kept for composite compliance): ``linear``
# adds its bias in place to the fresh matmul result. The recorder runs what a real tensor runs, so
# that no result-sized temporary appears that a real step never allocates.
_REAL_INPLACE = {(aten.linear.default, aten.add.Tensor): aten.add_.Tensor}


# Views whose fake kernel (torch._refs' reshape helper) gives other strides than ATen's ``computeStride`` on
# size-1 dims: [1, 1, 12, 64] with strides (768, 64, 64, 1) viewed as [1, 1, 768] is (768, 64, 1) fake but
# (768, 768, 1) real. matmul's fold test reads those strides, so a decode step's ``o_proj`` would record a
# ``bmm`` (plus its expands) where the real step runs an ``mm``.
_VIEWS = {aten.view.default, aten._unsafe_view.default}


def aten_view(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: torch.Tensor) -> torch.Tensor:
    """``out`` (a fake view by ``func``) restrided as ATen's own view kernel strides it (run on a meta tensor)."""
    src = args[0]
    with unset_fake_temporarily():
        meta = torch.empty_strided(src.shape, src.stride(), dtype=src.dtype, device="meta")
        stride = func(meta, *args[1:], **kwargs).stride()
    if stride == out.stride():
        return out
    return out.as_strided(out.shape, stride, out.storage_offset())


def footprint_bytes(t: torch.Tensor) -> int:
    """Bytes a kernel touches reading ``t``: broadcast (stride-0) dims are read once, not per use."""
    if t.numel() == 0:
        return 0
    span = 1 + sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride(), strict=True))
    return min(span, t.numel()) * t.element_size()


def _tensors(obj: Any, found: list[torch.Tensor]) -> list[torch.Tensor]:
    """Tensors in ``obj`` (aten arguments and results: tensors, lists/tuples of them, dicts), in order."""
    if isinstance(obj, torch.Tensor):
        found.append(obj)
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            _tensors(x, found)
    elif isinstance(obj, dict):
        for x in obj.values():
            _tensors(x, found)
    return found


def _meta(x: Any) -> Any:
    return TensorMeta.of(x) if isinstance(x, torch.Tensor) else x


def _attrs(args: Sequence[Any]) -> dict[str, object]:
    plain = [a if isinstance(a, (int, float, bool, str, type(None))) or
             (isinstance(a, (list, tuple)) and all(isinstance(v, (int, float, bool)) for v in a)) else "T"
             for a in args]
    return {"args": [list(a) if isinstance(a, tuple) else a for a in plain]}


class PythonCalls(TorchFunctionMode):
    """Counts the Python-level torch calls (functions, tensor methods) while active.

    A mode is off while its handler runs, so the calls a function makes from inside (C++ or Python) are not
    counted: every aten op dispatched between two counts belongs to one Python-level call. For train steps
    only: an active torch-function mode turns off torch's fused inference fast paths (``nn.MultiheadAttention``,
    ``nn.TransformerEncoderLayer``), so an inference step is tagged by :class:`OpRecorder` from the composites
    it decomposes itself (under ``inference_mode`` they reach it whole; the rest are Python-level calls).

    Attributes:
        count: Python-level calls seen so far.
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


class OpRecorder(TorchDispatchMode):
    """Records every aten op dispatched while active, with its cost, phase and owning module.

    Attributes:
        records: the op records, in execution order.
        phase: phase assigned to the ops being recorded.
        recording: when false, ops run but are not recorded (set-up work).
    """

    def __init__(self, modules: ModulePathTracker | None = None, memory: MemoryTracker | None = None,
                 framework: str = "torch", python_calls: PythonCalls | None = None) -> None:
        super().__init__()
        self.python_calls = python_calls  # None: every op counts as a Python-level call
        self._last_call = -1
        self.records: list[OpRecord] = []
        self.phase = Phase.FORWARD
        self.recording = True
        self.modules = modules
        self.memory = memory
        self.framework = framework
        self._composites: list[Any] = []  # the composite ops being decomposed, innermost last
        self._composite_fresh = False  # no op of the outermost composite being decomposed recorded yet

    @property
    def where(self) -> str:
        """The owning module of the op being run, for messages."""
        mod = self.modules.current if self.modules else ""
        return f"module '{mod}'" if mod else "the model's top level"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SCALAR_READS:
            if self.phase is Phase.OPTIMIZER or not self.recording:
                return True if func is not aten._local_scalar_dense.default else 1
            raise DataDependentError(
                f"{self.where} in {self.phase.value} reads a tensor value ({op_name(func)}: .item(), bool(tensor) "
                "or a Python branch on a tensor); flopcast runs on shapes only: make shapes static "
                "(--dim / --input) or move the value-dependent code out of the model"
            )
        if self._composites:
            func = _REAL_INPLACE.get((self._composites[-1], func), func)
        try:
            out = _real_alias(func, args, kwargs)
            if out is not None:
                return out  # the real kernel returns its input: no work, nothing to record
            if _is_composite_implicit(func):
                # Under inference_mode the Autograd keys are skipped, so composite ops (linear,
                # layer_norm, dropout, to, scaled_dot_product_attention, gru, ...) reach this mode
                # whole. Real execution runs their decomposition; so do we, re-entering this mode so
                # that each part is recorded (and the composite itself is not: no double count).
                self._composite_fresh = self._composite_fresh or not self._composites
                self._composites.append(func)
                try:
                    with self:
                        return _decompose(func, args, kwargs)
                finally:
                    self._composites.pop()
            # ops whose shapes torch's fake kernels miss (cuDNN RNNs) or refuse (fp32 grouped MoE products)
            fake = FAKE_KERNELS.get(func) or MOE_FAKE_KERNELS.get(func)
            out = NotImplemented if fake is None else fake(*args, **kwargs)
            if out is NotImplemented:
                out = func(*args, **kwargs)
            if func in _VIEWS:
                out = aten_view(func, args, kwargs, out)
        except _DATA_DEPENDENT as e:
            raise DataDependentError(
                f"{self.where} calls {op_name(func)}, whose output shape depends on tensor values "
                f"({type(e).__name__}); flopcast runs on shapes only: use static shapes (--dim) or avoid it"
            ) from None
        if self.recording and func.namespace not in _SKIPPED_NAMESPACES:
            self._record(func, args, kwargs, out)
        return out

    def _record(self, func, args, kwargs, out) -> None:
        in_tensors = _tensors(kwargs, _tensors(args, []))
        out_tensors = _tensors(out, [])
        outputs = tuple(TensorMeta.of(o) for o in out_tensors)
        for m in outputs:
            if m.nbytes > MAX_TENSOR_BYTES:
                raise TooLargeError(
                    f"{self.where}: {op_name(func)} would produce a tensor of {m.nbytes / 1e15:.1f} PB "
                    f"(shape {list(m.shape)}); check the input specs and dims"
                )
        read = sum(footprint_bytes(t) for t in in_tensors)
        written = sum(m.nbytes for m in outputs)
        entry = lookup(func)
        flops = macs = 0
        category = Category.OTHER
        if entry is None:
            outcome = Outcome.UNSUPPORTED
        elif entry.formula is None:
            outcome, category = Outcome.ZERO, entry.category
            if not entry.moves_bytes:
                read = written = 0
        else:
            outcome, category = Outcome.FORMULA, entry.category
            call = Call(tree_map(_meta, tuple(args)), tree_map(_meta, dict(kwargs)), outputs)
            cost = entry.formula(call)
            flops, macs = int(cost.flops), int(cost.macs)
            read = read if cost.bytes_read is None else int(cost.bytes_read)
            written = written if cost.bytes_written is None else int(cost.bytes_written)
        index = len(self.records)
        if self.python_calls is not None:
            call = self.python_calls.count
            first_of_call, self._last_call = call != self._last_call, call
        else:  # a composite decomposed here (inference mode) is one call: its first part only
            first_of_call = not self._composites or self._composite_fresh
            self._composite_fresh = False
        self.records.append(OpRecord(
            index=index,
            op=op_name(func),
            category=category,
            phase=self.phase,
            module=self.modules.current if self.modules else "",
            inputs=tuple(TensorMeta.of(t) for t in in_tensors),
            outputs=outputs,
            flops=flops,
            macs=macs,
            bytes_read=read,
            bytes_written=written,
            outcome=outcome,
            framework=self.framework,
            attrs=_attrs(args) if category in _ATTR_CATEGORIES else {},
            python_call=first_of_call,
        ))
        if self.memory is not None:
            self.memory.op_index = index
            kind = "activations" if self.phase is Phase.FORWARD else "temporaries"
            self.memory.track_all(out_tensors, kind)
            self.memory.end_op()


@contextlib.contextmanager
def shape_only_mode() -> Iterator[FakeTensorMode]:
    """The FakeTensorMode a trace runs under, with torch's own error log of failing meta kernels off.

    When a model's op fails on shapes (a matmul of mismatched sizes), torch logs the meta kernel's
    traceback at ERROR level before raising; the tracer turns the exception into the one-line error the
    user sees, so that log would only print a traceback wall above it.

    FakeTensorMode's dispatch cache is process-wide; it is cleared first so that a trace does not depend on
    what was traced before it in the process (a warm cache holds fewer references to gradients, so autograd
    steals instead of copying some accumulated gradients: two ``copy_`` ops of an LSTM step came and went
    with the process's history).
    """
    FakeTensorMode.cache_clear()
    logger = logging.getLogger(FakeTensorMode.__module__)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            yield mode
    finally:
        logger.setLevel(level)


def trace_ops(build: Callable[[], Callable[[], object]], phase: Phase = Phase.FORWARD) -> list[OpRecord]:
    """Record the ops of a closure on shape-only tensors.

    Args:
        build: called under FakeTensorMode without recording (it creates its tensors, e.g. on "cpu");
            returns the closure whose ops are recorded.
        phase: phase label of the recorded ops.

    Returns:
        The op records of one call of the closure.
    """
    with shape_only_mode():
        fn = build()
        rec = OpRecorder()
        rec.phase = phase
        with rec:
            fn()
    return rec.records
