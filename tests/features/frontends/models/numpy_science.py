"""NumPy scientific functions analysed end to end, plus functions that must fail clearly."""

from __future__ import annotations

import numpy as np

CG_ITERS = 10
INPUTS = ["float64[N,N]", "float64[N]"]


def conjugate_gradient(A, b):
    """Conjugate-gradient solve of A x = b with a fixed iteration count (no convergence test)."""
    x = np.zeros_like(b)
    r = b - A @ x
    p = r.copy()
    rs = r @ r
    for _ in range(CG_ITERS):
        Ap = A @ p
        alpha = rs / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rs_new = r @ r
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


def kmeans_step(X, C):
    """One Lloyd step with one-hot assignments (no value-dependent indexing)."""
    d = ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1)
    labels = d.argmin(axis=1)
    onehot = (labels[:, None] == np.arange(C.shape[0])[None, :]).astype(X.dtype)
    return onehot.T @ X / onehot.sum(0)[:, None]


def kmeans_masked(X, C):
    labels = ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1).argmin(axis=1)
    return np.stack([X[labels == k].mean(0) for k in range(C.shape[0])])  # value-dependent


def converge(A, b):
    x = b.copy()
    if (x * x).sum() > 1.0:  # value-dependent branch
        x = A @ x
    return x


def returns_nothing(A, b):
    A @ b


def raises(A, b):
    return A @ b.reshape(3, -1)
