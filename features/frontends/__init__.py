"""Front ends for NumPy, TensorFlow/Keras and ONNX targets, all mapped onto the shared op vocabulary.

The CLI calls :func:`detect_framework` to pick a front end and :func:`analyze_with_frontend` for the
non-PyTorch ones (the PyTorch tracer lives in ``flopcast.features``). TensorFlow and ONNX are optional
dependencies: they are imported only when such a target is analysed, and detection looks at
``sys.modules`` so TensorFlow is never imported to classify an object.
"""

from __future__ import annotations

import contextlib
import dis
import inspect
import sys
from collections.abc import Callable
from typing import Any

from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig
from flopcast.features.frontends.errors import FrontendError, ValueDependentError

__all__ = ["FRONTENDS", "FrontendError", "ValueDependentError", "analyze_with_frontend", "detect_framework"]


def _analyze_numpy(config: AnalyzeConfig, obj: Any) -> Analysis:
    from flopcast.features.frontends.numpy_frontend import analyze_numpy

    return analyze_numpy(config, obj)


def _analyze_tf(config: AnalyzeConfig, obj: Any) -> Analysis:
    from flopcast.features.frontends.tf_frontend import analyze_tf

    return analyze_tf(config, obj)


def _analyze_onnx(config: AnalyzeConfig, obj: Any) -> Analysis:
    from flopcast.features.frontends.onnx_frontend import analyze_onnx

    return analyze_onnx(config, obj)


#: Front ends by framework name; each takes ``(config, obj)`` and returns an :class:`Analysis`.
FRONTENDS: dict[str, Callable[[AnalyzeConfig, Any], Analysis]] = {
    "numpy": _analyze_numpy,
    "tf": _analyze_tf,
    "onnx": _analyze_onnx,
}


def _is_tf(obj: Any) -> bool:
    """Whether ``obj`` is a Keras model/layer, a ``tf.Module`` or a ``tf.function`` (no TF import)."""
    tf = sys.modules.get("tensorflow")
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(obj, getattr(keras, "Layer", ())):
        return True
    if tf is None:
        return False
    try:
        from tensorflow.python.eager.polymorphic_function.polymorphic_function import Function
    except ImportError:  # older layout
        Function = ()
    return isinstance(obj, (tf.Module, Function)) or (isinstance(obj, type) and issubclass(obj, tf.Module))


