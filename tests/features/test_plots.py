from __future__ import annotations

from flopcast.features.plots import module_key, slug
from flopcast.predictor.main import main
from tests.predictor.conftest import SMALL_NET


def test_analyze_plot_writes_the_static_figures(tmp_path):
    (tmp_path / "net.py").write_text(SMALL_NET)
    out = tmp_path / "figures"
    assert main(["analyze", f"{tmp_path / 'net.py'}:build", "--plot", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "modules-flops-build.png", "modules-flops-build.svg", "op-mix-build.png", "op-mix-build.svg"]


def test_module_key_cuts_paths_and_names_the_root():
    assert module_key("transformer.h.3.attn") == "transformer.h" and module_key("") == "(root: loss, optimizer)"
    assert slug("h100-sxm (EP 20+4)") == "h100-sxm-EP-20-4"
