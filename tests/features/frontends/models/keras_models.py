"""The Keras test models (MLP, CNN, encoder block), channels-last; sizes in :mod:`sizes`."""

from __future__ import annotations

import keras

from tests.features.frontends.models import sizes as Z

L = keras.layers


def mlp() -> keras.Model:
    x = keras.Input((Z.D_IN,))
    h = L.Dense(Z.HIDDEN, activation="relu", name="fc1")(x)
    return keras.Model(x, L.Dense(Z.N_OUT, name="fc2")(h), name="mlp")


def cnn() -> keras.Model:
    x = keras.Input((Z.HW, Z.HW, Z.C_IN))
    h = L.Conv2D(Z.C1, Z.K, padding="same", activation="relu", name="conv1")(x)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Conv2D(Z.C2, Z.K, padding="same", activation="relu", name="conv2")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(Z.N_OUT, name="fc")(h), name="cnn")


def encoder() -> keras.Model:
    x = keras.Input((Z.S, Z.D))
    h = L.LayerNormalization(epsilon=1e-5, name="ln1")(x)
    h = L.MultiHeadAttention(Z.H, Z.D // Z.H, name="attn")(h, h)
    x2 = L.Add(name="res1")([x, h])
    h = L.LayerNormalization(epsilon=1e-5, name="ln2")(x2)
    h = L.Dense(Z.D, name="down")(L.Dense(Z.F, activation="relu", name="up")(h))
    return keras.Model(x, L.Add(name="res2")([x2, h]), name="encoder")


MODELS = {"mlp": mlp, "cnn": cnn, "encoder": encoder}