def _is_torch(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    module = torch.nn.Module
    return isinstance(obj, module) or (isinstance(obj, type) and issubclass(obj, module))


FOLLOW_DEPTH = 3
"""How many calls deep :func:`_referenced_frameworks` follows plain Python helpers of a factory."""


def _framework_of(value: Any) -> str | None:
    """``torch`` or ``tf`` for a value a factory names, by ancestry for classes and instances, else ``None``.

    A class defined outside torch (``transformers.LlamaForCausalLM``, a user's ``nn.Module`` subclass) is
    PyTorch by its base classes, not its module's name. No TensorFlow import: a TF class can only be
    named by a factory whose file imported TF.
    """
    keras = sys.modules.get("keras")
    if _is_torch(value):
        return "torch"
    if _is_tf(value) or (keras is not None and isinstance(value, type) and issubclass(value, keras.Layer)):
        return "tf"
    if inspect.ismodule(value):
        name = value.__name__
    elif inspect.isclass(value) or inspect.isroutine(value):
        name = getattr(value, "__module__", None) or ""
    else:
        return None
    root = name.split(".")[0]
    return "torch" if root == "torch" else "tf" if root in ("tensorflow", "keras", "tf_keras") else None


def _code_objects(code: Any) -> Any:
    yield code
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from _code_objects(const)


def _named_values(fn: Any) -> list[Any]:
    """What a function's code names, read from its bytecode (nothing is called).

    The values it loads by global or closure name, with attribute chains on modules followed
    (``nn.Linear``, ``transformers.LlamaForCausalLM``), and its return annotation.
    """
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    cells = zip(code.co_freevars, getattr(fn, "__closure__", None) or (), strict=False)
    scope = {**getattr(fn, "__globals__", {}), **{name: c.cell_contents for name, c in cells if _filled(c)}}
    ret = getattr(fn, "__annotations__", {}).get("return")
    out: list[Any] = [ret] if isinstance(ret, type) else []
    for part in _code_objects(code):
        instructions = list(dis.get_instructions(part))
        for i, ins in enumerate(instructions):
            if ins.opname not in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF") or ins.argval not in scope:
                continue
            value = scope[ins.argval]
            out.append(value)
            for attr in instructions[i + 1:]:
                if attr.opname not in ("LOAD_ATTR", "LOAD_METHOD") or not inspect.ismodule(value):
                    break
                value = getattr(value, attr.argval, None)  # a lazy module imports the submodule: no model is built
                if value is None:
                    break
                out.append(value)
    return out


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


def _referenced_frameworks(fn: Any, depth: int = FOLLOW_DEPTH, seen: set[int] | None = None) -> set[str]:
    """Frameworks (``torch``, ``tf``) of what a factory's code names, following its plain Python helpers.

    Nothing is called: names are read from the bytecode and looked up in the function's globals.
    """
    seen = set() if seen is None else seen
    seen.add(id(fn))
    found: set[str] = set()
    for value in _named_values(fn):
        framework = _framework_of(value)
        if framework is not None:
            found.add(framework)
        elif depth > 0 and inspect.isfunction(value) and id(value) not in seen:
            found |= _referenced_frameworks(value, depth - 1, seen)
    return found


def _file_frameworks(fn: Any) -> set[str]:
    """Frameworks of everything the factory's file holds at module level: where its own code names none."""
    return {f for f in map(_framework_of, getattr(fn, "__globals__", {}).values()) if f is not None}


def _build_on_meta(fn: Any) -> Any:
    """Call a factory whose framework its code does not tell, under torch's meta device.

    A PyTorch model comes out without a byte of weights (a Llama-7B-shaped factory built for real took
    24 GB); a Keras or NumPy factory is not affected by it.
    """
    torch = sys.modules.get("torch")
    with torch.device("meta") if torch is not None else contextlib.nullcontext():
        return fn()


def _is_factory(obj: Any) -> bool:
    """A callable with no required positional parameters: it builds the model when called."""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return not any(p.kind in kinds and p.default is inspect.Parameter.empty for p in params)


def detect_framework(target_path: str, obj: object | None) -> str:
    """Which front end analyses a target.

    Args:
        target_path: path of the target file (``model.onnx``, ``model.py``).
        obj: the loaded callable or attribute, or ``None`` for an ``.onnx`` file.

    Returns:
        ``"torch"``, ``"numpy"``, ``"tf"`` or ``"onnx"``. A torch module (or a factory returning one)
        is ``torch``; a Keras model, ``tf.Module`` or ``tf.function`` (or a factory returning one) is
        ``tf``; any other plain function is ``numpy``. A factory is classified by what its code names
        (classes by their base classes, helpers followed), else by the frameworks its file holds; only when
        neither tells, it is called, under torch's meta device, so a PyTorch model is never built with real
        weights.

    Raises:
        FrontendError: if ``obj`` is neither callable nor a model.
    """
    if str(target_path).lower().endswith(".onnx") or obj is None:
        return "onnx"
    if _is_torch(obj):
        return "torch"
    if _is_tf(obj):
        return "tf"
    if not callable(obj):
        raise FrontendError(f"{target_path}: {type(obj).__name__} is not a model or a function")
    if _is_factory(obj):
        refs = _referenced_frameworks(obj) or _file_frameworks(obj)
        if len(refs) == 1:
            return refs.pop()
        try:
            built = _build_on_meta(obj)
        except Exception as exc:
            raise FrontendError(f"{target_path}: calling {getattr(obj, '__name__', obj)}() to build the model "
                                f"raised {type(exc).__name__}: {exc}") from exc
        if _is_torch(built):
            return "torch"
        if _is_tf(built):
            return "tf"
    return "numpy"


def analyze_with_frontend(framework: str, config: AnalyzeConfig, obj: object | None) -> Analysis:
    """Analyse a NumPy, TF/Keras or ONNX target.

    Args:
        framework: ``"numpy"``, ``"tf"`` or ``"onnx"`` (from :func:`detect_framework` or ``--framework``).
        config: the analysis configuration; ``config.inputs`` holds the resolved input specs.
        obj: the loaded function/model, or ``None`` for ONNX (the file is ``config.target``).

    Raises:
        FrontendError: one clear line for the user.
    """
    try:
        run = FRONTENDS[framework]
    except KeyError:
        raise FrontendError(f"no front end {framework!r} here: use one of {', '.join(FRONTENDS)} "
                            "(PyTorch targets go through the PyTorch tracer)") from None
    return run(config, obj)
