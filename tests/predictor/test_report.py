from __future__ import annotations

import re
import shutil
from importlib import resources

import pytest

from flopcast.predictor.main import main

PHOTONIC = resources.files("flopcast.predictor").joinpath("hypothetical", "photonic-matrix-engine.json")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def report(small_net, model_dir):
    root = small_net
    out = root / "report.html"
    code = main(["report", f"{root / 'net.py'}:build", "--batch-size", "8", "--model", str(model_dir), "--hardware",
                 f"{root / 'gpu.json'},{PHOTONIC}", "--dataset-size", "1000", "--country", "FR", "-o", str(out)])
    assert code == 0
    return root, out.read_text()


def test_report_holds_every_section_with_predict_numbers(report, model_dir, capsys):
    root, page = report
    for heading in ("Analysis", "Predictions per device", "Model card: compute cost", "Method"):
        assert f"<h2>{heading}</h2>" in page
    assert main(["predict", f"{root / 'net.py'}:build", "--batch-size", "8", "--model", str(model_dir), "--hardware",
                 str(root / "gpu.json"), "--dataset-size", "1000", "--country", "FR"]) == 0
    table = capsys.readouterr().out
    step_time = re.search(r"step time\s*│\s*([^│]+?)\s*│", table).group(1)
    assert step_time in page  # the same cell as predict's table
    assert page.count("data:image/png;base64,") == 8  # op mix, modules; 2 rooflines, 2 module times, op mix, devices


def test_report_is_self_contained(report):
    _, page = report
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)  # every resource inlined
    assert "http://" not in page and "https://" not in page.replace("https://www.w3.org", "")


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "/nonexistent-folder/r.html"], "cannot write the report to /nonexistent-folder/r.html"),
])
def test_bad_output_is_one_line(report, model_dir, capsys, args, message):
    root, _ = report
    code = main(["report", f"{root / 'net.py'}:build", "--model", str(model_dir), "--hardware", "h100", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def _browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    path = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if path is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return sync_api, path


def test_report_loads_in_a_headless_browser(report, tmp_path):
    sync_api, path = _browser()
    root, _ = report
    errors, remote = [], []
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        except Exception as e:  # a browser that cannot start here (sandbox, missing libraries)
            pytest.skip(f"chromium does not start: {str(e).splitlines()[0]}")
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto((root / "report.html").as_uri(), wait_until="load")
        shot = tmp_path / "shot.png"
        page.screenshot(path=str(shot), full_page=True)
        images = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
        browser.close()
    assert errors == [] and remote == []
    assert images and all(images)  # every inlined figure decoded
    from PIL import Image

    with Image.open(shot) as im:
        extrema = im.convert("L").getextrema()
    assert extrema[0] < extrema[1]  # not blank: dark text on a light page
