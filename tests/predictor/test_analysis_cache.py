from __future__ import annotations

from pathlib import Path

from flopcast.predictor import analysis_cache
from flopcast.predictor.analysis_cache import cache_key, features_digest


def test_key_changes_with_the_static_analysis_source(monkeypatch):
    key = cache_key("mlp-small", 8, "train", "fp32", "adamw", "cpu")
    assert key == cache_key("mlp-small", 8, "train", "fp32", "adamw", "cpu")
    assert len(features_digest()) == 12
    monkeypatch.setattr(analysis_cache, "features_digest", lambda: "0" * 12)
    assert cache_key("mlp-small", 8, "train", "fp32", "adamw", "cpu") != key


def test_key_changes_with_the_config():
    keys = {cache_key("mlp-small", b, m, "fp32", "adamw", "cpu") for b in (8, 16) for m in ("train", "infer")}
    assert len(keys) == 4


def test_key_changes_with_the_step_options():
    plain = cache_key("mlp-small", 8, "train", "fp32", "adamw", "cpu")
    assert cache_key("mlp-small", 8, "train", "fp32", "adamw", "cpu", loss="cross-entropy") != plain
    assert cache_key("mlp-small", 8, "train", "fp32", "adamw", "cpu", grad_accumulation=2) != plain


def test_zoo_step_analyses_with_the_rows_step_options(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOPCAST_CACHE_DIR", str(tmp_path))
    plain = analysis_cache.zoo_step("mlp-small", 2, "train", "fp32", "adamw", "cpu")
    twice = analysis_cache.zoo_step("mlp-small", 2, "train", "fp32", "adamw", "cpu", grad_accumulation=2)
    phases = lambda s: s.ops.groupby("phase")["flops"].sum()  # noqa: E731
    assert phases(twice)["forward"] == 2 * (phases(plain)["forward"] + 1)  # + the loss divided by 2


def test_key_changes_with_any_zoo_source_and_the_transformers_version(monkeypatch, tmp_path):
    import flopcast.calibration.zoo as zoo

    key = cache_key("vgg11-224", 8, "train", "fp32", "adamw", "cpu")
    # vgg11-224 is functools.partial(vgg11, ...) declared in full_size.py: a change to vgg.py or to the shared
    # blocks must reach its key
    copy = tmp_path / "zoo"
    copy.mkdir()
    for path in Path(zoo.__path__[0]).glob("*.py"):
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "blocks.py").write_text((copy / "blocks.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(zoo, "__path__", [str(copy)])
    analysis_cache.zoo_digest.cache_clear()
    assert cache_key("vgg11-224", 8, "train", "fp32", "adamw", "cpu") != key
    monkeypatch.undo()
    analysis_cache.zoo_digest.cache_clear()
    assert cache_key("vgg11-224", 8, "train", "fp32", "adamw", "cpu") == key
    monkeypatch.setattr(analysis_cache, "transformers_version", lambda: "0.0.1")
    assert cache_key("vgg11-224", 8, "train", "fp32", "adamw", "cpu") != key
