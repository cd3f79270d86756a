from __future__ import annotations

import json

import pytest

from flopcast.predictor.main import main
from tests.datasets.synthetic import DEVICES


def _predict(target, model_dir, *extra):
    return main(["predict", target, "--model", str(model_dir), *extra])


def test_json_of_a_parallel_step(mlp_target, model_dir, gpu_file, capsys):
    code = _predict(mlp_target, model_dir, "--batch-size", "32", "--hardware", str(gpu_file), "--gpus", "4",
                    "--parallel", "dp2,tp2", "--dataset-size", "640", "--json")
    [r] = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (r["gpus"], r["dp"], r["tp"], r["pp"], r["micro_batch_size"], r["steps"]) == (4, 2, 2, 1, 16, 20)
    assert {c["op"] for role in r["roles"] for c in role["collectives"]} == {"all_reduce"}
    assert r["step_time_s_p10"] <= r["step_time_s"] <= r["step_time_s_p90"]
    assert set(r) >= {"speedup", "scaling_efficiency", "comm_exposed_s", "peak_memory_bytes", "fits", "run_co2_kg"}


def test_table_of_a_pipeline(mlp_target, model_dir, gpu_file, capsys):
    code = _predict(mlp_target, model_dir, "--batch-size", "32", "--hardware", str(gpu_file), "--gpus", "2",
                    "--parallel", "pp", "--micro-batches", "4", "--interconnect", "pcie")
    out = capsys.readouterr().out
    assert code == 0 and "pipeline bubble" in out and "20%" in out and "send-recv" in out and "pcie5" in out


@pytest.mark.parametrize(("extra", "message"), [
    (("--gpus", "2", "--hardware", "cpu"), "--gpus predicts GPUs"),
    (("--gpus", "4", "--parallel", "dp2,tp2,pp2"), "= 8 GPUs, --gpus says 4"),
    (("--gpus", "3", "--parallel", "tp"), "tensor-parallel degree 3 does not divide"),
    (("--gpus", "2", "--parallel", "pp4"), "--gpus 2 is not divisible"),
    (("--gpus", "2", "--interconnect", "nvlnk"), "unknown intra-node interconnect 'nvlnk'"),
    (("--gpus", "64", "--parallel", "dp"), "cannot be split evenly over 64"),
    (("--nodes", "2",), "add --gpus N"),
    (("--gpus", "2", "--max-batch"), "--max-batch is not predicted with --gpus"),
])
def test_bad_input_is_one_line_and_exit_2(mlp_target, model_dir, gpu_file, capsys, extra, message):
    hardware = () if "--hardware" in extra else ("--hardware", str(gpu_file))
    code = _predict(mlp_target, model_dir, "--batch-size", "32", *hardware, *extra)
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_pipeline_stages_more_than_layers(mlp_target, model_dir, gpu_file, capsys):
    code = _predict(mlp_target, model_dir, "--batch-size", "32", "--hardware", str(gpu_file), "--gpus", "4",
                    "--parallel", "pp")
    assert code == 2 and "4 pipeline stages but the layer stack of the model has only 3" in capsys.readouterr().err


def test_test_gpu_descriptor_has_no_links_of_its_own(mlp_target, model_dir, tmp_path, capsys):
    bare = tmp_path / "gpu.json"
    bare.write_text(json.dumps(DEVICES["test-gpu"]))
    code = _predict(mlp_target, model_dir, "--batch-size", "32", "--hardware", str(bare), "--gpus", "2")
    assert code == 2 and "names no PCIe generation" in capsys.readouterr().err
