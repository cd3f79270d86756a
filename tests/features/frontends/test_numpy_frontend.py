"""NumPy front end: hand-checked counts per formula family, end-to-end scientific functions, bad input."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from flopcast.features.frontends import FrontendError, ValueDependentError, detect_framework
from flopcast.features.records import Outcome
from tests.features.frontends.helpers import run
from tests.features.frontends.models import numpy_science as sci

N = 64


def flops(fn, *specs, **dims):
    return run("numpy", fn, inputs=specs, dims={"N": N, **dims}).flops


MAT = "float64[N,N]"
VEC = "float64[N]"
CASES = [
    ("matmul", lambda a: a @ a, (MAT,), 2 * N**3),
    ("matvec", lambda a, v: a @ v, (MAT, VEC), 2 * N * N),
    ("dot", lambda a: np.dot(a, a), (MAT,), 2 * N**3),
    ("batched", lambda a: a @ a, ("float32[4,N,N]",), 4 * 2 * N**3),
    ("einsum", lambda a: np.einsum("ij,jk->ik", a, a), (MAT,), 2 * N**3),
    ("einsum_batch", lambda a: np.einsum("bij,bjk->bik", a, a), ("float32[3,N,N]",), 3 * 2 * N**3),
    ("einsum_trace_sum", lambda a: np.einsum("ij->", a), (MAT,), N * N),  # one add per element
    ("tensordot", lambda a: np.tensordot(a, a, axes=([1], [0])), (MAT,), 2 * N**3),
    ("solve", lambda a, v: np.linalg.solve(a, v), (MAT, VEC), round(2 * N**3 / 3 + 2 * N**2)),
    ("inv", np.linalg.inv, (MAT,), 2 * N**3),
    ("det", np.linalg.det, (MAT,), round(2 * N**3 / 3 + N)),
    ("cholesky", np.linalg.cholesky, (MAT,), round(N**3 / 3)),
    ("qr", np.linalg.qr, (MAT,), round((2 * N**3 - 2 * N**3 / 3) + (4 * N**3 - 4 * N**3 + 4 * N**3 / 3))),
    ("svd", lambda a: np.linalg.svd(a, full_matrices=False), (MAT,), 14 * N**3 + 8 * N**3),
    ("svd_values", lambda a: np.linalg.svd(a, compute_uv=False), (MAT,), round(4 * N**3 - 4 * N**3 / 3)),
    ("eig", np.linalg.eig, (MAT,), 25 * N**3),
    ("eigh", np.linalg.eigh, (MAT,), 9 * N**3),
    ("lstsq", lambda a, v: np.linalg.lstsq(a, v), (MAT, VEC), 4 * N**3 + 8 * N**3 + 2 * N * N),
    ("fft", lambda v: np.fft.fft(v), (VEC,), round(5 * N * math.log2(N))),
    ("fft_rows", lambda a: np.fft.fft(a, axis=1), (MAT,), round(N * 5 * N * math.log2(N))),
    ("rfft", lambda v: np.fft.rfft(v), (VEC,), round(2.5 * N * math.log2(N))),
    ("fft2", lambda a: np.fft.fft2(a), (MAT,), round(2 * N * 5 * N * math.log2(N))),
    ("add", lambda a: a + a, (MAT,), N * N),
    ("exp", np.exp, (MAT,), 4 * N * N),  # transcendental = 4 FLOPs (formulas/pointwise.py)
    ("sum", lambda a: a.sum(axis=0), (MAT,), N * N),
    ("var", lambda a: a.var(), (MAT,), 3 * N * N),
    ("norm", lambda a: np.linalg.norm(a, axis=1), (MAT,), 2 * N * N),
    ("sort", lambda a: np.sort(a, axis=1), (MAT,), N * N * 6),  # numel * ceil(log2 64)
    ("concatenate", lambda a: np.concatenate([a, a]), (MAT,), 0),
    ("reshape_transpose", lambda a: a.T.reshape(-1), (MAT,), 0),
    ("slice", lambda a: a[1:, ::2], (MAT,), 0),
]


@pytest.mark.parametrize(("name", "fn", "specs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_formula_family(name, fn, specs, expected):
    assert flops(fn, *specs) == expected


def test_copy_bytes_and_view_bytes():
    a = run("numpy", lambda x: (np.concatenate([x, x]), x.T), inputs=(MAT,), dims={"N": N})
    cat, view = a.ops
    assert cat.bytes_read == cat.bytes_written == 2 * N * N * 8
    assert view.bytes_read == view.bytes_written == 0


def test_conjugate_gradient_end_to_end():
    a = run("numpy", sci.conjugate_gradient, inputs=tuple(sci.INPUTS), dims={"N": 100})
    n, k = 100, sci.CG_ITERS
    # setup: A @ x (2N^2) + b - Ax (N) + r @ r (2N); per iteration: A @ p (2N^2), p @ Ap (2N), 2 divides,
    # x + alpha p, r - alpha Ap, r + beta p (3 x 2N), r @ r (2N)
    assert a.flops == (2 * n * n + 3 * n) + k * (2 * n * n + 10 * n + 2)  # = 230320
    assert not a.unsupported_ops


def test_kmeans_step_end_to_end():
    a = run("numpy", sci.kmeans_step, inputs=("float64[N,D]", "float64[K,D]"), dims={"N": 100, "D": 8, "K": 4})
    n, d, k = 100, 8, 4
    expected = (n * k * d  # X - C
                + 4 * n * k * d  # ** 2 (pow: 4)
                + n * k * d  # sum over D
                + n * k  # argmin
                + n * k  # == (one-hot)
                + n * k  # counts
                + 2 * k * n * d  # onehot.T @ X
                + k * d)  # divide
    assert a.flops == expected  # = 26832
    assert {o.module for o in a.ops} == {""}


def test_unknown_function_is_unsupported_not_zero():
    a = run("numpy", lambda x: np.median(x, axis=0), inputs=(MAT,), dims={"N": N})
    assert a.unsupported_ops == {"numpy.median": 1}
    assert a.ops[0].outcome is Outcome.UNSUPPORTED and a.ops[0].outputs[0].shape == (N,)


def test_module_path_is_call_chain():
    a = run("numpy", sci.__dict__["conjugate_gradient"], inputs=tuple(sci.INPUTS), dims={"N": 8})
    assert all(o.module == "" for o in a.ops)
    from tests.features.frontends.models import numpy_models

    enc = run("numpy", numpy_models.encoder, inputs=("float32[B,16,64]",))
    assert {"attention", "attention.softmax", "layer_norm", "linear", "attention.linear"} <= {o.module for o in enc.ops}


@pytest.mark.parametrize(("fn", "specs", "needle"), [
    (sci.kmeans_masked, ("float64[N,N]", "float64[3,N]"), "boolean mask"),
    (sci.converge, ("float64[N,N]", "float64[N]"), "truth value"),
])
def test_value_dependent_code_names_the_line(fn, specs, needle):
    with pytest.raises(ValueDependentError) as err:
        run("numpy", fn, inputs=specs, dims={"N": 8})
    lines, start = inspect.getsourcelines(fn)
    line = start + next(i for i, t in enumerate(lines) if "value-dependent" in t)
    msg = str(err.value)
    assert needle in msg and f"numpy_science.py:{line}:" in msg and "\n" not in msg


def test_returns_nothing():
    with pytest.raises(FrontendError, match="returned nothing"):
        run("numpy", sci.returns_nothing, inputs=("float64[3,3]", "float64[3]"))


def test_raises_names_exception_and_line():
    with pytest.raises(FrontendError, match=r"raised ValueError at numpy_science.py:\d+"):
        run("numpy", sci.raises, inputs=("float64[3,3]", "float64[4]"))


def test_missing_inputs():
    with pytest.raises(FrontendError, match="no input shapes"):
        run("numpy", lambda a: a)


def test_detection(tmp_path):
    import torch

    assert detect_framework("f.py", sci.conjugate_gradient) == "numpy"
    assert detect_framework("m.onnx", None) == "onnx"
    assert detect_framework("m.py", torch.nn.Linear(2, 2)) == "torch"
    assert detect_framework("m.py", lambda: torch.nn.Linear(2, 2)) == "torch"


def test_no_peak_memory_estimate_is_null_not_zero():
    a = run("numpy", sci.kmeans_step, inputs=("float64[N,D]", "float64[K,D]"), dims={"N": 100, "D": 8, "K": 4})
    assert a.memory is None and a.to_dict()["peak_memory_bytes"] is None
