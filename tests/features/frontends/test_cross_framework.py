"""Same architectures in PyTorch, Keras, NumPy and ONNX: forward FLOPs within 1 %, train step within 5 %.

Hand-computed values (arithmetic in ``models/sizes.py``) count matmul/conv/attention FLOPs = 2 x MACs,
the PyTorch ``FlopCounterMode`` convention; totals (with element-wise work) are compared across
front ends.
"""

from __future__ import annotations

import pytest

from tests.features.frontends.helpers import close, export_onnx, run, torch_matmul_flops
from tests.features.frontends.models import numpy_models
from tests.features.frontends.models import sizes as Z

HAND = {"mlp": Z.MLP_MATMUL_FLOPS, "cnn": Z.CNN_MATMUL_FLOPS, "encoder": Z.ENCODER_MATMUL_FLOPS}
ARCHS = list(HAND)


@pytest.fixture(scope="module")
def onnx_forward(tmp_path_factory):
    pytest.importorskip("onnx")
    tmp = tmp_path_factory.mktemp("onnx")
    return {a: run("onnx", None, target=str(export_onnx(a, tmp / f"{a}.onnx")), mode="infer") for a in ARCHS}


@pytest.fixture(scope="module")
def keras_runs():
    pytest.importorskip("tensorflow")
    from tests.features.frontends.models.keras_models import MODELS

    return {(a, m): run("tf", MODELS[a], mode=m) for a in ARCHS for m in ("infer", "train")}


def numpy_forward(arch):
    fn, spec = numpy_models.MODELS[arch]
    return run("numpy", fn, inputs=(spec,))


@pytest.mark.parametrize("arch", ARCHS)
def test_torch_and_numpy_forward_match_hand(arch):
    assert close(torch_matmul_flops(arch, "infer"), HAND[arch], 0.01)
    a = numpy_forward(arch)
    assert close(2 * a.macs, HAND[arch], 0.01)
    assert not a.unsupported_ops


def test_mlp_forward_total_by_hand():
    assert numpy_forward("mlp").flops == Z.MLP_FORWARD_FLOPS  # 151552 + 1024 (bias) + 1024 (relu) + 80 (bias)


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_export_matches_torch_forward(arch, onnx_forward):
    a = onnx_forward[arch]
    assert close(2 * a.macs, torch_matmul_flops(arch, "infer"), 0.01)
    assert close(a.flops, numpy_forward(arch).flops, 0.01)
    assert not a.unsupported_ops


@pytest.mark.parametrize("arch", ARCHS)
def test_keras_forward_matches_torch_numpy_onnx(arch, keras_runs, onnx_forward):
    k = keras_runs[(arch, "infer")]
    assert close(2 * k.macs, HAND[arch], 0.01)
    assert close(2 * k.macs, torch_matmul_flops(arch, "infer"), 0.01)
    assert close(k.flops, numpy_forward(arch).flops, 0.01)
    assert close(k.flops, onnx_forward[arch].flops, 0.01)


@pytest.mark.parametrize("arch", ARCHS)
def test_keras_train_step_matches_torch(arch, keras_runs):
    k = keras_runs[(arch, "train")]
    assert close(2 * k.macs, torch_matmul_flops(arch, "train"), 0.05)
    phases = k.by_phase()
    assert phases["backward"]["flops"] > phases["forward"]["flops"] > 0
    assert phases["optimizer"]["flops"] > 0
