"""The forked analysis gives what an in-process one gives, and every failure falls back to in-process."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import flopcast.predictor.prefetch as prefetch
from flopcast.features.api import analyze_config
from flopcast.features.config import AnalyzeConfig
from flopcast.features.errors import TargetError
from flopcast.predictor.main import main
from flopcast.predictor.prefetch import AnalysisPrefetch, analysis_devices

TARGET = '''
import torch
INPUTS = ["float32[B,32]"]


def build():
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 4))
'''

pytestmark = pytest.mark.skipif(not prefetch.enabled(), reason="no fork or a single core: prefetch is off")


@pytest.fixture
def config(tmp_path) -> AnalyzeConfig:
    (tmp_path / "net.py").write_text(TARGET)
    return AnalyzeConfig(target=str(tmp_path / "net.py:build"), batch_size=4, device="cpu")


def _no_parent_analysis(config: AnalyzeConfig):
    raise AssertionError(f"analysed in the parent: {config.target} on {config.device}")


def test_prefetched_analysis_comes_from_the_child_and_equals_in_process(config, monkeypatch):
    expected = analyze_config(config)
    with AnalysisPrefetch([config, replace(config, device="cuda")]) as p:
        monkeypatch.setattr(prefetch, "_analyse_in_process", _no_parent_analysis)  # the child forked before
        got = p.analyse(config)
        assert p.analyse(replace(config, device="cuda")).target.device == "cuda"
    assert [(o.op, o.module, o.inputs, o.flops, o.bytes_read) for o in got.ops] == \
        [(o.op, o.module, o.inputs, o.flops, o.bytes_read) for o in expected.ops]
    assert got.memory == expected.memory and got.params == expected.params


def test_config_not_prefetched_is_analysed_in_process(config, monkeypatch):
    calls = []
    with AnalysisPrefetch([config]) as p:
        monkeypatch.setattr(prefetch, "_analyse_in_process", lambda c: calls.append(c) or "in-process")
        assert p.analyse(replace(config, batch_size=8)) == "in-process"
    assert calls == [replace(config, batch_size=8)]


def test_failure_in_the_child_is_reported_by_the_parent(tmp_path):
    missing = AnalyzeConfig(target=str(tmp_path / "absent.py:build"))
    with AnalysisPrefetch([missing]) as p, pytest.raises(TargetError, match="no such file"):
        p.analyse(missing)


def test_dead_child_falls_back_to_in_process(config, monkeypatch):
    with AnalysisPrefetch([config]) as p:
        process, _ = p._children[0]
        process.kill()
        process.join()
        monkeypatch.setattr(prefetch, "_analyse_in_process", lambda c: "in-process")
        assert p.analyse(config) == "in-process"


def test_devices_resolved_without_probing_and_switch_off(monkeypatch, config):
    assert analysis_devices(["h100", "cpu", "local", "no-such-gpu", "a100"]) == ["cuda", "cpu"]
    assert len(AnalysisPrefetch.for_predict(config, ["h100", "cpu"]).configs) == 2
    monkeypatch.setenv("FLOPCAST_PREFETCH", "0")
    assert AnalysisPrefetch.for_predict(config, ["h100", "cpu"]).configs == []


def test_predict_output_is_the_same_with_and_without_prefetch(config, monkeypatch, capsys):
    argv = ["predict", config.target, "--batch-size", "4", "--hardware", "h100,cpu", "--json"]
    assert main(argv) == 0
    with_prefetch = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("FLOPCAST_PREFETCH", "0")
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == with_prefetch


def test_child_does_not_hang_after_the_parent_ran_openmp_work(tmp_path):
    """libgomp is not fork-safe: a child's first parallel region waited forever on the parent's thread team."""
    import subprocess
    import sys
    import textwrap

    (tmp_path / "m.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        WARM = (torch.ones(256, 256) @ torch.ones(256, 256)).sum()  # real work at import, in the child
        def build():
            return nn.Linear(4, 2)
    """))
    script = textwrap.dedent(f"""
        import torch
        torch.set_num_threads(2)
        (torch.ones(512, 512) @ torch.ones(512, 512)).sum()  # the parent's OpenMP team exists
        from flopcast.features.config import AnalyzeConfig
        from flopcast.predictor.prefetch import AnalysisPrefetch
        c = AnalyzeConfig(target={str(tmp_path / "m.py") + ":build"!r}, inputs=("float32[B,4]",), batch_size=2,
                          device="cpu")
        with AnalysisPrefetch([c]) as p:
            print(p._received(0).flops)
    """)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the prefetch child hung")
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip().splitlines()[-1]) > 0
