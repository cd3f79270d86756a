"""`flopcast analyze` end to end: outputs, and one clear error line with exit code 2 for each bad input."""

import json
from pathlib import Path

import pandas as pd
import pytest

from flopcast.datasets.schema import OP_COLUMNS
from flopcast.predictor.main import main

MODELS = Path(__file__).parent / "models" / "torch_models.py"
STEPS = Path(__file__).parent / "models" / "steps.py"


def run(capsys, *argv):
    code = main(["analyze", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_has_documented_keys(capsys):
    code, out, _ = run(capsys, f"{MODELS}:mlp", "--batch-size", "8", "--json", "--device", "cpu")
    assert code == 0
    d = json.loads(out)
    for key in ("flops", "macs", "bytes_accessed", "params", "peak_memory_bytes", "op_count", "op_mix",
                "unsupported_ops", "phases", "schema_version"):
        assert key in d
    # forward of Linear(16,32) and Linear(32,4) at batch 8: 2*8*16*32 + 2*8*32*4 MACs-as-FLOPs (+bias adds)
    assert d["phases"]["forward"]["flops"] >= 2 * 8 * 16 * 32 + 2 * 8 * 32 * 4
    assert d["params"] == 16 * 32 + 32 + 32 * 4 + 4
    assert set(d["phases"]) >= {"forward", "backward", "optimizer"}


def test_table_output_and_ops_files(capsys, tmp_path):
    pq, csv = tmp_path / "ops.parquet", tmp_path / "ops.csv"
    code, out, _ = run(capsys, f"{MODELS}:cnn", "--input", "float32[B,3,8,8]", "--batch-size", "4",
                       "--ops-parquet", str(pq), "--ops-csv", str(csv), "--dataset-size", "1000", "--epochs", "2")
    assert code == 0
    assert "op mix" in out and "peak memory" in out and "500 steps" in out  # ceil(1000/4) * 2
    df = pd.read_parquet(pq)
    assert list(df.columns) == list(OP_COLUMNS)
    assert (df["category"] == "conv").any() and set(df["phase"]) == {"forward", "backward", "optimizer"}
    assert len(pd.read_csv(csv)) == len(df)


def test_file_inputs_default_used(capsys):
    code, out, _ = run(capsys, f"{MODELS}:mlp", "--json")
    assert code == 0 and json.loads(out)["inputs"] == ["float32[B,16]"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["nofile.py:build"], "no such file: nofile.py"),
        ([f"{MODELS}:mpl"], "has no attribute 'mpl' (did you mean mlp"),
        ([f"{MODELS}:not_a_module"], "returned int, not a torch.nn.Module"),
        ([f"{MODELS}:NOT_CALLABLE"], "is a int, not a callable or a model"),
        ([f"{MODELS}:build_raises"], "raised ValueError: bad hyper-parameter in the builder"),
        ([f"{MODELS}:mlp", "--input", "float32[B,16"], "bad input spec 'float32[B,16'"),
        ([f"{MODELS}:mlp", "--input", "float32[B,S]"], "symbol 'S' in float32[B,S] is unbound: pass --dim S=<int>"),
        ([f"{MODELS}:mlp", "--input", "floot32[B,16]"], "unknown dtype 'floot32'"),
        ([f"{MODELS}:mlp", "--dim", "S"], "bad --dim 'S'"),
        (["hf:lamma"], "unknown hf model type 'lamma' (did you mean llama"),
        (["hf:gpt2", "--set", "n_layer"], "bad --set 'n_layer'"),
        (["hf:llama", "--set", "num_hidden_layers=x"], "Field 'num_hidden_layers' expected int, got str"),
        ([f"{MODELS}:raises"], "module 'block.1' raised RuntimeError in forward: kaboom from the user's code"),
        ([f"{MODELS}:uses_item"], "module 'inner' in forward reads a tensor value"),
        ([f"{MODELS}:branches"], "module 'inner' in forward reads a tensor value"),
        ([f"{MODELS}:uses_nonzero"], "module 'inner' calls aten.index, whose output shape depends on tensor values"),
        ([f"{MODELS}:mlp", "--batch-size", "100000000000000"], "PB"),
        ([f"{MODELS}:mlp", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["hf:gpt2", "--config", "missing.json"], "no such config file: missing.json"),
        ([f"{MODELS}:mlp", "--epochs", "2"], "--epochs 2 needs --dataset-size N"),
        ([f"{MODELS}:mlp", "--dataset-size", "0"], "--dataset-size must be >= 1, not 0"),
        ([f"{MODELS}:mlp", "--grad-accumulation", "0"], "--grad-accumulation must be >= 1 micro-batch, not 0"),
        ([f"{MODELS}:mlp", "--grad-clip", "-1"], "--grad-clip must be a norm > 0, not -1.0"),
        ([f"{MODELS}:mlp", "--grad-clip", "1", "--mode", "infer"], "--grad-clip: options of a train step"),
        ([f"{MODELS}:mlp", "--step", "missing.py:step"], "--step: no such file: missing.py"),
        ([f"{MODELS}:mlp", "--step", "steps"], "--step 'steps': expected FILE.py:fn"),
        ([f"{MODELS}:mlp", "--step", f"{STEPS}:raising_step"], "raising_step raised KeyError in forward"),
        ([f"{MODELS}:mlp", "--step", f"{STEPS}:mean_step", "--loss", "mse"], "--loss and --step"),
    ],
)
def test_bad_input_one_line_exit_2(capsys, argv, fragment):
    code, _, err = run(capsys, *argv, "--device", "cpu")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("flopcast: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_device_defaults_to_this_machines_kind_and_says_so(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, _ = run(capsys, f"{MODELS}:mlp")
    assert code == 0 and "for cpu (this machine's kind; --device cuda|cpu for another)" in " ".join(out.split())
    code, out, _ = run(capsys, f"{MODELS}:mlp", "--json")
    assert json.loads(out)["device"] == "cpu"
    code, out, _ = run(capsys, f"{MODELS}:mlp", "--device", "cuda")
    assert "for cuda," in out and "this machine" not in out


def test_debug_shows_traceback(capsys):
    with pytest.raises(ValueError):
        main(["--debug", "analyze", "nofile.py:x"])


@pytest.mark.parametrize(
    ("target", "extra"),
    [(f"{MODELS}:lstm_lm", ["--input", "int64[B,12]<100"]),
     ("hf:gpt2", ["--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=2", "--seq-len", "16"])],
)
def test_optimizer_none_with_cross_entropy(capsys, target, extra):
    code, out, _ = run(capsys, target, "--optimizer", "none", "--loss", "cross-entropy", "--batch-size", "2",
                       "--json", "--device", "cpu", *extra)
    d = json.loads(out)
    assert code == 0 and d["optimizer"] == "none" and d["phases"]["optimizer"]["ops"] == 0
    assert d["step"]["loss"] == "cross-entropy" and d["unsupported_ops"] == {}
    code, out, _ = run(capsys, target, "--optimizer", "none", "--loss", "cross-entropy", "--batch-size", "2",
                       "--device", "cpu", *extra)
    assert code == 0 and "optimizer none, loss cross-entropy" in out


def test_step_options_in_the_table_and_json(capsys):
    code, out, _ = run(capsys, f"{MODELS}:cnn", "--input", "float32[B,3,8,8]", "--batch-size", "4", "--device",
                       "cpu", "--grad-accumulation", "3", "--grad-clip", "1", "--fused-optimizer",
                       "--dataset-size", "1200")
    assert code == 0
    assert "loss cross-entropy (auto: output [4, 10] looks like [batch, classes])" in " ".join(out.split())
    assert "3 micro-batches of 4 per optimizer step" in " ".join(out.split()) and "100 steps" in out  # 1200 / 12
    code, out, _ = run(capsys, f"{MODELS}:mlp", "--mode", "infer", "--json", "--device", "cpu")
    assert json.loads(out)["step"]["loss"] is None
