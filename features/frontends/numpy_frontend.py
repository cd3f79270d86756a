"""NumPy front end: run a plain function on shape-only duck arrays and cost every NumPy call.

NumPy has no autograd, so the function is analysed as written: a hand-written training step
(manual backprop, parameter updates) is recorded op by op, all in the forward phase. Arrays the
function creates itself from constants (``np.zeros((n, n))``) are real arrays and their own
arithmetic is not traced; the ``*_like`` forms of traced arrays are.
"""

from __future__ import annotations

import inspect
import os
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig
from flopcast.features.frontends.errors import FrontendError
from flopcast.features.frontends.numpy_array import NumpyTracer, ShapeArray, is_library_file
from flopcast.features.frontends.recorder import Recorder
from flopcast.features.spec import InputSpec, SpecError, parse_spec


def input_specs(config: AnalyzeConfig, fn: Callable[..., Any]) -> list[InputSpec]:
    """Specs of the function's inputs: ``config.inputs``, else the module-level ``INPUTS`` of its file.

    Raises:
        FrontendError: if there are none or one does not parse.
    """
    texts: Sequence[str] = config.inputs or getattr(fn, "__globals__", {}).get("INPUTS", ())
    if not texts:
        raise FrontendError(f"no input shapes for {_name(fn)}: pass --input float64[N,N] (one per argument) "
                            "or define INPUTS in its file")
    try:
        return [parse_spec(t) for t in texts]
    except SpecError as exc:
        raise FrontendError(str(exc)) from exc


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _raise_location(exc: BaseException) -> str:
    """``file:line`` of the innermost user-code frame of ``exc``'s traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not is_library_file(f.filename)]
    if not frames:
        return "<unknown location>"
    f = frames[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno}"


def trace_numpy(fn: Callable[..., Any], args: Sequence[Any], recorder: Recorder) -> Any:
    """Run ``fn`` on traced arguments, recording into ``recorder``.

    Args:
        fn: the user function.
        args: positional arguments: :class:`ShapeArray` s made by :func:`shape_arrays` or constants.
        recorder: where the op records go.

    Returns:
        What ``fn`` returned.

    Raises:
        FrontendError: if ``fn`` returns nothing, needs values, or raises.
    """
    try:
        result = fn(*args)
    except FrontendError:
        raise
    except Exception as exc:
        raise FrontendError(f"{_name(fn)} raised {type(exc).__name__} at {_raise_location(exc)} while traced "
                            f"with shape-only arrays: {exc}") from exc
    if result is None:
        raise FrontendError(f"{_name(fn)} returned nothing: return the arrays it computes, so the analysis "
                            "covers the work that produces them")
    return result


def shape_arrays(specs: Sequence[InputSpec], bindings: dict[str, int], tracer: NumpyTracer) -> list[ShapeArray]:
    """One traced array per input spec.

    Raises:
        FrontendError: on an unbound symbol or a dtype NumPy lacks (bfloat16).
    """
    out = []
    for s in specs:
        try:
            dtype = np.dtype(s.dtype)
            out.append(ShapeArray(s.shape(bindings), dtype, tracer))
        except SpecError as exc:
            raise FrontendError(str(exc)) from exc
        except TypeError as exc:
            raise FrontendError(f"NumPy has no dtype {s.dtype!r} (input {s.text})") from exc
    return out


def analyze_numpy(config: AnalyzeConfig, fn: Callable[..., Any]) -> Analysis:
    """Analyse a NumPy function: every NumPy call it makes on its inputs, with its cost.

    Args:
        config: analysis configuration (inputs, symbol bindings).
        fn: the function; it takes one array per input spec.

    Raises:
        FrontendError: on missing inputs, value-dependent code, an exception, or no return value.
    """
    if not callable(fn):
        raise FrontendError(f"{config.target} is not a function")
    specs = input_specs(config, fn)
    required = [p for p in _parameters(fn) if p.default is inspect.Parameter.empty]
    if len(specs) < len(required):
        raise FrontendError(f"{_name(fn)} takes {len(required)} arrays but {len(specs)} input specs were given")
    recorder = Recorder("numpy")
    tracer = NumpyTracer(recorder, getattr(fn, "__code__", None))
    trace_numpy(fn, shape_arrays(specs, config.bindings(), tracer), recorder)
    return recorder.analysis(config)


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in params if p.kind in kinds]
