"""The NumPy test models (MLP, CNN, encoder block), forward only, channels-first; sizes in :mod:`sizes`.

Weights are real constant arrays made inside; only the input is traced.
"""

from __future__ import annotations

import numpy as np

from tests.features.frontends.models import sizes as Z

F32 = np.float32


def _w(*shape: int) -> np.ndarray:
    return np.zeros(shape, F32)


def linear(x, w, b):
    return x @ w + b


def mlp(x):
    return linear(np.maximum(linear(x, _w(Z.D_IN, Z.HIDDEN), _w(Z.HIDDEN)), 0), _w(Z.HIDDEN, Z.N_OUT), _w(Z.N_OUT))


def conv3x3(x, w, b):
    """'Same' 3x3 conv as one im2col contraction: stacked shifted windows, then an einsum."""
    _n, c, hh, ww = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    patches = np.stack([xp[:, :, i:i + hh, j:j + ww] for i in range(3) for j in range(3)], axis=2)
    return np.einsum("nckhw,ock->nohw", patches, w.reshape(w.shape[0], c, 9)) + b[:, None, None]


def cnn(x):
    h = np.maximum(conv3x3(x, _w(Z.C1, Z.C_IN, 3, 3), _w(Z.C1)), 0)
    n, c, hh, ww = h.shape
    h = h.reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))
    h = np.maximum(conv3x3(h, _w(Z.C2, Z.C1, 3, 3), _w(Z.C2)), 0).mean(axis=(2, 3))
    return linear(h, _w(Z.C2, Z.N_OUT), _w(Z.N_OUT))


def layer_norm(x, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * _w(Z.D) + _w(Z.D)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention(h):
    b, s, d = h.shape
    dh = d // Z.H
    q, k, v = (linear(h, _w(d, d), _w(d)).reshape(b, s, Z.H, dh).transpose(0, 2, 1, 3) for _ in range(3))
    p = softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh))
    return linear((p @ v).transpose(0, 2, 1, 3).reshape(b, s, d), _w(d, d), _w(d))


def encoder(x):
    x = x + attention(layer_norm(x))
    return x + linear(np.maximum(linear(layer_norm(x), _w(Z.D, Z.F), _w(Z.F)), 0), _w(Z.F, Z.D), _w(Z.D))


MODELS = {
    "mlp": (mlp, f"float32[B,{Z.D_IN}]"),
    "cnn": (cnn, f"float32[B,{Z.C_IN},{Z.HW},{Z.HW}]"),
    "encoder": (encoder, f"float32[B,{Z.S},{Z.D}]"),
}
