"""Import NeuSight's public GPU measurements as flopcast release folders (one per GPU, marked external).

NeuSight (Lee, Phanishayee, Mahajan, ASPLOS'25; MIT license) published fp32 op latencies on eleven GPUs and
end-to-end latencies of transformer models. This script converts an upstream checkout into
``datasets/neusight-<gpu>/`` folders in flopcast's vocabulary and schema: each op row becomes the config of
one of our microbenchmark families (a ``linear`` of ``[B, M, N] -> K`` is ``addmm`` of ``B*M x N`` by
``N x K``), and its op name, shapes, FLOPs and bytes come from tracing that family's closure with our own
formulas, exactly as a campaign row's do (so ``refresh`` keeps them current); only the latency is theirs.
Labels become step rows of the models in :mod:`flopcast.calibration.zoo.published`, whose hyperparameters
are checked against the upstream config files.

How NeuSight measured (``neusight/Dataset/collect.py``, ``neusight/Tracing/trace.py``): PyTorch 2.1 (CUDA
12.1; ROCm builds for AMD), fp32 with cuDNN TF32 off and ``cudnn.benchmark`` on, ops forward under
``no_grad``; each latency the mean of the 5 fastest of 25 CUDA-event timings of one call, ms. End-to-end
labels: eager attention, train = forward + ``loss.backward()`` of a cross-entropy loss (no optimizer),
inference = forward under ``no_grad``.

Run: ``python -m flopcast.datasets.import_neusight PATH [--out datasets] [--commit SHA --commit-date DATE]
[--gpus t4,l4]``, where ``PATH`` is a NeuSight checkout (``fetch`` of ``trsharm25/NeuSight``, the full copy with
data files; files absent from a checkout are simply not imported).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from flopcast.datasets.loader import DatasetError
from flopcast.datasets.schema import MICROBENCH_COLUMNS, SCHEMA_VERSION, STEP_COLUMNS

SOURCE = "https://github.com/sitar-lab/NeuSight"
COPY = "https://github.com/trsharm25/NeuSight"
LICENSE = "MIT (Copyright (c) 2025 Georgia Institute of Technology and Microsoft Corporation)"
CITATION = ("Seonho Lee, Amar Phanishayee, Divya Mahajan. Forecasting GPU Performance for Deep Learning Training "
            "and Inference. ASPLOS 2025.")
DATA = Path("scripts/asplos/data")

GPUS: dict[str, tuple[str, str]] = {
    "Tesla P4": ("p4", "Tesla_P4"),
    "Tesla P100-PCIE-16GB": ("p100-pcie-16gb", "Tesla_P100-PCIE-16GB"),
    "Tesla T4": ("t4", "Tesla_T4"),
    "Tesla V100-PCIE-32GB": ("v100-pcie-32gb", "Tesla_V100-PCIE-32GB"),
    "NVIDIA A100-PCIE-40GB": ("a100-pcie-40gb", "NVIDIA_A100-PCIE-40GB"),
    "NVIDIA A100 80GB PCIe": ("a100-pcie-80gb", "NVIDIA_A100_80GB_PCIe"),
    "NVIDIA L4": ("l4", "NVIDIA_L4"),
    "NVIDIA H100 80GB HBM3": ("h100-sxm", "NVIDIA_H100_80GB_HBM3"),
    "AMD Instinct MI100": ("mi100", "AMD_Instinct_MI100"),
    "AMD Instinct MI210": ("mi210", "AMD_Instinct_MI210"),
    "AMD Instinct MI250": ("mi250", "AMD_Instinct_MI250"),
}
"""Upstream device name -> (catalog id, label folder)."""

DIMS = {"mm": ("B", "M", "N", "K"), "vec": ("B", "H"),
        "conv": ("B", "Input_Channel", "Output_Channel", "Kernel_Szie", "Input_Size", "Stride", "Padding")}
REQUIRED = ("OPName", "Latency", "Device")
BINARY = ("add", "mul", "pow", "div")
SCALAR = {"addu": "add", "mulu": "mul", "powu": "pow", "divu": "div"}
UNARY = ("relu", "gelu", "tanh")

LABELS: dict[str, dict[str, str]] = {
    "bert_large": {"train": "neusight-bert-large-pretraining", "inf": "neusight-bert-large-classifier"},
    "gpt2_large": {"train": "neusight-gpt2-large", "inf": "neusight-gpt2-large"},
    "gpt3_xl": {"train": "neusight-gpt3-xl", "inf": "neusight-gpt3-xl"},
    "gpt3_27": {"train": "neusight-gpt3-2.7b", "inf": "neusight-gpt3-2.7b"},
    "opt_13": {"train": "neusight-opt-1.3b", "inf": "neusight-opt-1.3b"},
}
"""Upstream model name -> zoo model per mode (BERT was measured as two different heads)."""
LABEL_NAME = re.compile(r"^(?P<model>[a-z0-9_]+)-(?P<mode>train|inf)-(?P<seq>\d+)-(?P<batch>\d+)(?P<rest>.*)\.json$")


class NeuSightImportError(DatasetError):
    """An upstream file cannot be imported (missing column, unknown GPU, missing model config)."""


@dataclass(frozen=True)
class ImportConfig:
    """What the importer is asked to do.

    Attributes:
        source: the NeuSight checkout.
        out: folder that receives ``neusight-<gpu>/`` folders.
        commit: upstream commit id (``None``: read with git from ``source``).
        commit_date: that commit's date, ISO 8601 (with ``commit``).
        gpus: catalog ids to import (empty: all).
    """

    source: Path
    out: Path
    commit: str | None = None
    commit_date: str = "unknown"
    gpus: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- op rows


def op_config(op: str, dims: dict[str, int]) -> tuple[str, dict[str, Any]]:
    """The flopcast microbenchmark (family, config) that runs NeuSight's op ``op`` on ``dims``.

    Raises:
        KeyError: for an op name NeuSight's collector does not have.
    """
    if op == "linear":  # nn.Linear(N, K) on [B, M, N]: one addmm of (B*M) x N by N x K plus the bias
        return "matmul", {"variant": "addmm", "b": 1, "m": dims["B"] * dims["M"], "k": dims["N"], "n": dims["K"],
                          "dtype": "fp32"}
    if op == "bmm":  # [B, M, N] @ [B, N, K]
        return "matmul", {"variant": "bmm", "b": dims["B"], "m": dims["M"], "k": dims["N"], "n": dims["K"],
                          "dtype": "fp32"}
    matrix = {"rows": dims.get("B", 1), "cols": dims.get("H", 1), "dtype": "fp32"}
    if op in BINARY:
        return "elementwise_binary", {"op": op, "broadcast": "none", **matrix}
    if op in SCALAR:  # torch.add(x, python float): one tensor operand and a scalar
        return "elementwise_binary", {"op": SCALAR[op], "broadcast": "scalar", **matrix}
    if op in UNARY:
        return "elementwise_unary", {"op": op, **matrix}
    if op == "ln":
        return "norm", {"kind": "layer", "pass": "fwd", "n": matrix["rows"], "c": matrix["cols"], "spatial": 1,
                        "dtype": "fp32"}
    if op == "softmax":  # nn.Softmax() on 2-d input: over the last dim
        return "softmax", {"op": "softmax", "pass": "fwd", **matrix}
    if op == "conv":  # nn.Conv2d(C_in, C_out, k, stride, padding, bias=False), square input
        return "conv2d_fwd", {"n": dims["B"], "c_in": dims["Input_Channel"], "c_out": dims["Output_Channel"],
                              "size": dims["Input_Size"], "k": dims["Kernel_Szie"], "stride": dims["Stride"],
                              "padding": dims["Padding"], "depthwise": False, "dtype": "fp32"}
    raise KeyError(op)


def _dims_of(op: str) -> tuple[str, ...]:
    return DIMS["mm"] if op in ("linear", "bmm") else DIMS["conv"] if op == "conv" else DIMS["vec"]


def op_files(root: Path) -> Iterator[Path]:
    """Every upstream op latency CSV: per-op train folders and the merged test files (NVIDIA and AMD).

    ``vec.csv`` and ``habitat.csv`` repeat ``elem``, ``ln`` and ``softmax`` rows; the merged train files
    repeat the per-GPU ones: both are skipped.
    """
    for tree in ("dataset", "dataset_amd"):
        base = root / DATA / tree
        yield from sorted((base / "train" / "collect").glob("*/p*/*.csv"))
        yield from sorted((base / "test" / "collect").glob("*/p*/*.csv"))
        yield from sorted(p for p in (base / "test").glob("*.csv") if p.stem not in ("vec", "habitat"))


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of an upstream CSV, checked for the columns the import needs.

    Raises:
        NeuSightImportError: a missing file or column, named with the file.
    """
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = set(reader.fieldnames or ())
    except OSError as e:
        raise NeuSightImportError(f"{path}: cannot read ({e.strerror})") from None
    ops = {r.get("OPName", "") for r in rows}
    need = set(REQUIRED) | {c for op in ops if op for c in _dims_of(op)}
    missing = sorted(need - columns)
    if missing:
        raise NeuSightImportError(f"{path}: missing column(s) {', '.join(missing)}")
    return rows


