"""Shape-only NumPy duck arrays that record every NumPy call made on them.

A :class:`ShapeArray` carries a shape and a dtype, no data. NumPy hands every ufunc call
(``__array_ufunc__``) and every public function call (``__array_function__``) on it to the
:class:`NumpyTracer`, which records the operator and returns new shape-only arrays. Anything
that needs values (``bool(x)``, ``float(x)``, indexing by a computed mask) raises
:class:`ValueDependentError` naming the line of user code.
"""

from __future__ import annotations

import linecache
import os
import sys
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import numpy as np

from flopcast.features.frontends.calls import meta
from flopcast.features.frontends.errors import ValueDependentError
from flopcast.features.frontends.recorder import Recorder
from flopcast.features.records import TensorMeta

_SKIP_DIRS = (os.path.dirname(np.__file__), os.path.dirname(__file__))


def is_library_file(filename: str) -> bool:
    """Whether ``filename`` belongs to NumPy or to this front end (not user code)."""
    return filename.startswith(_SKIP_DIRS) or filename.startswith("<frozen")


class ShapeArray(np.lib.mixins.NDArrayOperatorsMixin):
    """An n-d array known by shape and dtype only; arithmetic operators dispatch to NumPy ufuncs.

    Args:
        shape: dims.
        dtype: NumPy dtype.
        tracer: the tracer recording operations on it.
    """

    __slots__ = ("_tracer", "dtype", "shape")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, tracer: NumpyTracer) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self._tracer = tracer

    def __repr__(self) -> str:
        return f"ShapeArray(shape={self.shape}, dtype={self.dtype})"

    @property
    def ndim(self) -> int:
        """Number of dims."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Size in bytes."""
        return self.size * self.itemsize

    @property
    def meta(self) -> TensorMeta:
        """Metadata of this array."""
        return meta(self.shape, self.dtype.name)

    @property
    def T(self) -> ShapeArray:
        """Transpose (a view)."""
        return np.transpose(self)

    @property
    def mT(self) -> ShapeArray:
        """Transpose of the last two dims (a view)."""
        return np.swapaxes(self, -1, -2)

    @property
    def real(self) -> ShapeArray:
        """Real part (a view)."""
        return np.real(self)

    @property
    def imag(self) -> ShapeArray:
        """Imaginary part (a view)."""
        return np.imag(self)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return self._tracer.ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Callable, types: tuple, args: tuple, kwargs: dict) -> Any:
        return self._tracer.function(func, args, kwargs)

    def __getitem__(self, key: Any) -> ShapeArray:
        return self._tracer.getitem(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._tracer.setitem(self, key, value)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _values(self, what: str) -> Any:
        raise self._tracer.value_error(what)

    def __bool__(self) -> bool:
        return self._values("the truth value of an array (if/while/and/or on array data)")

    def __float__(self) -> float:
        return self._values("float() of an array")

    def __int__(self) -> int:
        return self._values("int() of an array")

    def __complex__(self) -> complex:
        return self._values("complex() of an array")

    def __index__(self) -> int:
        return self._values("an array used as an index or a size")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._values("conversion to a real ndarray (np.asarray/np.array)")

    def item(self, *args: Any) -> Any:
        """Needs values: raises :class:`ValueDependentError`."""
        return self._values("arr.item()")

    def tolist(self) -> Any:
        """Needs values: raises :class:`ValueDependentError`."""
        return self._values("arr.tolist()")

    def reshape(self, *shape: Any, **kwargs: Any) -> ShapeArray:
        """Reshape (a view); accepts ``reshape(a, b)`` and ``reshape((a, b))``."""
        return np.reshape(self, shape[0] if len(shape) == 1 else shape, **kwargs)

    def transpose(self, *axes: Any) -> ShapeArray:
        """Permute dims (a view); accepts ``transpose(1, 0)`` and ``transpose((1, 0))``."""
        return np.transpose(self, (axes[0] if len(axes) == 1 else axes) or None)

    def astype(self, dtype: Any, **kwargs: Any) -> ShapeArray:
        """Cast (a copy)."""
        return self._tracer.astype(self, np.dtype(dtype))

    def view(self, dtype: Any = None) -> ShapeArray:
        """Same data, same shape (dtype reinterpretation of equal itemsize only)."""
        return self if dtype is None else self._tracer.astype(self, np.dtype(dtype), copy=False)


def _method(name: str) -> Callable[..., Any]:
    func = getattr(np, name)

    def method(self: ShapeArray, *args: Any, **kwargs: Any) -> Any:
        return func(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"Same as ``np.{name}(arr, ...)``."
    return method


for _name in ("sum", "mean", "max", "min", "prod", "std", "var", "argmax", "argmin", "any", "all", "cumsum",
              "cumprod", "copy", "flatten", "ravel", "squeeze", "swapaxes", "dot", "clip", "round", "conj",
              "conjugate", "sort", "argsort", "trace", "diagonal", "repeat", "take", "nonzero", "fill"):
    if hasattr(np, _name):
        setattr(ShapeArray, _name, _method(_name))
ShapeArray.flatten = lambda self, order="C": np.ravel(np.copy(self))  # a copy, as ndarray.flatten


class NumpyTracer:
    """Records NumPy calls on :class:`ShapeArray` s into a :class:`Recorder`.

    Args:
        recorder: where records go.
        entry: code object of the traced function (module paths are the call chain below it).
        max_fallback_numel: largest input (elements) an unsupported function is run on, with
            constant stand-in values, to learn its output shape.
    """

    def __init__(self, recorder: Recorder, entry: CodeType | None = None, max_fallback_numel: int = 1 << 22):
        self.recorder = recorder
        self.entry = entry
        self.max_fallback_numel = max_fallback_numel

    # ---- user-code location --------------------------------------------------------------
    def user_frames(self) -> list[FrameType]:
        """User-code frames of the current stack, innermost first, up to the traced function."""
        frames: list[FrameType] = []
        f: FrameType | None = sys._getframe(1)
        while f is not None:
            if not is_library_file(f.f_code.co_filename):
                frames.append(f)
                if f.f_code is self.entry:
                    break
            f = f.f_back
        return frames

    def location(self) -> str:
        """``file:line: source`` of the innermost user-code frame."""
        frames = self.user_frames()
        if not frames:
            return "<unknown location>"
        f = frames[0]
        src = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
        return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}: `{src}`"

    def module_path(self) -> str:
        """Dotted chain of user functions below the traced function (``""`` inside it)."""
        frames = self.user_frames()
        names = [f.f_code.co_name for f in frames if f.f_code is not self.entry]
        return ".".join(n for n in reversed(names) if not n.startswith("<"))

    def value_error(self, what: str) -> ValueDependentError:
        """The error for code at the current user line that needs array values."""
        return ValueDependentError(
            f"{self.location()} needs array values ({what}); the NumPy front end traces shapes only: "
            "rewrite this without data-dependent control flow or indexing"
        )

    # ---- helpers --------------------------------------------------------------------------
    def new(self, shape: tuple[int, ...], dtype: Any) -> ShapeArray:
        """A new traced array."""
        return ShapeArray(shape, np.dtype(dtype), self)

    def record(self, op: str, call: Any, numpy_name: str, **kwargs: Any) -> None:
        """Record one ATen-style call made on behalf of NumPy function ``numpy_name``."""
        self.recorder.add(op, call, module=self.module_path(), attrs={"numpy": numpy_name}, **kwargs)

    # ---- dispatch, implemented in numpy_ops -------------------------------------------------
    def ufunc(self, ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
        """Handle a ufunc call."""
        from flopcast.features.frontends import numpy_ops

        return numpy_ops.ufunc(self, ufunc, method, inputs, kwargs)

    def function(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        """Handle a NumPy function call."""
        from flopcast.features.frontends import numpy_ops

        return numpy_ops.function(self, func, args, kwargs)

    def getitem(self, x: ShapeArray, key: Any) -> ShapeArray:
        """Handle ``x[key]``."""
        from flopcast.features.frontends import numpy_ops

        return numpy_ops.getitem(self, x, key)

    def setitem(self, x: ShapeArray, key: Any, value: Any) -> None:
        """Handle ``x[key] = value``."""
        from flopcast.features.frontends import numpy_ops

        numpy_ops.setitem(self, x, key, value)

    def astype(self, x: ShapeArray, dtype: np.dtype, copy: bool = True) -> ShapeArray:
        """Handle ``x.astype(dtype)``."""
        from flopcast.features.frontends import numpy_ops

        return numpy_ops.astype(self, x, dtype, copy)
