from __future__ import annotations

import functools
import math

import pytest
import torch

from flopcast.calibration import zoo_steps
from flopcast.calibration.windows import measure
from flopcast.calibration.zoo_steps import StepConfig, cpu_peak_memory_bytes, measure_step, step_configs
from flopcast.datasets.schema import MEASURED_COLUMNS, PROVENANCE_COLUMNS, STEP_COLUMNS

MEASURE = functools.partial(measure, device="cpu", min_window_s=0.01, energy_window_s=0)


def test_cpu_peak_memory_counts_the_largest_live_set():
    def work():
        a = torch.empty(1 << 20, dtype=torch.float32)  # 4 MiB
        b = torch.empty(1 << 19, dtype=torch.float32)  # + 2 MiB live together
        del a, b
        c = torch.empty(1 << 18, dtype=torch.float32)  # 1 MiB after both were freed
        del c

    peak = cpu_peak_memory_bytes(work)
    assert 6 * 2**20 <= peak < 6.5 * 2**20  # 4 MiB + 2 MiB


def test_garbage_of_an_earlier_window_freed_in_this_one_does_not_cut_its_peak():
    import gc

    held = {}

    def earlier():  # a campaign's previous step: 16 MiB allocated under the profiler, left in a reference cycle
        cycle = [torch.empty(1 << 22, dtype=torch.float32)]
        cycle.append(cycle)
        held["cycle"] = cycle

    cpu_peak_memory_bytes(earlier)
    held.clear()  # garbage now: the profiler would report its free, -16 MiB, in whichever window collects it

    def work():
        gc.collect()  # what the cycle collector may do at any allocation
        a = torch.empty(1 << 18, dtype=torch.float32)  # 1 MiB
        del a

    assert 2**20 <= cpu_peak_memory_bytes(work) < 1.1 * 2**20  # was 0


def test_step_configs_cover_batch_precision_mode():
    configs = step_configs(["mlp-small"], "cpu", batch_sizes=(1, 4), precisions=("fp32", "bf16"))
    assert len(configs) == 8
    assert {c.optimizer for c in configs if c.mode == "infer"} == {"none"}
    assert {c.optimizer for c in configs if c.mode == "train"} == {"adamw"}
    gpu = step_configs(["mlp-small"], "gpu", modes=("train",))
    assert {c.precision for c in gpu} == {"fp32", "tf32", "bf16", "fp16"}


def test_decode_steps_are_measured_as_fp32_inference_only():
    configs = step_configs(["llama-decode-c512"], "cpu", batch_sizes=(1, 8), precisions=("fp32", "bf16"))
    assert [(c.batch_size, c.mode, c.precision) for c in configs] == [(1, "infer", "fp32"), (8, "infer", "fp32")]


def test_unknown_zoo_model_lists_close_matches():
    with pytest.raises(KeyError, match="mlp-small"):
        step_configs(["mlp-smal"], "cpu")


def test_measured_step_row_has_the_step_columns():
    row = measure_step(StepConfig("mlp-small", 2, "train", "fp32", "adamw"), "cpu", MEASURE)
    assert set(row) | set(PROVENANCE_COLUMNS) == set(STEP_COLUMNS)
    assert row["time_s"] > 0 and row["trusted"]
    assert row["params"] > 0 and row["op_count"] > 0 and row["bytes_accessed"] > 0
    # the static estimate and the profiler's peak describe the same steady-state step
    assert 0.5 < row["est_peak_memory_bytes"] / row["measured_peak_memory_bytes"] < 2.0


def test_oom_becomes_a_row_with_its_reason(monkeypatch):
    def oom(config, device):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr(zoo_steps, "build_step", oom)
    row = measure_step(StepConfig("mlp-small", 2, "infer", "fp32", "none"), "cpu", MEASURE)
    assert not row["trusted"] and row["reason"].startswith("out of memory")
    assert math.isnan(row["time_s"]) and set(MEASURED_COLUMNS) <= set(row)
    assert row["flops"] is not None  # the analysis of the config is still there


def test_plain_step_keeps_its_key_and_options_change_it():
    plain = StepConfig("mlp-small", 2, "train", "fp32", "adamw")
    assert plain.as_dict() == {"model": "mlp-small", "batch_size": 2, "mode": "train", "precision": "fp32",
                               "optimizer": "adamw"}  # the dict (and row key) of campaigns before the options
    clipped = StepConfig("mlp-small", 2, "train", "fp32", "adamw", loss="cross-entropy", grad_clip=1.0)
    assert clipped.as_dict()["loss"] == "cross-entropy" and StepConfig(**clipped.as_dict()) == clipped


def test_step_configs_carry_the_options_to_train_steps_only():
    from flopcast.features.step_options import StepOptions

    options = StepOptions(loss="cross-entropy", grad_accumulation=2, grad_scaler=None)
    configs = step_configs(["mlp-small"], "gpu", batch_sizes=(4,), options=options)
    train = {c.precision: c for c in configs if c.mode == "train"}
    assert {c.loss for c in train.values()} == {"cross-entropy"} and train["fp32"].grad_accumulation == 2
    assert train["fp16"].grad_scaler and not train["bf16"].grad_scaler  # the scaler is for fp16
    assert {(c.loss, c.grad_accumulation) for c in configs if c.mode == "infer"} == {("mean", 1)}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({}, StepConfig("m", 2, "train", "fp32", "adamw")),  # a row measured before the options
        ({"loss": "mse", "grad_clip": float("nan"), "grad_accumulation": 3, "fused_optimizer": True,
          "grad_scaler": None}, StepConfig("m", 2, "train", "fp32", "adamw", "mse", None, 3, True, False)),
    ],
)
def test_config_of_a_row(row, expected):
    base = {"model": "m", "batch_size": 2, "mode": "train", "precision": "fp32", "optimizer": "adamw"}
    assert StepConfig.from_row({**base, **row}) == expected


def test_measured_row_records_the_step_it_timed():
    config = StepConfig("mlp-small", 2, "train", "fp32", "adamw", loss="cross-entropy", grad_clip=1.0,
                        grad_accumulation=2, fused_optimizer=True)
    row = measure_step(config, "cpu", MEASURE)
    plain = measure_step(StepConfig("mlp-small", 2, "train", "fp32", "adamw"), "cpu", MEASURE)
    assert (row["loss"], row["grad_clip"], row["grad_accumulation"], row["fused_optimizer"]) == \
        ("cross-entropy", 1.0, 2, True)
    assert row["trusted"] and (plain["loss"], plain["grad_accumulation"]) == ("mean", 1)
    # the row's static columns are the analysis of the same step (two micro-batches, so more FLOPs)
    assert row["flops"] == zoo_steps.static_columns(config, "cpu")[0]["flops"] > plain["flops"]


PROFILED = """
import torch
from flopcast.calibration.zoo_steps import cpu_peak_memory_bytes
print(cpu_peak_memory_bytes(lambda: torch.ones(1 << 20) + 1))
print(cpu_peak_memory_bytes(lambda: torch.ones(1 << 20) + 1))
"""


def test_the_profiler_prints_no_usdt_or_stage_lines():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "KINETO_LOG_LEVEL"}  # as a user's shell has it
    out = subprocess.run([sys.executable, "-c", PROFILED], capture_output=True, text=True, env=env, check=True)
    assert out.stderr == "", out.stderr  # kineto wrote `USDT: ... profiler_start` here at every profile
    assert [int(x) >= 4 << 20 for x in out.stdout.split()] == [True, True]
