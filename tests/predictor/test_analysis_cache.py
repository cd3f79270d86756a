from __future__ import annotations

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
