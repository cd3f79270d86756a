"""experiments/gpu_campaign.py: the follow-up phase plans the steps' own op shapes and the steps again."""

from __future__ import annotations

import json

import pytest

from flopcast.calibration.catalog import get_hardware
from flopcast.calibration.plan import plan_tasks
from flopcast.calibration.provenance import Provenance
from flopcast.calibration.zoo import ZOO
from tests.experiments.conftest import load_script


@pytest.fixture(scope="module")
def gpu_campaign():
    return load_script("gpu_campaign")


def test_followup_measures_the_op_shapes_of_its_steps_and_every_zoo_step(gpu_campaign, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_campaign, "FOLLOWUP_STEPS", (("mlp-wide", 8192, "fp32"), ("lstm-lm", 256, "fp32")))
    cfg = gpu_campaign.config_for("followup", tmp_path, 7, slug="gpu-nvidia-h200")
    assert cfg.out_dir == tmp_path / "gpu-nvidia-h200-followup" and cfg.device == "cuda"
    assert sorted(p.name for p in cfg.ops_from) == ["lstm-lm-b256-fp32.parquet", "mlp-wide-b8192-fp32.parquet"]
    h200 = get_hardware("h200")
    tasks = plan_tasks(cfg, h200, Provenance.of(h200))
    ops = [t for t in tasks if t.kind == "op"]
    steps = {t.name for t in tasks if t.kind == "step"}
    # every zoo model with GPU batch sizes measured again: the GPU's repeatability
    assert steps == {name for name, m in ZOO.items() if m.gpu_batch_sizes}
    fp32_gemms = [t for t in ops if t.name == "matmul" and t.config["dtype"] == "fp32"]
    assert max(t.static["flops"] for t in fp32_gemms) > 1e10  # beyond the 1 GFLOP the first campaign reached
    assert {t.name for t in ops} == {"matmul"}  # mlp-wide and lstm-lm: GEMMs only among the follow-up families
    assert len(ops) == len({t.key for t in ops}) and len(ops) < 40  # the tables' shapes, each once; none sampled
    assert {t.source for t in ops} <= {"mlp-wide", "lstm-lm", "lstm-lm,mlp-wide"} and ops  # leak rule's provenance
    sizes = [t.static["flops"] + t.static["bytes_read"] for t in ops]  # spread: smallest first, then the upper half
    assert sizes[0] == min(sizes) and sorted(sizes).index(sizes[1]) >= len(sizes) // 2
    again = gpu_campaign.config_for("followup", tmp_path, 7, slug="gpu-nvidia-h200")
    assert again.ops_from == cfg.ops_from  # tables written once, reused on the resumed chunk
    assert json.loads(json.dumps([t.config for t in ops]))  # configs stay JSON (the store's key)
