"""ONNX front end: bind symbolic input dims, run ONNX shape inference, cost every node.

ONNX graphs are inference graphs, so only ``--mode infer`` is accepted. Symbolic input dims are
bound by rewriting the graph inputs before inference: a dim named like a bound symbol (``B``,
``--dim S=128``) takes its value, any other symbolic *leading* dim takes the batch size. Matmuls
feeding or fed by a ``Softmax`` (scores ``Q K^T`` and ``P V``) are reported in the attention category.
"""

from __future__ import annotations

from typing import Any

from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig
from flopcast.features.frontends import calls as C
from flopcast.features.frontends.errors import FrontendError
from flopcast.features.frontends.onnx_ops import BUILDERS, SIMPLE, Node
from flopcast.features.frontends.recorder import Recorder
from flopcast.features.records import Category, TensorMeta
from flopcast.features.spec import SpecError, parse_spec

_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "bfloat16": "bfloat16",
           "int64": "int64", "int32": "int32", "int8": "int8", "uint8": "uint8", "bool": "bool",
           "int16": "int16", "complex64": "complex64", "complex128": "complex128"}
_SCORE_PATH = {"Div", "Mul", "Add", "Where", "Cast", "Sub"}
_PROB_PATH = {"Dropout", "Cast", "Identity"}


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise FrontendError("ONNX support needs the onnx package: pip install 'flopcast[onnx]'") from None
    return onnx


def bind_inputs(model: Any, config: AnalyzeConfig) -> None:
    """Give every graph input a concrete shape, in place.

    Args:
        model: ``onnx.ModelProto``.
        config: ``config.inputs`` (positional specs) override the file's shapes; symbols bind from
            ``config.bindings()``.

    Raises:
        FrontendError: on a symbolic dim that is neither bound nor leading, or a bad spec.
    """
    bindings = config.bindings()
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    try:
        shapes = [parse_spec(t).shape(bindings) for t in config.inputs]
    except SpecError as exc:
        raise FrontendError(str(exc)) from exc
    if shapes and len(shapes) != len(graph_inputs):
        raise FrontendError(f"{config.target} has {len(graph_inputs)} inputs but {len(shapes)} --input specs")
    for pos, inp in enumerate(graph_inputs):
        dims = inp.type.tensor_type.shape.dim
        if shapes:
            del dims[:]
            for d in shapes[pos]:
                dims.add().dim_value = d
            continue
        for k, d in enumerate(dims):
            if d.HasField("dim_value"):
                continue
            name = d.dim_param
            if name in bindings:
                d.dim_value = bindings[name]
            elif k == 0:
                d.dim_value = config.batch_size
            else:
                raise FrontendError(f"input {inp.name!r} of {config.target} has symbolic dim {k} "
                                    f"{name or '?'!r}: pass --dim {name or 'NAME'}=<int> or --input specs")
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]


def _value_metas(onnx: Any, graph: Any) -> dict[str, TensorMeta | None]:
    out: dict[str, TensorMeta | None] = {}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        tt = vi.type.tensor_type
        dtype = _DTYPES.get(onnx.TensorProto.DataType.Name(tt.elem_type).lower(), "float32")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        out[vi.name] = None if not tt.HasField("shape") or None in dims else C.meta(dims, dtype)
    for init in graph.initializer:
        out[init.name] = C.meta(init.dims, _DTYPES.get(onnx.TensorProto.DataType.Name(init.data_type).lower(),
                                                      "float32"))
    return out


def _attention_nodes(graph: Any) -> set[str]:
    """Output names of the matmuls of ``softmax(Q K^T ...) V`` patterns."""
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    found: set[str] = set()
    for sm in (n for n in graph.node if n.op_type == "Softmax"):
        cur = producer.get(sm.input[0])
        while cur is not None and cur.op_type in _SCORE_PATH:
            cur = producer.get(cur.input[0])
        if cur is not None and cur.op_type in ("MatMul", "Einsum"):
            found.add(cur.output[0])
        frontier = list(consumers.get(sm.output[0], []))
        while frontier:
            nxt = frontier.pop()
            if nxt.op_type in ("MatMul", "Einsum"):
                found.add(nxt.output[0])
            elif nxt.op_type in _PROB_PATH:
                frontier.extend(consumers.get(nxt.output[0], []))
    return found


def _attrs(onnx: Any, node: Any) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _module(node: Any) -> str:
    """Module path from the node name (``/encoder/layer.0/attn/MatMul`` -> ``encoder.layer.0.attn``)."""
    parts = [p for p in node.name.split("/") if p]
    return ".".join(parts[:-1]) if len(parts) > 1 else ""


def load_model(onnx: Any, path: str) -> Any:
    """Load an ONNX file.

    Raises:
        FrontendError: if it cannot be read or parsed.
    """
    try:
        return onnx.load(path)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FrontendError(f"cannot load ONNX model {path}: {reason}") from exc


def infer(onnx: Any, model: Any) -> Any:
    """Run ONNX shape inference in strict mode (with constant data propagation for shape tensors).

    Raises:
        FrontendError: naming the node where inference fails.
    """
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        node = next((ln for ln in lines if "node" in ln.lower()), lines[0] if lines else type(exc).__name__)
        raise FrontendError(f"ONNX shape inference failed: {node}") from exc


def analyze_onnx(config: AnalyzeConfig, obj: object | None = None) -> Analysis:
    """Analyse the ONNX model at ``config.target`` (inference only).

    Args:
        config: analysis configuration; ``target`` is the ``.onnx`` path.
        obj: unused (ONNX targets are files).

    Raises:
        FrontendError: on train mode, a missing onnx package, a file that fails to load or to infer.
    """
    if config.mode == "train":
        raise FrontendError("ONNX models are inference-only: pass --mode infer")
    onnx = _import_onnx()
    model = load_model(onnx, config.target)
    bind_inputs(model, config)
    graph = infer(onnx, model).graph
    metas = _value_metas(onnx, graph)
    attention = _attention_nodes(graph)
    rec = Recorder("onnx")
    for node in graph.node:
        outs = [metas.get(o) for o in node.output if o]
        if any(m is None for m in outs):
            missing = next(o for o in node.output if o and metas.get(o) is None)
            raise FrontendError(f"ONNX shape inference left output {missing!r} of node {node.name or '?'!r} "
                                f"({node.op_type}) without a concrete shape")
        view = Node(node.op_type, [metas.get(i) if i else None for i in node.input], outs, _attrs(onnx, node))
        tensors = [m for m in view.inputs if m is not None]
        domain = f"{node.domain}." if node.domain not in ("", "ai.onnx") else ""
        if node.op_type in BUILDERS:
            calls = BUILDERS[node.op_type](view)
        elif node.op_type in SIMPLE:
            calls = [C.simple(SIMPLE[node.op_type], tensors, outs)]
        else:
            calls = [C.simple(f"onnx.{domain}{node.op_type}", tensors, outs)]
        category = Category.ATTENTION if node.output and node.output[0] in attention else None
        for i, (op, call) in enumerate(calls):
            io = (tensors, outs) if len(calls) == 1 else None
            rec.add(op, call, module=_module(node), attrs={"onnx": node.op_type, "node": node.name, "part": i},
                    category=category, io=io)
    params = sum(C.prod(i.dims) for i in graph.initializer if i.data_type in (1, 10, 11, 16))
    return rec.analysis(config, params=params, trainable_params=0)
