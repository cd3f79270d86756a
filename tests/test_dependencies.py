"""The stages' imports point one way (ARCHITECTURE.md, Packaging): no module imports a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("datasets", "features", "calibration", "predictor")
DATA_TOOLS = ("flopcast.datasets.validate", "flopcast.datasets.refresh", "flopcast.datasets.import_neusight")
"""Tools over the released data that check it against the hardware's physics and re-run the tracer."""


def layer(module: str) -> int:
    """0: the contract (schema, loader, release), 1: features, 2: calibration, 3: the data tools, 4: predictor."""
    if module.startswith(DATA_TOOLS):
        return 3
    stage = module.split(".")[1]
    return {"datasets": 0, "features": 1, "calibration": 2, "predictor": 4}[stage]


def flopcast_imports(path: Path) -> set[str]:
    """Every ``flopcast.*`` module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flopcast."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("flopcast."))
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for stage in STAGES:
        for path in sorted((ROOT / stage).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out.append((".".join(("flopcast", *parts)).removesuffix(".__init__"), path))
    return out


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_no_import_points_up(module, path):
    upward = sorted(m for m in flopcast_imports(path) if m.split(".")[1] in STAGES and layer(m) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports {upward}"


def test_an_upward_import_is_caught(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from flopcast.predictor.model import CostModel\n"
                    "    import flopcast.datasets.schema\n")
    assert flopcast_imports(path) == {"flopcast.predictor.model", "flopcast.datasets.schema"}
    assert layer("flopcast.predictor.model") > layer("flopcast.features.step") > layer("flopcast.datasets.loader")
    assert layer("flopcast.calibration.zoo_steps") < layer("flopcast.datasets.refresh") < layer("flopcast.predictor.io")