def measured_op_rows(root: Path, gpus: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Upstream op measurements per catalog id: one dict per distinct (op, dims), first file wins.

    Raises:
        NeuSightImportError: a file with a missing column, an unknown GPU or op name.
    """
    out: dict[str, dict[tuple, dict[str, Any]]] = {}
    for path in op_files(root):
        for r in read_csv(path):
            device = r["Device"].strip()
            if device not in GPUS:
                raise NeuSightImportError(f"{path}: unknown GPU {device!r} (known: {', '.join(sorted(GPUS))})")
            name = GPUS[device][0]
            if gpus and name not in gpus:
                continue
            op = r["OPName"].strip()
            try:
                dims = {c: int(float(r[c])) for c in _dims_of(op)}
                family, config = op_config(op, dims)
                latency_ms = float(r["Latency"])
            except KeyError:
                raise NeuSightImportError(f"{path}: unknown op {op!r}") from None
            except ValueError as e:
                raise NeuSightImportError(f"{path}: bad number in a {op} row ({e})") from None
            if not math.isfinite(latency_ms) or latency_ms <= 0:
                continue
            key = (op, tuple(sorted(dims.items())))
            out.setdefault(name, {}).setdefault(key, {
                "upstream_op": op, "family": family, "config": config, "time_s": latency_ms / 1e3,
                "torch_version": r.get("Torch Version", "").lstrip("p"), "cuda_version": r.get("CUDA Version", ""),
                "file": path.relative_to(root).as_posix()})
    return {k: list(v.values()) for k, v in out.items()}


def microbench_table(rows: list[dict[str, Any]], hardware: str, provenance: dict[str, str]) -> pd.DataFrame:
    """MICROBENCH_COLUMNS rows: our traced op features, their latency, external provenance."""
    from flopcast.calibration.microbench import get_family
    from flopcast.calibration.microbench.static import static_features

    out = []
    for r in rows:
        config_json = json.dumps(r["config"], sort_keys=True)
        features, problem = _static(get_family, static_features, r["family"], config_json)
        key = hashlib.sha256(f"neusight|{hardware}|{r['upstream_op']}|{config_json}".encode()).hexdigest()[:24]
        out.append({"family": r["family"], "config": config_json, "source_model": "", **features,
                    "time_s": r["time_s"], "time_s_min": math.nan, "time_s_max": math.nan, "n_repeats": 5,
                    "n_windows": 1, "window_s": math.nan, "energy_j": math.nan, "energy_source": "none",
                    "energy_window_s": 0.0, "avg_power_w": math.nan, "trusted": not problem,
                    "reason": problem or f"note: NeuSight {r['upstream_op']} ({r['file']})",
                    "key": key, "hardware": hardware, "device_kind": "gpu", "torch_version": r["torch_version"],
                    "cuda_version": r["cuda_version"], **provenance})
    return _typed(pd.DataFrame(out), MICROBENCH_COLUMNS)


_STATIC_CACHE: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}


def _static(get_family: Any, static_features: Any, family: str, config_json: str) -> tuple[dict[str, Any], str]:
    key = (family, config_json)
    if key not in _STATIC_CACHE:
        _STATIC_CACHE[key] = static_features(get_family(family), json.loads(config_json))
    return _STATIC_CACHE[key]


# ------------------------------------------------------------------------------------------------ labels


def label_files(root: Path, folder: str) -> list[Path]:
    """Single-GPU end-to-end label files of one GPU (``-fusion``, ``-dp4``, ``-tp4``, ``-pp4_1`` are skipped)."""
    return sorted(p for p in (root / "scripts/asplos/label" / folder).glob("*.json")
                  if (m := LABEL_NAME.match(p.name)) and not m["rest"])


def check_model_config(root: Path, upstream: str, label: Path) -> None:
    """Check that the zoo model of an upstream model has the upstream config's hyperparameters.

    Raises:
        NeuSightImportError: the config file is missing, or a hyperparameter differs (named).
    """
    from flopcast.calibration.zoo import get

    path = root / DATA / "DLmodel_configs" / f"{upstream}.json"
    if not path.is_file():
        raise NeuSightImportError(f"{label}: no model config {path.relative_to(root)} for {upstream!r}")
    upstream_config = json.loads(path.read_text())
    for zoo_name in set(LABELS[upstream].values()):
        build = get(zoo_name).build
        ours = build.keywords if isinstance(build, partial) else {}
        differs = sorted(k for k, v in ours.items() if k in upstream_config and upstream_config[k] != v)
        if differs:
            raise NeuSightImportError(
                f"{path.relative_to(root)}: {', '.join(differs)} differ from zoo model {zoo_name}")


def label_rows(root: Path, folder: str, hardware: str, provenance: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """STEP_COLUMNS rows of a GPU's single-GPU labels, and the label files not imported (with why).

    Raises:
        NeuSightImportError: a label of a known model without its config, or with a config that differs.
    """
    from flopcast.calibration.zoo import get
    from flopcast.calibration.zoo_steps import StepConfig, static_columns

    rows, skipped = [], []
    for path in label_files(root, folder):
        m = LABEL_NAME.match(path.name)
        if m["model"] not in LABELS:
            skipped.append(f"{path.name} (model {m['model']} not rebuilt)")
            continue
        check_model_config(root, m["model"], path)
        try:
            label = json.loads(path.read_text())
            latency_ms = float(label["e2e_latency"])
        except (ValueError, KeyError, TypeError) as e:
            raise NeuSightImportError(f"{path}: no readable e2e_latency ({type(e).__name__})") from None
        mode = "train" if m["mode"] == "train" else "infer"
        model = LABELS[m["model"]][m["mode"]]
        seq = int(get(model).inputs[0].split(",")[1].split("]")[0])
        if int(m["seq"]) != seq:
            skipped.append(f"{path.name} (sequence {m['seq']}, the zoo model runs {seq})")
            continue
        config = StepConfig(model, int(m["batch"]), mode, "fp32-strict", "none",
                            loss="cross-entropy" if mode == "train" else "mean")
        static, problem = static_columns(config, "gpu")
        key = hashlib.sha256(f"neusight|{hardware}|{path.name}".encode()).hexdigest()[:24]
        rows.append({"model": model, "family": get(model).family, "batch_size": config.batch_size, "mode": mode,
                     "precision": config.precision, "optimizer": "none", **config.option_columns(),
                     "measured_peak_memory_bytes": None, **static,
                     "time_s": latency_ms / 1e3, "time_s_min": math.nan, "time_s_max": math.nan, "n_repeats": 5,
                     "n_windows": 1, "window_s": math.nan, "energy_j": math.nan, "energy_source": "none",
                     "energy_window_s": 0.0, "avg_power_w": math.nan, "trusted": not problem,
                     "reason": problem or f"note: NeuSight label {folder}/{path.name} (forward + backward, "
                     "cross-entropy loss not timed)", "key": key, "hardware": hardware, "device_kind": "gpu",
                     "torch_version": "2.1.0", "cuda_version": "12.1", **provenance})
    return _typed(pd.DataFrame(rows, columns=list(STEP_COLUMNS)), STEP_COLUMNS), skipped


# ----------------------------------------------------------------------------------------------- folders


def _typed(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    df = df.reindex(columns=list(columns))
    for c, t in columns.items():
        if t == "int64":
            df[c] = pd.array(pd.to_numeric(df[c]).round(), dtype="Int64")
        elif t == "float64":
            df[c] = pd.to_numeric(df[c]).astype("float64")
        elif t == "bool":
            df[c] = df[c].astype(bool)
        else:
            df[c] = df[c].astype("string")
    return df


def upstream_commit(source: Path) -> tuple[str, str]:
    """The checkout's commit id and committer date (``unknown`` where git cannot tell)."""
    try:
        out = subprocess.run(["git", "-C", str(source), "log", "-1", "--format=%H %cI"], capture_output=True,
                             text=True, check=True, timeout=30).stdout.split()
        return out[0], out[1]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown", "unknown"


def descriptor_of(name: str) -> dict[str, Any]:
    """The catalog descriptor (spec sheet) of a GPU, marked as measured by NeuSight."""
    from flopcast.calibration.catalog import get_hardware

    d = get_hardware(name).to_dict()
    d["extra"] = {**d.get("extra", {}), "measured_by": "NeuSight (external)", "external_source": SOURCE}
    return d


def import_neusight(config: ImportConfig) -> dict[str, dict[str, Any]]:
    """Write one release folder per GPU with data; returns each folder's ``meta.json`` content by folder name.

    Every folder is built in a temporary directory and moved into place only when all of them are built,
    so a bad upstream file leaves nothing behind.

    Raises:
        NeuSightImportError: a bad upstream file (named), or a destination folder that exists already.
    """
    root = Path(config.source)
    if not (root / DATA).is_dir():
        raise NeuSightImportError(f"{root}: not a NeuSight checkout (no {DATA})")
    commit, date = (config.commit, config.commit_date) if config.commit else upstream_commit(root)
    wanted = set(config.gpus)
    unknown = wanted - {v[0] for v in GPUS.values()}
    if unknown:
        raise NeuSightImportError(f"--gpus: unknown GPU(s) {', '.join(sorted(unknown))}")
    ops = measured_op_rows(root, wanted)
    metas: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="neusight-") as tmp:
        staged = []
        for device, (name, folder) in GPUS.items():
            if wanted and name not in wanted:
                continue
            prov = {"driver_version": "", "flopcast_version": _version(), "measured_at": date,
                    "campaign": f"neusight@{commit[:12]}"}
            mb = microbench_table(ops.get(name, []), name, prov)
            steps, skipped = label_rows(root, folder, name, prov)
            if mb.empty and steps.empty:
                continue
            dest = Path(tmp) / f"neusight-{name}"
            dest.mkdir()
            mb.to_parquet(dest / "microbench.parquet", index=False, compression="zstd")
            steps.to_parquet(dest / "steps.parquet", index=False, compression="zstd")
            (dest / "descriptor.json").write_text(json.dumps(descriptor_of(name), indent=2, sort_keys=True) + "\n")
            meta = folder_meta(device, name, commit, date, mb, steps, skipped)
            (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
            metas[dest.name] = meta
            staged.append(dest)
        existing = [config.out / d.name for d in staged if (config.out / d.name).exists()]
        if existing:
            raise NeuSightImportError(f"{existing[0]} exists already; remove it to import again")
        config.out.mkdir(parents=True, exist_ok=True)
        for d in staged:
            shutil.move(str(d), config.out / d.name)
    return metas


def folder_meta(device: str, name: str, commit: str, date: str, mb: pd.DataFrame, steps: pd.DataFrame,
                skipped: list[str]) -> dict[str, Any]:
    """``meta.json`` of an imported folder: source, commit, license, citation, how it was measured."""
    return {
        "schema_version": f"{SCHEMA_VERSION}.0",
        "hardware": name,
        "device": f"{device} (measured by the NeuSight authors)",
        "external": True,
        "source_repository": SOURCE,
        "copy_read": COPY,
        "source_commit": commit,
        "source_commit_date": date,
        "license": LICENSE,
        "citation": CITATION,
        "campaigns": [f"neusight@{commit[:12]}"],
        "command": "python -m flopcast.datasets.import_neusight PATH (a checkout of the copy above)",
        "rows": {"microbench": len(mb), "steps": len(steps)},
        "upstream_ops": sorted({str(r).split("NeuSight ")[1].split(" ")[0] for r in mb["reason"]}) if len(mb) else [],
        "torch_version": ", ".join(sorted(set(mb["torch_version"].dropna()) | set(steps["torch_version"].dropna()))),
        "energy_source": "none",
        "measured": "fp32, cuDNN TF32 off, cudnn.benchmark on; ops forward under no_grad, mean of the 5 fastest of "
                    "25 CUDA-event timings of one call; labels: eager attention, train = forward + backward of a "
                    "cross-entropy loss (loss forward not timed, no optimizer), inference = forward under no_grad",
        "measured_at_note": "the upstream commit date: the measurement dates are not published",
        "not_imported": skipped,
    }


def _version() -> str:
    from flopcast.features.version import flopcast_version

    return flopcast_version()


def main(argv: list[str] | None = None) -> int:
    """``python -m flopcast.datasets.import_neusight``: one line per folder written, one line and exit 2 on error."""
    p = argparse.ArgumentParser(prog="python -m flopcast.datasets.import_neusight",
                                description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="a NeuSight checkout")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="destination (datasets/)")
    p.add_argument("--commit", help="upstream commit id (default: read with git from SOURCE)")
    p.add_argument("--commit-date", default="unknown", help="that commit's date, ISO 8601")
    p.add_argument("--gpus", default="", help="comma-separated catalog ids (default: every GPU)")
    args = p.parse_args(argv)
    config = ImportConfig(args.source, args.out, args.commit, args.commit_date,
                          tuple(g for g in args.gpus.split(",") if g))
    try:
        metas = import_neusight(config)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for folder, meta in metas.items():
        print(f"{config.out / folder}: {meta['rows']['microbench']} op rows, {meta['rows']['steps']} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
