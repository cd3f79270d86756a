"""What each NumPy call costs and returns on shape-only arrays: ufuncs, functions, indexing.

NumPy calls map onto the shared ATen vocabulary where one matches (``np.add`` -> ``aten.add``,
``np.matmul`` -> ``aten.mm``/``aten.bmm``, ``np.sum`` -> ``aten.sum``), else onto the NumPy
vocabulary of :mod:`numpy_formulas` (linalg, FFT, sort). Result dtypes come from running the real
NumPy function on one- or two-element stand-ins; result shapes from rules or zero-stride stand-ins
(views, no data). A function with no handler is recorded as unsupported (``numpy.<name>``) and run on
constant stand-ins to learn its output shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from flopcast.features.frontends.calls import broadcast, matmul, matmul_shape, mm, reduction
from flopcast.features.frontends.einsum import einsum_calls
from flopcast.features.frontends.errors import FrontendError
from flopcast.features.frontends.numpy_array import NumpyTracer, ShapeArray
from flopcast.features.records import TensorMeta
from flopcast.features.registry import Call

_UFUNC_ATEN = {
    "add": "add", "subtract": "sub", "multiply": "mul", "divide": "div", "true_divide": "div",
    "floor_divide": "floor_divide", "power": "pow", "float_power": "pow", "square": "square", "negative": "neg",
    "positive": "positive", "absolute": "abs", "fabs": "abs", "sqrt": "sqrt", "cbrt": "pow",
    "reciprocal": "reciprocal", "exp": "exp", "exp2": "exp2", "expm1": "expm1", "log": "log", "log2": "log2",
    "log10": "log10", "log1p": "log1p", "sin": "sin", "cos": "cos", "tan": "tan", "arcsin": "asin",
    "arccos": "acos", "arctan": "atan", "arctan2": "atan2", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
    "maximum": "maximum", "minimum": "minimum", "fmax": "fmax", "fmin": "fmin", "greater": "gt",
    "greater_equal": "ge", "less": "lt", "less_equal": "le", "equal": "eq", "not_equal": "ne",
    "logical_and": "logical_and", "logical_or": "logical_or", "logical_xor": "logical_xor",
    "logical_not": "logical_not", "sign": "sign", "floor": "floor", "ceil": "ceil", "rint": "round",
    "trunc": "trunc", "remainder": "remainder", "mod": "remainder", "fmod": "fmod", "hypot": "hypot",
    "isnan": "isnan", "isinf": "isinf", "isfinite": "isfinite", "copysign": "copysign",
    "logaddexp": "logaddexp", "clip": "clamp", "conjugate": "conj", "bitwise_and": "bitwise_and",
    "bitwise_or": "bitwise_or", "bitwise_xor": "bitwise_xor", "invert": "bitwise_not",
    "left_shift": "bitwise_left_shift", "right_shift": "bitwise_right_shift", "heaviside": "heaviside",
}
_REDUCE_ATEN = {"add": "aten.sum", "multiply": "aten.prod", "maximum": "aten.amax", "minimum": "aten.amin",
                "logical_and": "aten.all", "logical_or": "aten.any"}
_ACCUMULATE_ATEN = {"add": "aten.cumsum", "multiply": "aten.cumprod", "maximum": "aten.cummax",
                    "minimum": "aten.cummin"}

HANDLERS: dict[Callable, Callable[..., Any]] = {}
# Functions whose result shape depends on array values: always an error.
VALUE_DEPENDENT = {np.nonzero, np.argwhere, np.flatnonzero, np.unique, np.compress, np.extract, np.allclose,
                   np.array_equal, np.array_equiv, np.trim_zeros}


def implements(*funcs: Callable) -> Callable[[Callable], Callable]:
    """Register a handler ``handler(tracer, *args, **kwargs)`` for NumPy functions ``funcs``."""

    def deco(handler: Callable) -> Callable:
        for f in funcs:
            HANDLERS[f] = handler
        return handler

    return deco


# ---- stand-ins -----------------------------------------------------------------------------------
def meta_of(x: Any) -> TensorMeta | None:
    """Metadata of a traced or constant array; ``None`` for Python scalars."""
    if isinstance(x, ShapeArray):
        return x.meta
    if isinstance(x, np.ndarray):
        return TensorMeta(tuple(x.shape), x.dtype.name, x.dtype.itemsize)
    return None


def _tiny(x: Any, n: int = 1) -> Any:
    """A real one-element (or ``n x n``) stand-in of ``x`` with its dtype, for dtype resolution."""
    if isinstance(x, (ShapeArray, np.ndarray)):
        return np.ones((n, n) if n > 1 else (1,), dtype=x.dtype)
    return x


def _stand_in(x: Any, value: int = 0) -> Any:
    """A zero-stride real array with the shape and dtype of ``x`` (no data); others unchanged."""
    if isinstance(x, ShapeArray):
        base = np.full(1, value, dtype=x.dtype)
        return np.lib.stride_tricks.as_strided(base, x.shape, (0,) * x.ndim, writeable=False)
    if isinstance(x, (list, tuple)):
        return type(x)(_stand_in(v, value) for v in x)
    return x


def _wrap(tracer: NumpyTracer, result: Any) -> Any:
    if isinstance(result, np.ndarray):
        return tracer.new(result.shape, result.dtype)
    if isinstance(result, tuple):
        return tuple(_wrap(tracer, r) for r in result)
    if isinstance(result, list):
        return [_wrap(tracer, r) for r in result]
    if isinstance(result, np.generic):
        return tracer.new((), result.dtype)
    return result


def _arrays(args: Any) -> list[Any]:
    out: list[Any] = []
    for a in args:
        if isinstance(a, (ShapeArray, np.ndarray)):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(_arrays(a))
    return out


def _metas(*xs: Any) -> list[TensorMeta]:
    return [m for m in (meta_of(x) for x in _arrays(xs)) if m is not None]


def _out_metas(result: Any) -> list[TensorMeta]:
    return _metas(result if isinstance(result, (tuple, list)) else (result,))


def _fallback(tracer: NumpyTracer, name: str, func: Callable, args: tuple, kwargs: dict) -> Any:
    """Record an unsupported call and learn its result by running ``func`` on constant stand-ins."""
    numel = sum(int(np.prod(a.shape)) for a in _arrays((args, kwargs)) if isinstance(a, ShapeArray))
    if numel > tracer.max_fallback_numel:
        raise FrontendError(f"{tracer.location()}: np.{name} has no cost formula and its inputs are too large "
                            f"({numel} elements) to learn its output shape by running it")
    real_args = tuple(_materialize(a) for a in args)
    real_kwargs = {k: _materialize(v) for k, v in kwargs.items()}
    with np.errstate(all="ignore"):
        try:
            result = _wrap(tracer, func(*real_args, **real_kwargs))
        except Exception as exc:
            raise FrontendError(f"{tracer.location()}: np.{name} has no cost formula and fails on stand-in "
                                f"values ({type(exc).__name__}: {exc})") from exc
    tracer.record(f"numpy.{name}", Call(tuple(_metas(args, kwargs)), {}, tuple(_out_metas(result))), name)
    return result


def _materialize(x: Any) -> Any:
    if isinstance(x, ShapeArray):
        return np.ones(x.shape, dtype=x.dtype)
    if isinstance(x, (list, tuple)):
        return type(x)(_materialize(v) for v in x)
    return x


# ---- ufuncs --------------------------------------------------------------------------------------
def ufunc(tracer: NumpyTracer, uf: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """Record a ufunc call (``__call__``, ``reduce``, ``accumulate``, ``outer``) and return its result."""
    out = kwargs.pop("out", None)
    name = uf.__name__
    if name == "matmul" and method == "__call__":
        result = _matmul(tracer, inputs[0], inputs[1], "matmul")
    elif method in ("__call__", "outer"):
        result = _elementwise(tracer, uf, method, inputs, kwargs)
    elif method == "reduce":
        axis = kwargs.get("axis", inputs[1] if len(inputs) > 1 else 0)
        result = _reduce(tracer, _REDUCE_ATEN.get(name, f"numpy.{name}.reduce"), uf.reduce, inputs[0], axis,
                         kwargs.get("keepdims", False), f"{name}.reduce", kwargs.get("dtype"))
    elif method == "accumulate":
        x = inputs[0]
        dtype = uf.accumulate(_tiny(x), dtype=kwargs.get("dtype")).dtype
        res = tracer.new(x.shape, dtype)
        axis = kwargs.get("axis", 0)
        tracer.record(_ACCUMULATE_ATEN.get(name, f"numpy.{name}.accumulate"),
                      Call((x.meta, axis), {}, (res.meta,)), f"{name}.accumulate")
        result = res
    else:
        return _fallback(tracer, f"{name}.{method}", getattr(uf, method), inputs, kwargs)
    if out is not None:
        outs = out if isinstance(out, tuple) else (out,)
        if all(isinstance(o, ShapeArray) for o in outs):
            return outs[0] if len(outs) == 1 else outs
    return result


def _elementwise(tracer: NumpyTracer, uf: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    shapes = [np.shape(x) if not isinstance(x, ShapeArray) else x.shape for x in inputs]
    if method == "outer":
        shape = tuple(d for s in shapes for d in s)
        probe = uf.outer
    else:
        try:
            shape = broadcast(*shapes)
        except ValueError as exc:
            raise FrontendError(f"{tracer.location()}: np.{uf.__name__}: {exc}") from exc
        probe = uf
    with np.errstate(all="ignore"):
        tiny = probe(*[_tiny(x) for x in inputs], **{k: v for k, v in kwargs.items() if k in ("dtype", "casting")})
    tiny = tiny if isinstance(tiny, tuple) else (tiny,)
    results = tuple(tracer.new(shape, np.asarray(t).dtype) for t in tiny)
    call_args = tuple(meta_of(x) if meta_of(x) is not None else x for x in inputs)
    op = f"aten.{_UFUNC_ATEN[uf.__name__]}" if uf.__name__ in _UFUNC_ATEN else f"numpy.{uf.__name__}"
    tracer.record(op, Call(call_args, {}, tuple(r.meta for r in results)), uf.__name__)
    return results[0] if len(results) == 1 else results


def _matmul(tracer: NumpyTracer, a: Any, b: Any, name: str) -> ShapeArray:
    try:
        shape = matmul_shape(np.shape(a) if not isinstance(a, ShapeArray) else a.shape,
                             np.shape(b) if not isinstance(b, ShapeArray) else b.shape)
    except ValueError as exc:
        raise FrontendError(f"{tracer.location()}: np.{name}: {exc}") from exc
    dtype = np.result_type(_tiny(a), _tiny(b))
    out = tracer.new(shape, dtype)
    op, call = matmul(meta_of(a).shape, meta_of(b).shape, dtype.name)
    tracer.record(op, call, name, io=(_metas(a, b), [out.meta]))
    return out


# ---- reductions ------------------------------------------------------------------------------------
def _norm_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(sorted(int(a) % ndim for a in axes))


def _reduce(tracer: NumpyTracer, op: str, func: Callable, x: Any, axis: Any, keepdims: bool, name: str,
            dtype: Any = None, **extra: Any) -> ShapeArray:
    axes = _norm_axes(axis, x.ndim)
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or i not in axes)
    kw = {"dtype": dtype} if dtype is not None else {}
    with np.errstate(all="ignore"):
        res_dtype = np.asarray(func(_tiny(x), **kw, **extra)).dtype
    out = tracer.new(shape, res_dtype)
    tracer.record(*reduction(op, x.meta, out.meta, list(axes), keepdims), name)
    return out


def _reduction_handler(op: str, name: str, with_dtype: bool = True) -> Callable[..., Any]:
    func = getattr(np, name)

    def handler(tracer: NumpyTracer, a: Any, axis: Any = None, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(a, ShapeArray):
            return func(a, axis, *args, **kwargs)
        keepdims = kwargs.get("keepdims", False)
        extra = {"ddof": kwargs["ddof"]} if "ddof" in kwargs else {}
        dtype = kwargs.get("dtype") if with_dtype else None
        return _reduce(tracer, op, func, a, axis, keepdims, name, dtype, **extra)

    return handler


for _op, _names in {"aten.sum": ("sum",), "aten.mean": ("mean", "average"), "aten.amax": ("max", "amax"),
                    "aten.amin": ("min", "amin"), "aten.prod": ("prod",), "aten.std": ("std",),
                    "aten.var": ("var",), "aten.any": ("any",), "aten.all": ("all",),
                    "aten.argmax": ("argmax",), "aten.argmin": ("argmin",),
                    "aten.count_nonzero": ("count_nonzero",)}.items():
    for _n in _names:
        implements(getattr(np, _n))(_reduction_handler(_op, _n, _n not in ("max", "amax", "min", "amin",
                                                                             "argmax", "argmin", "any", "all",
                                                                             "average", "count_nonzero")))


def _cumulative_handler(uf: np.ufunc) -> Callable[..., Any]:
    def handler(tracer: NumpyTracer, a: ShapeArray, axis: Any = None, dtype: Any = None, **_: Any) -> Any:
        x = a if axis is not None else np.ravel(a)
        return ufunc(tracer, uf, "accumulate", (x,), {"axis": axis or 0, "dtype": dtype})

    return handler


implements(np.cumsum)(_cumulative_handler(np.add))
implements(np.cumprod)(_cumulative_handler(np.multiply))


# ---- products ----------------------------------------------------------------------------------------
@implements(np.dot, np.inner, np.vdot)
def _dot(tracer: NumpyTracer, a: Any, b: Any, out: Any = None) -> Any:
    sa, sb = np.shape(_stand_in(a)), np.shape(_stand_in(b))
    if not sa or not sb:
        return np.multiply(a, b)
    if len(sb) <= 2 and len(sa) <= 2:
        return _matmul(tracer, a, b, "dot")
    # N-d dot: sum over the last axis of a and the second-to-last of b
    return np.tensordot(a, b, axes=([len(sa) - 1], [max(len(sb) - 2, 0)]))


@implements(np.outer)
def _outer(tracer: NumpyTracer, a: Any, b: Any, out: Any = None) -> Any:
    return np.multiply.outer(np.ravel(a), np.ravel(b))


@implements(np.tensordot)
def _tensordot(tracer: NumpyTracer, a: Any, b: Any, axes: Any = 2) -> ShapeArray:
    sa, sb = np.shape(_stand_in(a)), np.shape(_stand_in(b))
    if isinstance(axes, int):
        ax_a, ax_b = list(range(len(sa) - axes, len(sa))), list(range(axes))
    else:
        ax_a, ax_b = ([x] if isinstance(x, int) else list(x) for x in axes)
    ax_a = [x % len(sa) for x in ax_a]
    ax_b = [x % len(sb) for x in ax_b]
    free_a = [d for i, d in enumerate(sa) if i not in ax_a]
    free_b = [d for i, d in enumerate(sb) if i not in ax_b]
    k = int(np.prod([sa[i] for i in ax_a]))
    dtype = np.result_type(_tiny(a), _tiny(b))
    out = tracer.new((*free_a, *free_b), dtype)
    tracer.record(*mm(int(np.prod(free_a)), k, int(np.prod(free_b)), dtype.name), "tensordot",
                  io=(_metas(a, b), [out.meta]))
    return out


@implements(np.einsum)
def _einsum(tracer: NumpyTracer, subscripts: Any, *operands: Any, **kwargs: Any) -> Any:
    if not isinstance(subscripts, str):
        return _fallback(tracer, "einsum", np.einsum, (subscripts, *operands), kwargs)
    dtype = np.result_type(*[_tiny(x) for x in operands])
    calls, shape = einsum_calls(subscripts, [np.shape(_stand_in(x)) for x in operands], dtype.name)
    out = tracer.new(shape, dtype)
    for op, call in calls:
        tracer.record(op, call, "einsum")
    return out


# ---- linear algebra ---------------------------------------------------------------------------------
def _linalg_dtype(func: Callable, x: ShapeArray, **kw: Any) -> list[np.dtype]:
    with np.errstate(all="ignore"):
        res = func(np.eye(2, dtype=x.dtype) + 1, **kw) if func is not np.linalg.solve else None
    res = res if isinstance(res, tuple) else (res,)
    return [np.asarray(r).dtype for r in res]


def _linalg(tracer: NumpyTracer, name: str, x: ShapeArray, outs: list[tuple[tuple[int, ...], Any]],
            args: tuple = (), **kwargs: Any) -> Any:
    results = tuple(tracer.new(shape, dtype) for shape, dtype in outs)
    metas = (x.meta, *[meta_of(a) for a in args])
    tracer.record(f"numpy.linalg.{name}", Call(metas, kwargs, tuple(r.meta for r in results)), f"linalg.{name}")
    return results[0] if len(results) == 1 else results


@implements(np.linalg.solve)
def _solve(tracer: NumpyTracer, a: ShapeArray, b: Any) -> ShapeArray:
    sb = np.shape(_stand_in(b))
    shape = (*broadcast(a.shape[:-2], sb[:-2]), *sb[-2:]) if len(sb) > 1 else sb
    dtype = np.linalg.solve(np.eye(2, dtype=a.dtype), _tiny(b, 2) if len(sb) > 1 else np.ones(2, np.dtype(
        getattr(b, "dtype", float)))).dtype
    return _linalg(tracer, "solve", a, [(shape, dtype)], (b,))


def _square_same_handler(name: str) -> Callable[..., Any]:
    def handler(tracer: NumpyTracer, a: ShapeArray, *_: Any, **__: Any) -> ShapeArray:
        return _linalg(tracer, name, a, [(a.shape, np.linalg.inv(np.eye(2, dtype=a.dtype)).dtype)])

    return handler


implements(np.linalg.inv)(_square_same_handler("inv"))
implements(np.linalg.cholesky)(_square_same_handler("cholesky"))


@implements(np.linalg.det)
def _det(tracer: NumpyTracer, a: ShapeArray) -> ShapeArray:
    return _linalg(tracer, "det", a, [(a.shape[:-2], _linalg_dtype(np.linalg.det, a)[0])])


@implements(np.linalg.slogdet)
def _slogdet(tracer: NumpyTracer, a: ShapeArray) -> tuple:
    d = _linalg_dtype(np.linalg.slogdet, a)
    return _linalg(tracer, "slogdet", a, [(a.shape[:-2], d[0]), (a.shape[:-2], d[1])])


@implements(np.linalg.qr)
def _qr(tracer: NumpyTracer, a: ShapeArray, mode: str = "reduced") -> Any:
    *b, m, n = a.shape
    k = min(m, n)
    dt = _linalg_dtype(np.linalg.qr, a)[0]
    if mode == "r":
        return _linalg(tracer, "qr", a, [((*b, k, n), dt)], mode="r")
    qcols = m if mode == "complete" else k
    return _linalg(tracer, "qr", a, [((*b, m, qcols), dt), ((*b, qcols, n), dt)], mode=mode)


@implements(np.linalg.svd)
def _svd(tracer: NumpyTracer, a: ShapeArray, full_matrices: bool = True, compute_uv: bool = True,
         **_: Any) -> Any:
    *b, m, n = a.shape
    k = min(m, n)
    dts = _linalg_dtype(np.linalg.svd, a)
    s = ((*b, k), dts[1] if len(dts) > 1 else dts[0])
    kw = {"full_matrices": full_matrices, "compute_uv": compute_uv}
    if not compute_uv:
        return _linalg(tracer, "svd", a, [s], **kw)
    u = ((*b, m, m if full_matrices else k), dts[0])
    vh = ((*b, n if full_matrices else k, n), dts[0])
    return _linalg(tracer, "svd", a, [u, s, vh], **kw)


def _eig_handler(kind: str) -> Callable[..., Any]:
    func = getattr(np.linalg, kind)

    def handler(tracer: NumpyTracer, a: ShapeArray, *args: Any, **kwargs: Any) -> Any:
        dts = _linalg_dtype(func, a)
        outs = [(a.shape[:-1], dts[0])] + ([(a.shape, dts[1])] if len(dts) > 1 else [])
        return _linalg(tracer, kind, a, outs, kind=kind)

    return handler


for _kind in ("eig", "eigvals", "eigh", "eigvalsh"):
    implements(getattr(np.linalg, _kind))(_eig_handler(_kind))


@implements(np.linalg.lstsq)
def _lstsq(tracer: NumpyTracer, a: ShapeArray, b: Any, rcond: Any = None) -> tuple:
    m, n = a.shape[-2:]
    sb = np.shape(_stand_in(b))
    dt = np.result_type(a.dtype, getattr(b, "dtype", float), np.float64 if a.dtype.kind in "iub" else a.dtype)
    x_shape = (n, *sb[1:])
    resid = (sb[1] if len(sb) > 1 else 1,) if m > n else (0,)
    outs = [(x_shape, dt), (resid, dt), ((), np.int32), ((min(m, n),), dt)]
    return _linalg(tracer, "lstsq", a, outs, (b,))


@implements(np.linalg.norm)
def _norm(tracer: NumpyTracer, x: ShapeArray, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    if ord not in (None, 2, "fro") or (ord == 2 and ((axis is None and x.ndim == 2) or isinstance(axis, tuple))):
        return _fallback(tracer, "linalg.norm", np.linalg.norm, (x,), {"ord": ord, "axis": axis,
                                                                       "keepdims": keepdims})
    axes = _norm_axes(axis, x.ndim)
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or i not in axes)
    out = tracer.new(shape, np.linalg.norm(_tiny(x)).dtype)
    tracer.record(*reduction("aten.linalg_vector_norm", x.meta, out.meta, list(axes), keepdims), "linalg.norm")
    return out


# ---- FFT -------------------------------------------------------------------------------------------
_FFT = {  # name -> (default number of axes (None: all), kind)
    "fft": (1, "c2c"), "ifft": (1, "c2c"), "fft2": (2, "c2c"), "ifft2": (2, "c2c"), "fftn": (None, "c2c"),
    "ifftn": (None, "c2c"), "rfft": (1, "r2c"), "irfft": (1, "c2r"), "rfft2": (2, "r2c"),
    "irfft2": (2, "c2r"), "rfftn": (None, "r2c"), "irfftn": (None, "c2r"), "hfft": (1, "c2r"),
    "ihfft": (1, "r2c"),
}


def _fft_handler(name: str) -> Callable[..., Any]:
    naxes, kind = _FFT[name]
    func = getattr(np.fft, name)

    def handler(tracer: NumpyTracer, a: ShapeArray, n: Any = None, axis: Any = None, norm: Any = None,
                s: Any = None, axes: Any = None, **_: Any) -> ShapeArray:
        if naxes == 1:
            ax = [(-1 if axis is None else axis) % a.ndim]
            lengths = [n] if n is not None else None
        else:
            ax = list(axes) if axes is not None else list(range(a.ndim))[-(naxes or a.ndim):]
            ax = [x % a.ndim for x in ax]
            lengths = list(s) if s is not None else None
            if axis is not None or n is not None:
                lengths = lengths or ([n] if n is not None else None)
        full = [lengths[i] if lengths else a.shape[x] for i, x in enumerate(ax)]
        if kind == "c2r" and not lengths:
            full[-1] = 2 * (a.shape[ax[-1]] - 1)
        shape = list(a.shape)
        for x, length in zip(ax, full, strict=True):
            shape[x] = length
        if kind == "r2c":
            shape[ax[-1]] = full[-1] // 2 + 1
        out = tracer.new(tuple(shape), func(np.ones((4,) * (naxes or 1), dtype=a.dtype)).dtype)
        real_shape = shape if kind != "r2c" else [*a.shape[: ax[-1]], full[-1], *a.shape[ax[-1] + 1:]]
        kwargs = {"lengths": full, "full_numel": int(np.prod(real_shape if kind != "c2c" else shape)),
                  "real": kind != "c2c"}
        tracer.record("numpy.fft", Call((a.meta,), kwargs, (out.meta,)), f"fft.{name}")
        return out

    return handler


for _name in _FFT:
    implements(getattr(np.fft, _name))(_fft_handler(_name))


# ---- sort (the ATen sort formula) ----------------------------------------------------------------------
def _sort_handler(name: str) -> Callable[..., Any]:
    def handler(tracer: NumpyTracer, a: ShapeArray, axis: Any = -1, **_: Any) -> ShapeArray:
        x = np.ravel(a) if axis is None else a
        out = tracer.new(x.shape, np.int64 if name == "argsort" else x.dtype)
        dim = (axis or 0) % x.ndim if x.ndim else 0
        tracer.record("aten.sort", Call((x.meta, dim), {}, (out.meta,)), name)
        return out

    return handler


implements(np.sort)(_sort_handler("sort"))
implements(np.argsort)(_sort_handler("argsort"))


# ---- data movement ---------------------------------------------------------------------------------
_MOVES = {  # NumPy function -> ATen name; views are zero-byte, copies move bytes (per the registry)
    "aten.view": ("reshape", "ravel", "squeeze", "expand_dims", "atleast_1d", "atleast_2d", "atleast_3d",
                  "real", "imag", "diagonal"),
    "aten.permute": ("transpose", "swapaxes", "moveaxis", "rollaxis", "matrix_transpose"),
    "aten.expand": ("broadcast_to",),
    "aten.cat": ("concatenate", "stack", "vstack", "hstack", "column_stack", "dstack", "concat"),
    "aten.clone": ("copy", "ascontiguousarray", "asfortranarray"),
    "aten.repeat": ("tile",),
    "aten.roll": ("roll",),
    "aten.flip": ("flip", "fliplr", "flipud"),
    "aten.where": ("where", "select"),
    "aten.clamp": ("clip",),
    "aten.zeros_like": ("zeros_like",),
    "aten.ones_like": ("ones_like",),
    "aten.full_like": ("full_like",),
    "aten.empty_like": ("empty_like",),
    "aten.constant_pad_nd": ("pad",),
    "aten.triu": ("triu",),
    "aten.tril": ("tril",),
    "aten.take": ("take", "take_along_axis"),
    "aten.diag": ("diag",),
    "aten.split": ("split", "array_split"),
}


def _moves_handler(op: str, func: Callable) -> Callable[..., Any]:
    def handler(tracer: NumpyTracer, *args: Any, **kwargs: Any) -> Any:
        if func is np.where and len(args) + len(kwargs) == 1:
            raise tracer.value_error("np.where(cond) with one argument (its result shape depends on values)")
        result = _wrap(tracer, func(*_stand_in(args), **{k: _stand_in(v) for k, v in kwargs.items()}))
        tracer.record(op, Call(tuple(_metas(args, tuple(kwargs.values()))), {}, tuple(_out_metas(result))),
                      func.__name__)
        return result

    return handler


for _op, _names in _MOVES.items():
    for _n in _names:
        if hasattr(np, _n):
            implements(getattr(np, _n))(_moves_handler(_op, getattr(np, _n)))


@implements(np.repeat)
def _repeat(tracer: NumpyTracer, a: Any, repeats: Any, axis: Any = None) -> Any:
    if isinstance(repeats, ShapeArray):
        raise tracer.value_error("np.repeat with traced repeat counts")
    return _moves_handler("aten.repeat_interleave", np.repeat)(tracer, a, repeats, axis)


def _metadata_handler(func: Callable) -> Callable[..., Any]:
    def handler(tracer: NumpyTracer, *args: Any, **kwargs: Any) -> Any:
        tiny = tuple(np.empty((), dtype=a.dtype) if isinstance(a, ShapeArray) else a for a in args)
        if func in (np.shape, np.ndim, np.size):
            return func(_stand_in(args[0]), *args[1:], **kwargs)
        return func(*tiny, **kwargs)

    return handler


for _f in (np.shape, np.ndim, np.size, np.result_type, np.can_cast, np.iscomplexobj, np.isrealobj):
    HANDLERS[_f] = _metadata_handler(_f)


# ---- indexing and casts ----------------------------------------------------------------------------
def _index_key(tracer: NumpyTracer, key: Any, *, allow_mask: bool) -> tuple[Any, bool]:
    """Stand-in index and whether it is advanced (fancy) indexing."""
    parts = key if isinstance(key, tuple) else (key,)
    out, fancy = [], False
    for k in parts:
        if isinstance(k, ShapeArray):
            if k.dtype == np.bool_ and not allow_mask:
                raise tracer.value_error("indexing by a computed boolean mask (its result shape depends on values)")
            out.append(_stand_in(k, value=0 if k.dtype != np.bool_ else 1))
            fancy = True
        elif isinstance(k, (np.ndarray, list)):
            out.append(k)
            fancy = True
        else:
            out.append(k)
    return tuple(out), fancy


def getitem(tracer: NumpyTracer, x: ShapeArray, key: Any) -> ShapeArray:
    """``x[key]``: basic indexing is a view (``aten.slice``), advanced indexing a gather (``aten.index``)."""
    k, fancy = _index_key(tracer, key, allow_mask=False)
    try:
        shape = _stand_in(x)[k].shape
    except IndexError as exc:
        raise FrontendError(f"{tracer.location()}: {exc}") from exc
    out = tracer.new(shape, x.dtype)
    index_metas = _metas(key if isinstance(key, tuple) else (key,))
    tracer.record("aten.index" if fancy else "aten.slice",
                  Call((x.meta, *index_metas), {}, (out.meta,)), "getitem")
    return out


def setitem(tracer: NumpyTracer, x: ShapeArray, key: Any, value: Any) -> None:
    """``x[key] = value``: a copy into the region (``aten.copy_``), or ``aten.index_put_`` for advanced keys."""
    k, fancy = _index_key(tracer, key, allow_mask=True)
    region = _stand_in(x)[k].shape if not fancy else x.shape
    vmeta = meta_of(value)
    written = tracer.new(region, x.dtype).meta
    args = (x.meta, *([vmeta] if vmeta else []))
    tracer.record("aten.index_put_" if fancy else "aten.copy_", Call(args, {}, (written,)), "setitem",
                  io=([m for m in (vmeta,) if m], [written]))


def astype(tracer: NumpyTracer, x: ShapeArray, dtype: np.dtype, copy: bool = True) -> ShapeArray:
    """``x.astype(dtype)``: a converting copy (``aten._to_copy``); same dtype without copy is ``x``."""
    if dtype == x.dtype and not copy:
        return x
    out = tracer.new(x.shape, dtype)
    tracer.record("aten._to_copy", Call((x.meta,), {"dtype": dtype.name}, (out.meta,)), "astype")
    return out


# ---- dispatch --------------------------------------------------------------------------------------
def _public_name(func: Callable) -> str:
    mod = getattr(func, "__module__", "") or ""
    for sub in ("linalg", "fft", "random", "polynomial"):
        if f".{sub}" in mod:
            return f"{sub}.{func.__name__}"
    return func.__name__


def function(tracer: NumpyTracer, func: Callable, args: tuple, kwargs: dict) -> Any:
    """Record a NumPy function call on traced arrays and return its shape-only result."""
    if func in VALUE_DEPENDENT:
        raise tracer.value_error(f"np.{func.__name__}, whose result shape depends on values")
    handler = HANDLERS.get(func)
    if handler is not None:
        return handler(tracer, *args, **kwargs)
    return _fallback(tracer, _public_name(func), func, args, kwargs)
