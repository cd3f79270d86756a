from __future__ import annotations

import json

import pytest

from flopcast.predictor.pool import PoolError, load_pool
from tests.datasets.synthetic import DEVICES


def _pool(tmp_path, text):
    path = tmp_path / "pool.yaml"
    path.write_text(text)
    return path


def test_entries_resolve_with_their_slurm_names(tmp_path):
    (tmp_path / "gpus").mkdir()
    (tmp_path / "gpus" / "mine.json").write_text(json.dumps(DEVICES["test-gpu"]))
    pool = load_pool(_pool(tmp_path, "gpus:\n"
                                     "  - {hardware: h100, partition: p1, gres: h100, per_node: 8, cpus_per_node: 96}\n"
                                     "  - {hardware: gpus/mine.json, partition: p2, gres: t, price_per_gpu_hour: 2}\n"))
    assert [g.name for g in pool] == ["h100-sxm", "test-gpu"]
    assert pool[0].cpus_per_gpu == 12 and pool[0].per_node == 8 and pool[0].price_per_gpu_hour is None  # 96 / 8
    assert pool[1].hardware == str(tmp_path / "gpus" / "mine.json") and pool[1].price_per_gpu_hour == 2.0


@pytest.mark.parametrize(("text", "message"), [
    ("gpus: []\n", "non-empty list 'gpus'"),
    ("- h100\n", "non-empty list 'gpus'"),
    ("gpus:\n  - {hardware: h100, partition: p, gres: g, colour: red}\n", "unknown field(s) colour"),
    ("gpus:\n  - {hardware: h100, partition: p, gres: g, per_node: 1.5}\n", "per_node must be a whole number > 0"),
    ("gpus:\n  - {hardware: h100, partition: p, gres: g, price_per_gpu_hour: -1}\n", "price_per_gpu_hour must be"),
    ("gpus:\n  - {hardware: h100, partition: p, gres: g}\n  - {hardware: h100-sxm, partition: q, gres: g}\n",
     "listed twice: h100-sxm"),
    ("gpus:\n  - {hardware: a100x, partition: p, gres: g}\n", "gpus[0]: unknown hardware 'a100x'; did you mean"),
    ("gpus:\n  - {hardware: nothere.json, partition: p, gres: g}\n", "descriptor file not found"),
    ("gpus: {\n", "not valid YAML at line"),
])
def test_bad_pools_name_the_file_and_entry(tmp_path, text, message):
    path = _pool(tmp_path, text)
    with pytest.raises(PoolError) as e:
        load_pool(path)
    assert message in str(e.value) and str(path) in str(e.value)
