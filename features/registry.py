"""Registry of operator cost formulas: small pure functions of shapes, registered by decorator.

Every traced op lands in exactly one outcome: a registered formula, a documented zero-FLOP op, or
*unsupported* (counted and reported, never a silent zero). Keys are operator names such as
``aten.mm``; PyTorch formulas register with the ``torch.ops.aten`` objects themselves so a typo fails
at import time, and the NumPy/TF/ONNX front ends look the same names up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flopcast.features.records import Category, OpCost, TensorMeta


@dataclass(frozen=True)
class Call:
    """Shape-only view of one operator call handed to a cost formula.

    Attributes:
        args: positional arguments, tensors replaced by :class:`TensorMeta` (lists kept as lists).
        kwargs: keyword arguments, likewise.
        outputs: metadata of the tensor results, in order.
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    outputs: tuple[TensorMeta, ...]

    def tensor_args(self) -> list[TensorMeta]:
        """All tensor arguments, flattened in order (lists of tensors included)."""
        found: list[TensorMeta] = []
        for a in (*self.args, *self.kwargs.values()):
            if isinstance(a, TensorMeta):
                found.append(a)
            elif isinstance(a, (list, tuple)):
                found.extend(x for x in a if isinstance(x, TensorMeta))
        return found

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """Argument by position, else by keyword, else ``default``."""
        if index < len(self.args):
            return self.args[index]
        return self.kwargs.get(name, default)


Formula = Callable[[Call], OpCost]


@dataclass(frozen=True)
class Entry:
    """What the registry knows of one operator.

    Attributes:
        name: operator name (``aten.mm``).
        category: kind of work.
        formula: cost function, or ``None`` for a documented zero-FLOP op.
        moves_bytes: for zero-FLOP ops, whether the op still reads and writes memory (a copy does,
            a view does not).
    """

    name: str
    category: Category
    formula: Formula | None
    moves_bytes: bool = True


_REGISTRY: dict[str, Entry] = {}


def op_name(op: Any) -> str:
    """Registry key of an operator: ``aten.mm`` for ``torch.ops.aten.mm`` or ``aten.mm.default``."""
    packet = getattr(op, "overloadpacket", op)
    if isinstance(packet, str):
        return packet
    ns = getattr(packet, "_qualified_op_name", None) or str(packet)
    return ns.replace("::", ".")


def _add(entry: Entry) -> None:
    if entry.name in _REGISTRY:
        raise ValueError(f"cost of {entry.name} is already registered")
    _REGISTRY[entry.name] = entry


def register_op_cost(*ops: Any, category: Category) -> Callable[[Formula], Formula]:
    """Decorator registering ``formula`` as the cost of each of ``ops``.

    Args:
        *ops: ``torch.ops.aten`` packets or overloads (or vocabulary names for other front ends).
        category: kind of work of these ops.

    Raises:
        ValueError: if one of ``ops`` already has a registered cost.
    """

    def decorate(formula: Formula) -> Formula:
        for op in ops:
            _add(Entry(op_name(op), category, formula))
        return formula

    return decorate


def register_zero_cost(*ops: Any, category: Category, moves_bytes: bool) -> None:
    """Declare ``ops`` as documented zero-FLOP operators.

    Args:
        *ops: operators to declare.
        category: kind of work (usually data-movement).
        moves_bytes: ``False`` for views and metadata ops (no memory traffic), ``True`` for copies.
    """
    for op in ops:
        _add(Entry(op_name(op), category, None, moves_bytes))


def lookup(op: Any) -> Entry | None:
    """Registry entry of ``op``, or ``None`` if the operator is unsupported."""
    return _REGISTRY.get(op_name(op))


def registered_names() -> list[str]:
    """Sorted names of every operator with a formula or a zero declaration."""
    return sorted(_REGISTRY)
