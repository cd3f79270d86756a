from __future__ import annotations

import pytest

from flopcast.datasets.loader import load_datasets
from flopcast.predictor.analysis_cache import KEPT_COLUMNS, StepAnalysis
from flopcast.predictor.io import save_model
from flopcast.predictor.training import FitConfig, fit_cost_model
from tests.datasets.synthetic import step_ops, write_folder


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
