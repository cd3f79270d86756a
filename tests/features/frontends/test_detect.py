"""Framework detection never builds a PyTorch model with real weights (issue 15)."""

from __future__ import annotations

import importlib
import resource
import sys
import textwrap

import pytest
import torch

from flopcast.features.api import analyze_config
from flopcast.features.config import AnalyzeConfig
from flopcast.features.frontends import detect_framework

# A model library outside torch (as transformers is): its class is PyTorch by ancestry only. Built anywhere
# but on the meta device it refuses before allocating its 2**32-parameter layer (16 GiB of fp32 weights).
HUGELIB = '''
import torch

BUILT = []


class Huge(torch.nn.Module):
    def __init__(self):
        super().__init__()
        device = torch.empty(0).device
        BUILT.append(device.type)
        if device.type != "meta":
            raise RuntimeError(f"built for real on {device}")
        self.proj = torch.nn.Linear(1 << 16, 1 << 16, bias=False)

    def forward(self, x):
        return self.proj(x)


def make():
    return Huge()
'''


@pytest.fixture
def hugelib(tmp_path, monkeypatch):
    (tmp_path / "hugelib.py").write_text(HUGELIB)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("hugelib", None)
    module = importlib.import_module("hugelib")
    yield module
    sys.modules.pop("hugelib", None)


def test_a_factory_of_a_module_subclass_from_another_library_is_torch_unbuilt(hugelib):
    Huge = hugelib.Huge  # as `from transformers import LlamaForCausalLM` names a class of another library

    def build():
        return Huge()

    assert detect_framework("m.py", build) == "torch" and hugelib.BUILT == []


def test_plain_helpers_are_followed_without_a_call(hugelib):
    def build():
        return hugelib.make()

    def outer():
        return build()

    assert detect_framework("m.py", outer) == "torch" and hugelib.BUILT == []


def test_a_factory_whose_code_and_file_do_not_tell_is_built_on_the_meta_device_only(hugelib, tmp_path):
    (tmp_path / "dynamic.py").write_text(textwrap.dedent('''
        import importlib


        def build():
            return getattr(importlib.import_module("hugelib"), "H" + "uge")()
    '''))
    build = importlib.import_module("dynamic").build
    assert detect_framework("dynamic.py", build) == "torch" and hugelib.BUILT == ["meta"]
    sys.modules.pop("dynamic", None)


def test_a_factory_naming_nothing_takes_the_framework_its_file_imports():
    def build():
        return 42  # this test file imports torch (and nothing else of a framework)

    assert detect_framework("m.py", build) == "torch"


def test_a_hugging_face_class_is_torch_by_ancestry(monkeypatch):
    transformers = pytest.importorskip("transformers")
    cls, config = transformers.LlamaForCausalLM, transformers.LlamaConfig(num_hidden_layers=1)

    def refuse(*args, **kwargs):
        raise AssertionError("LlamaForCausalLM was instantiated during detection")

    monkeypatch.setattr(cls, "__init__", refuse)

    def build():
        return cls(config)

    assert detect_framework("llama.py", build) == "torch"


def test_a_file_target_of_a_huge_model_analyses_without_allocating_it(hugelib, tmp_path):
    (tmp_path / "target.py").write_text(textwrap.dedent('''
        from hugelib import Huge

        INPUTS = ["float32[B,65536]"]


        def build():
            return Huge()
    '''))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    a = analyze_config(AnalyzeConfig(target=f"{tmp_path / 'target.py'}:build", batch_size=2, mode="infer",
                                     optimizer="none", device="cpu"))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    assert a.params == 1 << 32
    assert set(hugelib.BUILT) == {"meta"}
    assert grown < 2**30  # the real weights alone would be 16 GiB


def test_torch_and_numpy_detection_is_unchanged():
    assert detect_framework("m.py", lambda: torch.nn.Linear(2, 2)) == "torch"
    assert detect_framework("f.py", lambda x: x * 2) == "numpy"
