"""Synthetic roofline-shaped measurement folders for tests: a fake CPU and a fake GPU, ops and steps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from flopcast.datasets.schema import MICROBENCH_COLUMNS, STEP_COLUMNS, STEP_OPTION_DEFAULTS

DEVICES = {
    "test-cpu": {"name": "test-cpu", "kind": "cpu", "peak_flops_per_s": {"fp32": 2e11, "bf16": 4e11},
                 "memory_bandwidth_bytes_per_s": 4e10, "memory_bytes": 64 * 2**30, "compute_units": 8,
                 "clock_hz": 3e9, "tdp_w": 120.0, "calibrated": True, "idle_power_w": 30.0,
                 "launch_overhead_s": 3e-6, "measured_peak_flops_per_s": {"fp32": 1.5e11},
                 "measured_bandwidth_bytes_per_s": 3e10},
    "test-gpu": {"name": "test-gpu", "kind": "gpu", "peak_flops_per_s": {"fp32": 6e13, "tf32": 5e14, "bf16": 1e15},
                 "memory_bandwidth_bytes_per_s": 3e12, "memory_bytes": 80 * 2**30, "compute_units": 132,
                 "clock_hz": 1.9e9, "tdp_w": 700.0, "calibrated": True, "idle_power_w": 70.0,
                 "launch_overhead_s": 6e-6, "measured_peak_flops_per_s": {"fp32": 5e13, "bf16": 7e14},
                 "measured_bandwidth_bytes_per_s": 2.6e12},
}
EFFICIENCY = {"matmul": 0.6, "elementwise": 0.7}
HOST_COST_S = {"cpu": 2e-6, "gpu": 1e-5}


def op_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Static columns of ``n`` ops: half square-ish matmuls, half elementwise adds (fp32)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        if i % 2 == 0:
            m, k, nn = (int(x) for x in np.exp(rng.uniform(np.log(8), np.log(2048), 3)))
            rows.append({"op": "aten.mm", "category": "matmul", "input_shapes": json.dumps([[m, k], [k, nn]]),
                         "output_shapes": json.dumps([[m, nn]]), "flops": 2 * m * k * nn,
                         "bytes_read": 4 * (m * k + k * nn), "bytes_written": 4 * m * nn})
        else:
            size = int(np.exp(rng.uniform(np.log(64), np.log(2**24))))
            rows.append({"op": "aten.add", "category": "elementwise", "input_shapes": json.dumps([[size], [size]]),
                         "output_shapes": json.dumps([[size]]), "flops": size, "bytes_read": 8 * size,
                         "bytes_written": 4 * size})
    df = pd.DataFrame(rows)
    df["phase"], df["dtype"], df["module"] = "forward", "float32", ""
    df["outcome"], df["framework"] = "formula", "torch"
    df["input_dtypes"], df["attrs"], df["macs"] = '["float32", "float32"]', "{}", df["flops"] // 2
    return df


def true_time_s(ops: pd.DataFrame, device: dict) -> np.ndarray:
    """The synthetic ground truth: launch + roofline time at a per-category efficiency."""
    peak, bw = device["peak_flops_per_s"]["fp32"], device["memory_bandwidth_bytes_per_s"]
    eff = ops["category"].map(EFFICIENCY).to_numpy()
    roof = np.maximum(ops["flops"] / peak, (ops["bytes_read"] + ops["bytes_written"]) / bw).to_numpy()
    return device["launch_overhead_s"] + roof / eff


def microbench(device: dict, n: int = 160, seed: int = 0, noise: float = 0.05) -> pd.DataFrame:
    """MICROBENCH_COLUMNS rows of ``device`` with lognormal timing noise and measured power on every 4th row."""
    rng = np.random.default_rng(seed + 1)
    df = op_rows(n, seed)
    df["time_s"] = true_time_s(df, device) * np.exp(rng.normal(0, noise, n))
    df["time_s_min"], df["time_s_max"] = df["time_s"] * 0.95, df["time_s"] * 1.05
    df["n_repeats"], df["n_windows"], df["window_s"] = 100, 3, 0.05
    power = np.where(df["category"] == "matmul", 0.8, 0.5) * device["tdp_w"]
    with_power = np.arange(n) % 4 == 0
    df["avg_power_w"] = np.where(with_power, power, np.nan)
    df["energy_j"] = np.where(with_power, power * df["time_s"], np.nan)
    df["energy_source"] = np.where(with_power, "nvml" if device["kind"] == "gpu" else "rapl", "none")
    df["energy_window_s"] = np.where(with_power, 1.0, 0.0)
    df["trusted"], df["reason"] = True, ""
    df["family"] = df["category"].map({"matmul": "matmul", "elementwise": "elementwise_binary"})
    df["config"], df["source_model"] = "{}", ""
    df["key"] = [f"{device['name']}-op-{i}" for i in range(n)]
    _provenance(df, device)
    return df[list(MICROBENCH_COLUMNS)]


def _provenance(df: pd.DataFrame, device: dict) -> None:
    df["hardware"], df["device_kind"] = device["name"], device["kind"]
    df["torch_version"], df["cuda_version"], df["driver_version"] = "2.13.0", "", ""
    df["flopcast_version"], df["measured_at"], df["campaign"] = "0.1.0", "2026-01-01T00:00:00+00:00", "synthetic"


FAMILIES = {"fa": ("a1", "a2"), "fb": ("b1", "b2"), "fc": ("c1", "c2"), "fd": ("d1", "d2")}


def step_ops(model: str, batch_size: int) -> pd.DataFrame:
    """The synthetic op table of a model step: a model-specific set of ops scaled by the batch size."""
    seed = sum(ord(c) for c in model)
    ops = op_rows(12 + seed % 7, seed)
    for col in ("flops", "bytes_read", "bytes_written"):
        ops[col] = ops[col] * batch_size
    return ops


def steps(device: dict, seed: int = 0) -> pd.DataFrame:
    """STEP_COLUMNS rows: each synthetic model at three batch sizes in train and infer modes."""
    rng = np.random.default_rng(seed + 2)
    rows = []
    for family, models in FAMILIES.items():
        for model in models:
            for bs in (1, 4, 16):
                for mode in ("train", "infer"):
                    ops = step_ops(model, bs)
                    t = true_time_s(ops, device).sum() + len(ops) * HOST_COST_S[device["kind"]]
                    t *= math.exp(rng.normal(0, 0.03))
                    est = int(ops["bytes_written"].sum())
                    rows.append({"model": model, "family": family, "batch_size": bs, "mode": mode,
                                 "precision": "fp32", "optimizer": "adamw" if mode == "train" else "none",
                                 "measured_peak_memory_bytes": int(1.1 * est + 2**20), "est_peak_memory_bytes": est,
                                 "flops": int(ops["flops"].sum()), "op_count": len(ops), "params": 1000,
                                 "bytes_accessed": int((ops["bytes_read"] + ops["bytes_written"]).sum()),
                                 "time_s": t, "energy_j": t * 0.5 * device["tdp_w"],
                                 "avg_power_w": 0.5 * device["tdp_w"]})
    df = pd.DataFrame(rows)
    df["time_s_min"], df["time_s_max"], df["n_repeats"], df["n_windows"] = df["time_s"], df["time_s"], 10, 3
    df["window_s"], df["energy_window_s"], df["trusted"], df["reason"] = 0.05, 1.0, True, ""
    df["energy_source"] = "nvml" if device["kind"] == "gpu" else "rapl"
    df["key"] = [f"{device['name']}-step-{i}" for i in range(len(df))]
    for column, plain in STEP_OPTION_DEFAULTS.items():
        df[column] = plain
    _provenance(df, device)
    return df[list(STEP_COLUMNS)]


def write_folder(root: Path, name: str, n_ops: int = 160) -> Path:
    """Write a release-style hardware folder (descriptor, parquet tables, meta) and return it."""
    device = DEVICES[name]
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "descriptor.json").write_text(json.dumps(device))
    microbench(device, n_ops).to_parquet(folder / "microbench.parquet", index=False)
    steps(device).to_parquet(folder / "steps.parquet", index=False)
    (folder / "meta.json").write_text(json.dumps({"campaign": "synthetic", "schema_version": "1"}))
    return folder
