"""Front ends for NumPy, TensorFlow/Keras and ONNX targets, all mapped onto the shared op vocabulary.

The CLI calls :func:`detect_framework` to pick a front end and :func:`analyze_with_frontend` for the
non-PyTorch ones (the PyTorch tracer lives in ``flopcast.features``). TensorFlow and ONNX are optional
dependencies: they are imported only when such a target is analysed, and detection looks at
``sys.modules`` so TensorFlow is never imported to classify an object.
"""

from __future__ import annotations

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


def _referenced_frameworks(fn: Any) -> set[str]:
    """Frameworks whose modules the function's globals reference (``torch``, ``tf``)."""
    found = set()
    for value in getattr(fn, "__globals__", {}).values():
        name = getattr(value, "__name__", "") if inspect.ismodule(value) else getattr(value, "__module__", "")
        root = (name or "").split(".")[0]
        if root == "torch":
            found.add("torch")
        elif root in ("tensorflow", "keras", "tf_keras"):
            found.add("tf")
    return found


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
        ``tf``; any other plain function is ``numpy``.

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
        refs = _referenced_frameworks(obj)
        if len(refs) == 1:
            return refs.pop()
        try:
            built = obj()
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
