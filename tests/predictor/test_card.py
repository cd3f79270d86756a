from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from flopcast.predictor.main import main

GOLDEN = Path(__file__).parent / "golden" / "card.md"


@pytest.fixture(scope="module")
def files(small_net):
    return small_net


def _args(files, model_dir, *extra):
    return ["card", str(files / "net.py:build"), "--batch-size", "8", "--model", str(model_dir), "--hardware",
            str(files / "gpu.json"), "--dataset-size", "1000", "--epochs", "2", "--country", "FR",
            "--inference-batch-size", "4", "--inference-samples", "5000", *extra]


def _normalised(text: str, files: Path, card: dict) -> str:
    return (text.replace(str(files / "net.py:build"), "<target>").replace(card["model_version"], "<model-version>")
            .replace(f"flopcast {card['flopcast_version']}", "flopcast <version>"))


def _run(capsys, args):
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_markdown_matches_the_golden_file(files, model_dir, capsys):
    card = json.loads(_run(capsys, _args(files, model_dir, "--json")))
    text = _normalised(_run(capsys, _args(files, model_dir)), files, card)
    if os.environ.get("FLOPCAST_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_card_numbers_are_predict_numbers(files, model_dir, capsys):
    card = json.loads(_run(capsys, _args(files, model_dir, "--json")))
    base = ["predict", str(files / "net.py:build"), "--model", str(model_dir), "--hardware", str(files / "gpu.json"),
            "--country", "FR", "--json"]
    train = json.loads(_run(capsys, [*base, "--batch-size", "8", "--dataset-size", "1000", "--epochs", "2"]))[0]
    infer = json.loads(_run(capsys, [*base, "--batch-size", "4", "--mode", "infer", "--dataset-size", "1000"]))[0]
    t, i = card["training"], card["inference"]["per_1000_samples"]
    assert t["time_s"] == {"median": train["run_time_s"], "p10": train["run_time_s_p10"],
                           "p90": train["run_time_s_p90"]}
    assert t["co2_kg"]["median"] == train["run_co2_kg"] and t["flops_per_step"] == train["flops"]
    assert i["time_s"]["median"] == pytest.approx(infer["run_time_s"])
    assert i["energy_j"]["median"] == pytest.approx(infer["run_energy_kwh"] * 3.6e6)
    assert i["co2_g"]["p90"] == pytest.approx(infer["run_co2_kg_p90"] * 1000)
    assert card["inference"]["flops_per_sample"] == infer["flops"] / 4
    assert card["inference"]["total"]["steps"] == 1250  # 5000 samples in batches of 4
    assert card["hardware"] == {"name": "test-gpu", "calibrated": True, "calibrated_as": "test-gpu",
                                "measured_by": "flopcast", "basis": "measured", "notes": train["notes"]}


def test_yaml_is_model_card_metadata(files, model_dir, capsys):
    meta = yaml.safe_load(_run(capsys, _args(files, model_dir, "--format", "yaml", "--training-type", "fine-tuning")))
    co2 = meta["co2_eq_emissions"]
    assert co2["emissions"] == pytest.approx(meta["flopcast"]["training"]["co2_kg"]["median"] * 1000, rel=1e-3)
    assert co2["training_type"] == "fine-tuning" and co2["geographical_location"] == "FRA"
    assert co2["hardware_used"] == "1 x test-gpu" and "not a measurement" in co2["source"]


def test_out_writes_the_file(files, model_dir, capsys, tmp_path):
    _run(capsys, _args(files, model_dir, "-o", str(tmp_path / "card.md")))
    assert (tmp_path / "card.md").read_text().startswith("## Compute cost")


@pytest.mark.parametrize(("extra", "message"), [
    (["--hardware", "h100,a100"], "a card states one device"),
    (["-o", "/nonexistent-folder/card.md"], "cannot write the card to /nonexistent-folder/card.md"),
    (["--training", "bp,ep"], "one training regime"),
    (["--inference-batch-size", "0"], "--inference-batch-size must be >= 1"),
])
def test_bad_input_is_one_line(files, model_dir, capsys, extra, message):
    code = main(_args(files, model_dir, *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_missing_dataset_size_is_one_line(files, model_dir, capsys):
    code = main(["card", str(files / "net.py:build"), "--model", str(model_dir), "--hardware", "h100"])
    assert code == 2 and "--dataset-size" in capsys.readouterr().err


def test_an_ep_card_states_the_regime(files, model_dir, capsys):
    bp = json.loads(_run(capsys, _args(files, model_dir, "--json")))
    ep = json.loads(_run(capsys, _args(files, model_dir, "--json", "--training", "ep", "--ep-free-steps", "3",
                                       "--ep-nudged-steps", "2")))
    assert ep["training"]["regime"] == "ep" and ep["training"]["ep_free_steps"] == 3
    assert ep["training"]["flops_per_step"] > bp["training"]["flops_per_step"]
    assert ep["inference"] == bp["inference"]  # inference runs no training regime
    assert "Equilibrium Propagation (3 free + 2 nudged iterations)" in _run(
        capsys, _args(files, model_dir, "--training", "ep", "--ep-free-steps", "3", "--ep-nudged-steps", "2"))


def test_generation_section_is_the_predicted_request_per_1000_requests(files, model_dir, capsys):
    sets = [x for kv in ("n_layer=2", "n_embd=64", "n_head=4", "vocab_size=1000", "n_positions=128")
            for x in ("--set", kv)]
    common = ["hf:gpt2", *sets, "--model", str(model_dir), "--hardware", str(files / "gpu.json"), "--country", "FR",
              "--prompt-len", "8", "--new-tokens", "5", "--json"]
    card = json.loads(_run(capsys, ["card", *common, "--batch-size", "2", "--seq-len", "8", "--dataset-size", "100",
                                    "--inference-batch-size", "4"]))
    request = json.loads(_run(capsys, ["predict", *common, "--mode", "generate", "--batch-size", "4"]))[0]
    g = card["generation"]
    assert (g["prompt_len"], g["new_tokens"], g["batch_size"]) == (8, 5, 4)
    per = g["per_1000_requests"]
    assert per["calls"] == 250  # 1000 requests in batches of 4
    assert per["time_s"]["median"] == pytest.approx(250 * request["request_time_s"])
    assert per["energy_j"]["p90"] == pytest.approx(250 * request["request_energy_j_p90"])
    assert g["time_to_first_token_s"]["median"] == request["ttft_s"]
    assert g["energy_per_token_j"]["median"] == request["energy_per_token_j"]
