"""TensorFlow/Keras front end: trace to a concrete graph from ``tf.TensorSpec`` s and cost every op.

A Keras model is traced with ``tf.function(...).get_concrete_function(specs)``: the graph is built
(TF runs its shape inference on every op as it is added) but never executed. In train mode the
traced function is a step with ``tf.GradientTape`` (loss: mean of the outputs) and
``optimizer.apply_gradients``, so backward ops (name prefix ``gradient_tape/``) and optimizer ops
(our ``flopcast_optimizer/`` scope, or a ``ResourceApply*`` kernel) are in the graph. A ``tf.function``
target is traced as written. Module paths are the Keras layer names in each op's name scope.

Differences from PyTorch that remain (and why train-step FLOPs agree within a few %, not exactly):

* TF fuses or splits backward kernels differently: ``BiasAddGrad`` is a separate reduction where
  PyTorch folds the bias gradient into ``addmm``'s backward sum; ``ReluGrad`` vs
  ``threshold_backward`` cost the same.
* Keras 3 optimizers emit plain element-wise ops and ``Assign*VariableOp`` per variable (each costed
  with the element-wise formulas), where PyTorch runs ``_foreach_*`` or fused Adam kernels; Keras also
  recomputes the bias corrections per variable (scalar ops).
* Keras ``LayerNormalization`` lowers to ``Mean``/``SquaredDifference``/``Rsqrt``/``Mul`` ops instead of
  one fused kernel, and ``MultiHeadAttention`` to ``Einsum`` + ``Softmax`` instead of SDPA.
* The loss differs (mean of the outputs here, the tracer's loss for PyTorch): a handful of FLOPs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig
from flopcast.features.errors import first_line
from flopcast.features.frontends import calls as C
from flopcast.features.frontends.errors import FrontendError
from flopcast.features.frontends.recorder import Recorder
from flopcast.features.frontends.tf_ops import BUILDERS, SIMPLE, TfOp
from flopcast.features.records import Phase
from flopcast.features.spec import SpecError, parse_spec

OPTIMIZER_SCOPE = "flopcast_optimizer"
_OPTIMIZER_NAMES = {"adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "lion", "ftrl"}


def import_tf() -> tuple[Any, Any]:
    """``(tensorflow, keras)``, imported quietly.

    Raises:
        FrontendError: if TensorFlow is not installed.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        raise FrontendError("TensorFlow/Keras targets need TensorFlow: pip install 'flopcast[tf]'") from None
    return tf, keras


def phase_of(op_name: str) -> Phase:
    """Phase from an op's name scope: ``gradient_tape/`` or ``gradients/`` is backward, optimizer scopes optimizer."""
    if op_name.startswith(("gradient_tape/", "gradients/")):
        return Phase.BACKWARD
    parts = op_name.split("/")
    if parts[0] == OPTIMIZER_SCOPE or any(p.lower() in _OPTIMIZER_NAMES for p in parts[:-1]):
        return Phase.OPTIMIZER
    return Phase.FORWARD


def module_of(op_name: str, layer_names: set[str]) -> str:
    """Dotted Keras layer path of an op (``mlp_1/fc1_1/MatMul`` -> ``fc1``); Keras' ``_<n>`` call suffixes dropped."""
    found = []
    for part in op_name.split("/")[:-1]:
        base = re.sub(r"_\d+$", "", part)
        if part in layer_names:
            found.append(part)
        elif base in layer_names:
            found.append(base)
    return ".".join(found)


def _layer_names(model: Any) -> set[str]:
    layers = getattr(model, "_flatten_layers", None)
    if layers is None:
        return set()
    return {layer.name for layer in layers(include_self=False, recursive=True)}


