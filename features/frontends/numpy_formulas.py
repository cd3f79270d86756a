"""Cost formulas of NumPy operators that have no ATen counterpart in the shared vocabulary.

Dense linear algebra uses the standard LAPACK operation counts (LAPACK Working Note 41; Golub &
Van Loan, *Matrix Computations*, 4th ed., tables 5.5.1 and 8.6.1), counting real FLOPs of the
leading terms for an ``n x n`` (or ``m x n``, ``m >= n``) matrix; leading batch dims multiply.
FFTs count 5 N log2 N FLOPs per complex transform of length N (Cooley-Tukey radix-2 convention),
half that for real-input or real-output transforms. Sorts and norms use the ATen formulas.
"""

from __future__ import annotations

import math

from flopcast.features.records import Category, OpCost, TensorMeta
from flopcast.features.registry import Call, register_op_cost


def _batch_mn(x: TensorMeta) -> tuple[int, int, int]:
    *batch, m, n = x.shape
    return math.prod(batch), m, n


def _square(x: TensorMeta) -> tuple[int, int]:
    b, n, _ = _batch_mn(x)
    return b, n


def _nrhs(call: Call) -> int:
    a, rhs = call.args[0], call.args[1]
    return rhs.shape[-1] if len(rhs.shape) == len(a.shape) else 1


@register_op_cost("numpy.linalg.solve", category=Category.MATMUL)
def solve_cost(call: Call) -> OpCost:
    """LU factorisation 2/3 n^3 plus forward/back substitution 2 n^2 per right-hand side."""
    b, n = _square(call.args[0])
    return OpCost(flops=round(b * (2 * n**3 / 3 + 2 * n**2 * _nrhs(call))))


@register_op_cost("numpy.linalg.inv", category=Category.MATMUL)
def inv_cost(call: Call) -> OpCost:
    """LU 2/3 n^3 plus inversion from the factors 4/3 n^3 (getrf + getri) = 2 n^3."""
    b, n = _square(call.args[0])
    return OpCost(flops=2 * b * n**3)


@register_op_cost("numpy.linalg.det", "numpy.linalg.slogdet", category=Category.MATMUL)
def det_cost(call: Call) -> OpCost:
    """LU 2/3 n^3 plus the product of the n diagonal entries."""
    b, n = _square(call.args[0])
    return OpCost(flops=round(b * (2 * n**3 / 3 + n)))


@register_op_cost("numpy.linalg.cholesky", category=Category.MATMUL)
def cholesky_cost(call: Call) -> OpCost:
    """Cholesky factorisation (potrf): 1/3 n^3."""
    b, n = _square(call.args[0])
    return OpCost(flops=round(b * n**3 / 3))


@register_op_cost("numpy.linalg.qr", category=Category.MATMUL)
def qr_cost(call: Call) -> OpCost:
    """Householder QR 2mn^2 - 2/3 n^3 (geqrf) plus forming the reduced Q 4mn^2 - 2(m+n)n^2 + 4/3 n^3 (orgqr).

    ``kwargs["mode"] == "r"`` counts the factorisation only.
    """
    b, m, n = _batch_mn(call.args[0])
    k = min(m, n)
    flops = 2 * m * n * k - 2 * k**3 / 3
    if call.kwargs.get("mode", "reduced") != "r":
        flops += 4 * m * k * k - 2 * (m + k) * k * k + 4 * k**3 / 3
    return OpCost(flops=round(b * flops))


@register_op_cost("numpy.linalg.svd", category=Category.MATMUL)
def svd_cost(call: Call) -> OpCost:
    """Golub-Reinsch SVD of m x n, m >= n after transposing (G&VL table 8.6.1).

    Values only 4mn^2 - 4/3 n^3; with thin U and V 14mn^2 + 8n^3; with full U and V
    4m^2n + 8mn^2 + 9n^3.
    """
    b, m, n = _batch_mn(call.args[0])
    m, n = max(m, n), min(m, n)
    if not call.kwargs.get("compute_uv", True):
        flops = 4 * m * n**2 - 4 * n**3 / 3
    elif call.kwargs.get("full_matrices", True):
        flops = 4 * m**2 * n + 8 * m * n**2 + 9 * n**3
    else:
        flops = 14 * m * n**2 + 8 * n**3
    return OpCost(flops=round(b * flops))


@register_op_cost("numpy.linalg.eig", "numpy.linalg.eigvals", "numpy.linalg.eigh", "numpy.linalg.eigvalsh",
                  category=Category.MATMUL)
def eig_cost(call: Call) -> OpCost:
    """Eigen-decomposition (G&VL 7.5.6, 8.3), chosen by ``kwargs["kind"]``.

    General Hessenberg-QR 10 n^3 for values, 25 n^3 with vectors; symmetric tridiagonal-QR
    4/3 n^3 for values, 9 n^3 with vectors.
    """
    b, n = _square(call.args[0])
    coef = {"eig": 25, "eigvals": 10, "eigh": 9, "eigvalsh": 4 / 3}[call.kwargs["kind"]]
    return OpCost(flops=round(b * coef * n**3))


@register_op_cost("numpy.linalg.lstsq", category=Category.MATMUL)
def lstsq_cost(call: Call) -> OpCost:
    """SVD-based least squares of m x n (gelsd; G&VL table 5.5.1 Golub-Reinsch).

    4mn^2 + 8n^3 with m >= n after transposing, plus 2mn per right-hand side to apply the factors.
    """
    _, m, n = _batch_mn(call.args[0])
    m, n = max(m, n), min(m, n)
    return OpCost(flops=4 * m * n**2 + 8 * n**3 + 2 * m * n * _nrhs(call))


@register_op_cost("numpy.fft", category=Category.OTHER)
def fft_cost(call: Call) -> OpCost:
    """5 N log2 N per complex transform of length N over each transformed axis (2.5 N log2 N if real).

    ``kwargs``: ``lengths`` (transform length per transformed axis), ``full_numel`` (elements of the
    full-length signal: the complex side for c2c, the real side for r2c/c2r), ``real`` (r2c or c2r).
    """
    batch = call.kwargs["full_numel"]
    flops = 0.0
    for n in call.kwargs["lengths"]:
        if n > 1:
            flops += 5 * (batch / n) * n * math.log2(n)
    return OpCost(flops=round(flops / 2 if call.kwargs.get("real") else flops))
