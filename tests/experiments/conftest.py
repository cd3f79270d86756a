"""Loading the experiment scripts, which are files to run, not modules of the package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from flopcast.datasets.loader import Dataset, load_datasets
from tests.datasets.synthetic import write_folder

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def load_script(name: str) -> ModuleType:
    """``experiments/<name>.py`` as a module, its folder on the path as `python experiments/<name>.py` has it."""
    sys.path.insert(0, str(EXPERIMENTS))  # the scripts import their shared helpers (result_tables)
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_script", EXPERIMENTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXPERIMENTS))
    return module


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """Both synthetic devices, each model's steps at one batch size (an evaluation composes each step many times)."""
    root = tmp_path_factory.mktemp("data")
    for name in ("test-cpu", "test-gpu"):
        steps = pd.read_parquet(write_folder(root, name, n_ops=60) / "steps.parquet")
        steps[steps["batch_size"] == 4].to_parquet(root / name / "steps.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def data(data_root: Path) -> Dataset:
    """The synthetic data of :func:`data_root`."""
    return load_datasets([data_root])
