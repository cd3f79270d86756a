"""TF/Keras front end: phases, layer attribution, op mapping, tf.function targets, bad input."""

from __future__ import annotations

import builtins
import sys

import pytest

from flopcast.features.frontends import FrontendError, analyze_with_frontend, detect_framework
from tests.features.frontends.helpers import config, run
from tests.features.frontends.models import sizes as Z


def test_tf_not_installed_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_tf(name, *args, **kwargs):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tf)
    with pytest.raises(FrontendError) as err:
        analyze_with_frontend("tf", config(), object())
    assert "pip install 'flopcast[tf]'" in str(err.value) and "\n" not in str(err.value)


def test_detection_without_tf_does_not_import_it(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    assert detect_framework("f.py", lambda x: x) == "numpy"
    assert "tensorflow" not in sys.modules


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow")
    import keras

    return keras


def test_detect_keras_and_tf_function(keras):
    import tensorflow as tf

    from tests.features.frontends.models.keras_models import mlp

    assert detect_framework("m.py", mlp()) == "tf"
    assert detect_framework("m.py", tf.function(lambda x: x)) == "tf"
    assert detect_framework("m.py", mlp) == "tf"  # a factory


def test_train_step_phases_and_layers(keras):
    from tests.features.frontends.models.keras_models import mlp

    a = run("tf", mlp, mode="train", optimizer="adam")
    mm = [o for o in a.ops if o.op == "aten.mm"]
    assert [(o.phase.value, o.module) for o in mm] == [
        ("forward", "fc1"), ("forward", "fc2"), ("backward", "fc2"), ("backward", "fc2"), ("backward", "fc1")]
    assert a.by_phase()["optimizer"]["flops"] > 0
    assert a.params == a.trainable_params == Z.D_IN * Z.HIDDEN + Z.HIDDEN + Z.HIDDEN * Z.N_OUT + Z.N_OUT
    assert a.target.framework == "tf" and not a.unsupported_ops


def test_batch_norm_and_depthwise_map_to_aten(keras):
    L = keras.layers
    x = keras.Input((8, 8, 4))
    h = L.BatchNormalization(name="bn")(L.DepthwiseConv2D(3, padding="same", name="dw")(x))
    model = keras.Model(x, h)
    a = run("tf", model, mode="train", optimizer="sgd")
    ops = {(o.op, o.phase.value) for o in a.ops}
    assert {("aten.convolution", "forward"), ("aten.convolution_backward", "backward")} <= ops
    conv = next(o for o in a.ops if o.op == "aten.convolution")
    assert conv.macs == Z.B * 8 * 8 * 4 * 9 and conv.module == "dw"  # depthwise: one 3x3 window per output
    # Keras 3 batch norm lowers to moments + element-wise ops, all costed, attributed to the layer
    assert not a.unsupported_ops and any(o.module == "bn" and o.flops for o in a.ops)


def test_fused_batch_norm_kernel(keras):
    import tensorflow as tf

    def bn(x, scale):
        return tf.compat.v1.nn.fused_batch_norm(x, scale, tf.zeros_like(scale), is_training=True)[0]

    a = run("tf", tf.function(bn), inputs=("float32[B,8,8,4]", "float32[4]"), mode="infer")
    op = next(o for o in a.ops if o.op == "aten.native_batch_norm")
    assert op.flops == 7 * Z.B * 8 * 8 * 4  # normalise 5 + affine 2 per element


def test_tf_function_is_traced_as_written(keras):
    import tensorflow as tf

    fn = tf.function(lambda x, w: tf.nn.relu(tf.matmul(x, w)))
    a = run("tf", fn, inputs=("float32[B,32]", "float32[32,16]"), mode="infer")
    assert a.flops == 2 * Z.B * 32 * 16 + Z.B * 16


def test_unknown_input_shapes(keras):
    model = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(FrontendError, match=r"unknown input shapes: pass --input"):
        run("tf", model)
