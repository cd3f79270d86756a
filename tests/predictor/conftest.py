from __future__ import annotations

import json

import pytest

from flopcast.datasets.loader import load_datasets
from flopcast.predictor.analysis_cache import KEPT_COLUMNS, StepAnalysis
from flopcast.predictor.io import save_model
from flopcast.predictor.training import FitConfig, fit_cost_model
from tests.datasets.synthetic import DEVICES, step_ops, write_folder

SMALL_NET = '''import torch
INPUTS = ["float32[B,64]"]


def build():
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
'''
"""A two-layer MLP whose step the tests count by hand (Linear 64 -> 64, ReLU, Linear 64 -> 8)."""


def synthetic_analyse(model, batch_size, mode, precision, optimizer, device):
    ops = step_ops(model, batch_size)
    return StepAnalysis(ops[list(KEPT_COLUMNS)], int(ops["bytes_written"].sum()), 1000)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_folder(root, "test-cpu")
    write_folder(root, "test-gpu")
    return root


@pytest.fixture(scope="session")
def dataset(data_root):
    return load_datasets([data_root])


@pytest.fixture(scope="session")
def model(dataset):
    return fit_cost_model(dataset, FitConfig(n_estimators=30, progress=False), analyse=synthetic_analyse)


@pytest.fixture(scope="session")
def model_dir(model, tmp_path_factory):
    return save_model(model, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    """A folder with ``net.py`` (:data:`SMALL_NET`) and ``gpu.json`` (the synthetic trained GPU's descriptor)."""
    root = tmp_path_factory.mktemp("net")
    (root / "net.py").write_text(SMALL_NET)
    (root / "gpu.json").write_text(json.dumps(DEVICES["test-gpu"]))
    return root
