from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flopcast.datasets.import_neusight import (
    DATA,
    ImportConfig,
    NeuSightImportError,
    import_neusight,
    main,
    op_config,
)
from flopcast.datasets.loader import load_folder

MM = "OPName,Latency,Device,Torch Version,CUDA Version,B,M,N,K\n"
VEC = "OPName,Latency,Device,Torch Version,CUDA Version,B,H\n"
BERT = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
        "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2, "model_type": "bert"}


def upstream(root: Path, linear: str | None = None, label_config: bool = True) -> Path:
    """A NeuSight checkout in miniature: a linear and an add file of the T4, one BERT label, one switch label."""
    data = root / DATA
    lin = data / "dataset/train/collect/linear/p2.1.0/Tesla T4.csv"
    lin.parent.mkdir(parents=True)
    lin.write_text(linear if linear is not None else
                   MM + "linear,1.5,Tesla T4,p2.1.0,cu121,2,3,4,5\nlinear,3.0,Tesla T4,p2.1.0,cu121,4,64,128,256\n")
    add = data / "dataset/train/collect/addu/p2.1.0/Tesla T4.csv"
    add.parent.mkdir(parents=True)
    add.write_text(VEC + "addu,0.025,Tesla T4,p2.1.0,cu121,100,200\n")
    labels = root / "scripts/asplos/label/Tesla_T4"
    labels.mkdir(parents=True)
    (labels / "bert_large-inf-512-1.json").write_text(json.dumps({"e2e_latency": 50.0}))
    (labels / "bert_large-inf-512-1-fusion.json").write_text(json.dumps({"e2e_latency": 40.0}))
    (labels / "switchxl4-inf-512-1.json").write_text(json.dumps({"e2e_latency": 90.0}))
    if label_config:
        (data / "DLmodel_configs").mkdir(parents=True)
        (data / "DLmodel_configs/bert_large.json").write_text(json.dumps(BERT))
    return root


def test_an_op_becomes_the_config_of_the_family_that_runs_it():
    # nn.Linear(N=4, K=5) on [B=2, M=3, N=4]: one addmm of 6 x 4 by 4 x 5
    assert op_config("linear", {"B": 2, "M": 3, "N": 4, "K": 5}) == (
        "matmul", {"variant": "addmm", "b": 1, "m": 6, "k": 4, "n": 5, "dtype": "fp32"})
    assert op_config("bmm", {"B": 2, "M": 3, "N": 4, "K": 5})[1]["b"] == 2
    assert op_config("powu", {"B": 7, "H": 9}) == (
        "elementwise_binary", {"op": "pow", "broadcast": "scalar", "rows": 7, "cols": 9, "dtype": "fp32"})
    assert op_config("ln", {"B": 7, "H": 9})[0] == "norm"
    with pytest.raises(KeyError):
        op_config("dropout", {"B": 1, "H": 1})


def test_import_writes_one_marked_folder_per_gpu_with_our_features_and_their_latency(tmp_path):
    src = upstream(tmp_path / "neusight")
    metas = import_neusight(ImportConfig(src, tmp_path / "out", "abc123", "2025-05-21T21:00:47-07:00"))
    assert list(metas) == ["neusight-t4"]
    ds = load_folder(tmp_path / "out/neusight-t4")
    mb = ds.microbench.set_index("family")
    assert len(ds.microbench) == 3
    mm = ds.microbench[ds.microbench["op"] == "aten.addmm"].sort_values("time_s").iloc[0]
    assert mm["flops"] == 2 * 6 * 4 * 5 + 6 * 5  # GEMM plus the bias add
    assert mm["time_s"] == pytest.approx(1.5e-3)
    assert mb.loc["elementwise_binary", "op"] == "aten.add"
    assert set(ds.microbench["hardware"]) == {"t4"} and ds.microbench["trusted"].all()
    step = ds.steps.iloc[0]
    assert len(ds.steps) == 1  # the fused and the MoE labels are not imported
    assert (step["model"], step["mode"], step["batch_size"], step["optimizer"]) == (
        "neusight-bert-large-classifier", "infer", 1, "none")
    assert step["time_s"] == pytest.approx(0.05) and step["flops"] > 0
    meta = metas["neusight-t4"]
    assert meta["external"] and meta["source_commit"] == "abc123" and meta["license"].startswith("MIT")
    assert "ASPLOS" in meta["citation"] and any("switchxl4" in s for s in meta["not_imported"])
    assert json.loads((tmp_path / "out/neusight-t4/descriptor.json").read_text())["extra"]["measured_by"].startswith(
        "NeuSight")


@pytest.mark.parametrize(("linear", "label_config", "message"), [
    ("OPName,Device,B,M,N,K\nlinear,Tesla T4,1,2,3,4\n", True, "Tesla T4.csv: missing column(s) Latency"),
    (MM + "linear,1.0,Tesla K80,p2.1.0,cu121,1,2,3,4\n", True, "unknown GPU 'Tesla K80'"),
    (None, False, "bert_large-inf-512-1.json: no model config"),
])
def test_bad_upstream_files_name_the_file_and_leave_nothing_behind(tmp_path, linear, label_config, message):
    src = upstream(tmp_path / "neusight", linear, label_config)
    with pytest.raises(NeuSightImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_neusight(ImportConfig(src, tmp_path / "out", "abc"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a NeuSight checkout" in err


def test_an_existing_destination_is_refused(tmp_path):
    src = upstream(tmp_path / "neusight")
    (tmp_path / "out/neusight-t4").mkdir(parents=True)
    with pytest.raises(NeuSightImportError, match="exists already"):
        import_neusight(ImportConfig(src, tmp_path / "out", "abc"))


def test_imported_rows_keep_only_the_schema_columns(tmp_path):
    src = upstream(tmp_path / "neusight")
    import_neusight(ImportConfig(src, tmp_path / "out", "abc"))
    from flopcast.datasets.schema import MICROBENCH_COLUMNS

    assert list(pd.read_parquet(tmp_path / "out/neusight-t4/microbench.parquet").columns) == list(MICROBENCH_COLUMNS)
