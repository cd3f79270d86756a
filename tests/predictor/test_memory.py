from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flopcast.predictor.memory import MemoryModel


def _frame(est):
    return pd.DataFrame({"hardware": "gpu-a", "kind": "gpu", "est_peak_memory_bytes": est})


def test_recovers_a_constant_allocator_offset():
    est = np.geomspace(1e8, 1e10, 40)
    model = MemoryModel().fit(_frame(est), est + 3e7)
    assert model.predict("gpu-a", "gpu", 1e9) == pytest.approx(1e9 + 3e7, rel=1e-6)
    assert model.is_calibrated("gpu-a")


def test_a_few_large_outliers_do_not_pull_the_other_steps_up():
    est = np.geomspace(1e8, 1e10, 40)
    measured = est.copy()
    measured[:6] *= 2.5  # cuDNN workspaces of a few fp32 conv steps
    model = MemoryModel().fit(_frame(est), measured)
    predicted = np.array([model.predict("gpu-a", "gpu", e) for e in est[6:]])
    assert np.median(np.abs(predicted / measured[6:] - 1)) < 0.01


def test_unknown_hardware_uses_its_kind_then_the_identity():
    est = np.geomspace(1e8, 1e10, 10)
    model = MemoryModel().fit(_frame(est), est * 1.0 + 5e6)
    assert model.predict("gpu-b", "gpu", 1e9) == pytest.approx(1e9 + 5e6, rel=1e-6)
    assert model.predict("cpu-x", "cpu", 1e9) == pytest.approx(1e9)


# --- cuBLAS / cuBLASLt workspaces: what a GPU process holds from its first step on --------------------------

MIB = 2**20


def _ops(*rows):
    return pd.DataFrame(rows, columns=["op", "phase"])


MLP_TRAIN = _ops(("aten.addmm", "forward"), ("aten.relu", "forward"), ("aten.mm", "backward"),
                 ("aten._foreach_mul_", "optimizer"))
MLP_INFER = _ops(("aten.addmm", "forward"), ("aten.relu", "forward"))
NO_BIAS_TRAIN = _ops(("aten.mm", "forward"), ("aten.bmm", "backward"))
CONV_TRAIN = _ops(("aten.convolution", "forward"), ("aten.convolution_backward", "backward"))


@pytest.fixture(scope="module")
def catalog():
    from flopcast.calibration.catalog import load_catalog

    return load_catalog()


@pytest.mark.parametrize(("device", "ops", "expected"), [
    ("h200", MLP_TRAIN, 2 * 32 * MIB + MIB),  # main thread: cuBLAS + Lt (addmm); autograd thread: cuBLAS
    ("h100-sxm", MLP_INFER, 32 * MIB + MIB),  # one thread
    ("h100-pcie", NO_BIAS_TRAIN, 2 * 32 * MIB),  # no cuBLASLt op (T5's bias-free linears)
    ("a100-80gb", MLP_TRAIN, 2 * (4096 * 1024 * 2 + 16 * 1024 * 8) + MIB),  # :4096:2:16:8 off Hopper
    ("h200", CONV_TRAIN, 0),  # cuDNN, no cuBLAS handle
    ("mi300x", MLP_TRAIN, 2 * 128 * MIB + 76 * MIB),  # hipBLAS on gfx942, hipBLASLt
    ("cpu-epyc-genoa-32c", MLP_TRAIN, 0),
])
def test_workspaces_per_thread_that_runs_a_matmul(catalog, device, ops, expected):
    from flopcast.predictor.memory import blas_workspace_bytes

    assert blas_workspace_bytes(catalog[device], ops, env={}) == expected


@pytest.mark.parametrize(("env", "expected"), [
    ({"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}, 2 * 32 * MIB + MIB),  # the deterministic setting: 32 MiB anywhere
    ({"CUBLAS_WORKSPACE_CONFIG": ":16:8"}, 2 * 128 * 1024 + 128 * 1024),  # Lt capped at the cuBLAS size
    ({"CUBLASLT_WORKSPACE_SIZE": "4096"}, 2 * 8519680 + 4 * MIB),
    ({"TORCH_CUBLASLT_UNIFIED_WORKSPACE": "1"}, 2 * 8519680),
])
def test_torch_environment_overrides(catalog, env, expected):
    from flopcast.predictor.memory import blas_workspace_bytes

    assert blas_workspace_bytes(catalog["a100-80gb"], MLP_TRAIN, env=env) == expected


def test_a_probed_compute_capability_decides_over_the_name(catalog):
    from dataclasses import replace

    from flopcast.predictor.memory import workspace_arch

    h200 = catalog["h200"]
    assert workspace_arch(h200) == "sm90"
    assert workspace_arch(replace(h200, name="x", vendor_name="NVIDIA GH200")) == "sm90"
    assert workspace_arch(replace(h200, extra={"compute_capability": "10.0"})) == "cuda"  # Blackwell: 8 MiB default
    assert workspace_arch(replace(catalog["l4"], name="local-gpu-x", extra={"compute_capability": "9.0"})) == "sm90"