def input_specs(tf: Any, config: AnalyzeConfig, model: Any) -> list[Any]:
    """``tf.TensorSpec`` s of the inputs: ``config.inputs``, else the Keras model's declared input shapes.

    Raises:
        FrontendError: if neither gives concrete shapes.
    """
    bindings = config.bindings()
    if config.inputs:
        try:
            specs = [parse_spec(t) for t in config.inputs]
            return [tf.TensorSpec(s.shape(bindings), tf.as_dtype(s.dtype)) for s in specs]
        except SpecError as exc:
            raise FrontendError(str(exc)) from exc
    declared = getattr(model, "inputs", None) if _is_keras_model_with_inputs(model) else None
    if not declared:
        name = getattr(model, "name", type(model).__name__)
        raise FrontendError(f"{name} has unknown input shapes: pass --input float32[B,...] (one per input) "
                            "or define INPUTS in its file")
    out = []
    for t in declared:
        dims = list(t.shape)
        if any(d is None for d in dims[1:]):
            raise FrontendError(f"input {t.name!r} has unknown non-batch dims {dims}: pass --input specs")
        out.append(tf.TensorSpec([config.batch_size if dims[0] is None else dims[0], *dims[1:]], t.dtype))
    return out


def _is_keras_model_with_inputs(model: Any) -> bool:
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def _optimizer(keras: Any, name: str) -> Any:
    return {"adamw": keras.optimizers.AdamW, "adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[name]()


def _loss(tf: Any, outputs: Any) -> Any:
    flat = tf.nest.flatten(outputs)
    return tf.add_n([tf.reduce_mean(o) for o in flat]) if len(flat) > 1 else tf.reduce_mean(flat[0])


def concrete_graph(tf: Any, keras: Any, model: Any, specs: Sequence[Any], config: AnalyzeConfig) -> Any:
    """The traced (never executed) graph of the inference or training step of a model.

    Raises:
        FrontendError: if tracing raises.
    """
    def forward(*xs: Any) -> Any:
        return model(*xs, training=config.mode == "train")

    try:
        # the forward graph is the answer for inference; in training it only builds an unbuilt model (a
        # built Keras model's train step is traced once, not after a throw-away forward trace)
        if config.mode != "train" or not getattr(model, "built", False) or not model.trainable_variables:
            fwd = tf.function(forward).get_concrete_function(*specs)
            if config.mode != "train" or not model.trainable_variables:
                return fwd.graph
        variables = model.trainable_variables
        opt = _optimizer(keras, config.optimizer) if config.optimizer != "none" else None
        if opt is not None:
            opt.build(variables)

        def step(*xs: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = _loss(tf, forward(*xs))
            grads = tape.gradient(loss, variables)
            if opt is not None:
                with tf.name_scope(OPTIMIZER_SCOPE):
                    opt.apply_gradients(zip(grads, variables, strict=True))
            return loss

        return tf.function(step).get_concrete_function(*specs).graph
    except FrontendError:
        raise
    except Exception as exc:
        raise FrontendError(f"tracing {getattr(model, 'name', 'the model')} raised {type(exc).__name__}: "
                            f"{first_line(exc)}") from exc


def _tensor_meta(t: Any, op: Any, strict: bool = True) -> C.TensorMeta | None:
    """Meta of a graph tensor; ``None`` for handles and, unless ``strict``, for unknown shapes."""
    if t.dtype.name in ("resource", "variant"):
        return None
    if t.dtype.is_integer or t.dtype.is_bool:  # host-side shape arithmetic: tiny, may be dynamic
        dims = t.shape.as_list() if t.shape.rank is not None else []
        return C.meta([d or 0 for d in dims], t.dtype.name)
    if t.shape.rank is None or None in t.shape.as_list():
        if not strict:  # auxiliary outputs such as FusedBatchNormV3's reserve space
            return None
        raise FrontendError(f"TF shape inference left {t.name} of op {op.name!r} ({op.type}) with shape "
                            f"{t.shape}: give concrete --input shapes")
    return C.meta(t.shape.as_list(), t.dtype.name)


def _attr_getter(op: Any) -> Callable[[str, Any], Any]:
    def get(name: str, default: Any) -> Any:
        try:
            value = op.get_attr(name)
        except ValueError:
            return default
        return value.decode() if isinstance(value, bytes) else value

    return get


def live_ops(graph: Any) -> list[Any]:
    """Ops that reach the function's outputs or a stateful sink (variable updates), in graph order.

    TF builds gradients the step never uses (e.g. the input gradient of the first convolution) and
    prunes them before running (grappler's dead-code elimination); they are dropped here too.
    """
    ops = graph.get_operations()
    roots = [t.op for t in getattr(graph, "outputs", [])]
    roots += [op for op in ops if op._is_stateful and not op.outputs]  # Assign*VariableOp, ResourceApply*
    roots += list(getattr(graph, "control_outputs", []))
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in ops if op.name in seen]


def record_graph(graph: Any, rec: Recorder, layer_names: set[str]) -> None:
    """Cost every live op of a TF graph into ``rec``."""
    for op in live_ops(graph):
        ins = [m for m in (_tensor_meta(t, op) for t in op.inputs) if m is not None]
        outs = [m for m in (_tensor_meta(t, op, strict=i == 0) for i, t in enumerate(op.outputs)) if m is not None]
        view = TfOp(op.type, ins, outs, _attr_getter(op))
        if op.type in BUILDERS:
            calls = BUILDERS[op.type](view)
        elif op.type in SIMPLE:
            calls = [C.simple(SIMPLE[op.type], ins, outs)]
        elif op.type.startswith("ResourceApply"):
            var = next((m for m in ins if m.shape), ins[0] if ins else C.meta((), "float32"))
            calls = [C.simple(f"tf.{op.type}", ins, [var])]
            outs = [var]
        else:
            calls = [C.simple(f"tf.{op.type}", ins, outs)]
        kwargs = {"phase": phase_of(op.name), "module": module_of(op.name, layer_names),
                  "attrs": {"tf": op.type, "name": op.name}}
        for op_name, call in calls:
            rec.add(op_name, call, io=(ins, outs) if len(calls) == 1 else None, **kwargs)


def _resolve(tf: Any, keras: Any, obj: Any) -> Any:
    """The model, tf.Module or tf.function to trace (a zero-argument factory is called)."""
    if isinstance(obj, (keras.Layer, tf.Module)) or hasattr(obj, "get_concrete_function"):
        return obj
    if callable(obj):
        try:
            built = obj()
        except Exception as exc:
            raise FrontendError(f"building the model with {getattr(obj, '__name__', obj)}() raised "
                                f"{type(exc).__name__}: {exc}") from exc
        return built
    raise FrontendError(f"{type(obj).__name__} is not a Keras model, tf.Module or tf.function")


def analyze_tf(config: AnalyzeConfig, obj: Any) -> Analysis:
    """Analyse a Keras model, ``tf.Module`` or ``tf.function`` (or a factory returning one).

    Args:
        config: analysis configuration (inputs, batch size, mode, optimizer).
        obj: the loaded object.

    Raises:
        FrontendError: TensorFlow missing, unknown input shapes, or a tracing failure.
    """
    tf, keras = import_tf()
    target = _resolve(tf, keras, obj)
    specs = input_specs(tf, config, target)
    rec = Recorder("tf")
    if hasattr(target, "get_concrete_function"):  # a tf.function: traced as written
        try:
            graph = target.get_concrete_function(*specs).graph
        except Exception as exc:
            raise FrontendError(f"tracing the tf.function raised {type(exc).__name__}: {exc}") from exc
        record_graph(graph, rec, set())
        return rec.analysis(config)
    record_graph(concrete_graph(tf, keras, target, specs, config), rec, _layer_names(target))
    weights = getattr(target, "weights", getattr(target, "variables", []))
    trainable = getattr(target, "trainable_weights", getattr(target, "trainable_variables", []))
    return rec.analysis(config, params=sum(C.prod(w.shape) for w in weights),
                        trainable_params=sum(C.prod(w.shape) for w in trainable))
