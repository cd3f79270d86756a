"""ONNX front end: helper-built graphs, symbolic dim binding, attention pattern, bad input."""

from __future__ import annotations

import pytest

from flopcast.features.frontends import FrontendError
from tests.features.frontends.helpers import close, run, torch_matmul_flops
from tests.features.frontends.models import sizes as Z

onnx = pytest.importorskip("onnx")
import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _init(name, *shape):
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def _save(tmp_path, nodes, inputs, outputs, inits, name="m.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_helper_built_mlp_matches_torch(tmp_path):
    path = _save(tmp_path, [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="/fc1/Gemm", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="/act/Relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="/fc2/Gemm", transB=1),
    ], [_vi("x", ["batch", Z.D_IN])], [_vi("y", ["batch", Z.N_OUT])],
        [_init("w1", Z.HIDDEN, Z.D_IN), _init("b1", Z.HIDDEN), _init("w2", Z.N_OUT, Z.HIDDEN), _init("b2", Z.N_OUT)])
    a = run("onnx", None, target=path, mode="infer")
    assert a.flops == Z.MLP_FORWARD_FLOPS
    assert close(2 * a.macs, torch_matmul_flops("mlp", "infer"), 0.01)
    assert [o.module for o in a.ops] == ["fc1", "act", "fc2"]
    assert a.params == Z.HIDDEN * Z.D_IN + Z.HIDDEN + Z.N_OUT * Z.HIDDEN + Z.N_OUT


def test_helper_built_conv_and_attention(tmp_path):
    s, d = 16, 32
    path = _save(tmp_path, [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"], name="attn/qk"),
        helper.make_node("Softmax", ["scores"], ["p"], name="attn/softmax", axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["o"], name="attn/pv"),
    ], [_vi("x", ["N", 3, 8, 8]), _vi("q", ["N", s, d]), _vi("kt", ["N", d, s]), _vi("v", ["N", s, d])],
        [_vi("c", None), _vi("o", None)], [_init("w", 4, 3, 3, 3)])
    a = run("onnx", None, target=path, mode="infer", batch_size=2)
    conv, qk, sm, pv = a.ops
    assert conv.flops == 2 * 2 * 4 * 8 * 8 * 3 * 9  # 2 x out_elems x Cin x k^2
    assert qk.flops == pv.flops == 2 * 2 * s * s * d
    assert qk.category.value == pv.category.value == "attention"
    assert sm.op == "aten._softmax"


def test_symbolic_dim_bound_with_dim(tmp_path):
    path = _save(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"])], [_vi("x", ["B", "S", 8])],
                 [_vi("y", None)], [_init("w", 8, 4)])
    assert run("onnx", None, target=path, mode="infer", dims={"S": 10}).flops == 2 * Z.B * 10 * 8 * 4
    with pytest.raises(FrontendError, match=r"symbolic dim 1 'S': pass --dim S=<int>"):
        run("onnx", None, target=path, mode="infer")


def test_train_mode_is_refused(tmp_path):
    with pytest.raises(FrontendError, match="inference-only"):
        run("onnx", None, target=str(tmp_path / "x.onnx"), mode="train")


def test_file_that_fails_to_load(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf \x00\xff")
    with pytest.raises(FrontendError) as err:
        run("onnx", None, target=str(bad), mode="infer")
    assert str(err.value).startswith("cannot load ONNX model") and "\n" not in str(err.value)


def test_inference_failure_names_the_node(tmp_path):
    path = _save(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"], name="broken_mm")],
                 [_vi("x", [2, 8])], [_vi("y", None)], [_init("w", 5, 4)])
    with pytest.raises(FrontendError) as err:
        run("onnx", None, target=path, mode="infer")
    assert "broken_mm" in str(err.value) and "\n" not in str(err.value)
