"""The op table of a zoo step, analysed once and cached (memory and disk): the step model trains on thousands.

``analyze`` is deterministic for a config, so its op table is keyed by the config, the zoo's source (every
file of ``flopcast.calibration.zoo``: builders wrap other modules' functions and share blocks), the source
of the static analysis itself (every file of ``flopcast.features``: a fixed formula must never be served
from a stale entry), and the flopcast, torch and transformers versions. The disk cache lives in
``$FLOPCAST_CACHE_DIR`` (default ``~/.cache/flopcast``); a corrupt entry is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from flopcast.features.analysis import Analysis
from flopcast.features.table import ops_table
from flopcast.features.version import flopcast_version

log = logging.getLogger(__name__)

KEPT_COLUMNS = ("op", "category", "phase", "dtype", "input_shapes", "output_shapes", "flops", "bytes_read",
                "bytes_written", "outcome")
"""Op-table columns the predictor reads (the rest is not cached), plus ``python_call`` (see :class:`StepAnalysis`)."""


@dataclass(frozen=True)
class StepAnalysis:
    """What the predictor needs of one analysed step.

    Attributes:
        ops: op table (columns :data:`KEPT_COLUMNS` and ``python_call``: whether the op was the first of a
            Python-level call, :attr:`flopcast.features.records.OpRecord.python_call`).
        peak_memory_bytes: the analysis' peak-memory estimate, bytes.
        params: parameters.
        memory_estimated: whether the front end estimated the peak (NumPy, TensorFlow and ONNX analyses
            do not: their ``peak_memory_bytes`` is 0, not a measurement).
    """

    ops: pd.DataFrame
    peak_memory_bytes: int
    params: int
    memory_estimated: bool = True

    @classmethod
    def of(cls, analysis: Analysis) -> StepAnalysis:
        """From a full analysis."""
        table = ops_table(analysis.ops)[list(KEPT_COLUMNS)]
        table["python_call"] = [o.python_call for o in analysis.ops]
        return cls(table, analysis.peak_memory_bytes, analysis.params, analysis.memory is not None)


def cache_dir() -> Path:
    """The disk cache folder (``$FLOPCAST_CACHE_DIR`` or ``~/.cache/flopcast``) for analyses."""
    root = os.environ.get("FLOPCAST_CACHE_DIR") or Path.home() / ".cache" / "flopcast"
    return Path(root) / "analyses"


def _package_digest(package: object) -> str:
    """SHA-256 (12 hex digits) over the source files of a package, in path order."""
    h = hashlib.sha256()
    for root in package.__path__:
        for path in sorted(Path(root).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


@lru_cache(maxsize=1)
def features_digest() -> str:
    """SHA-256 (12 hex digits) over the source files of ``flopcast.features``, in path order."""
    import flopcast.features as features

    return _package_digest(features)


@lru_cache(maxsize=1)
def zoo_digest() -> str:
    """SHA-256 (12 hex digits) over the source files of the zoo (``flopcast.calibration.zoo``), in path order.

    The whole package, not a model's own module: builders are ``functools.partial`` objects of functions in
    other modules (``full_size.py`` wraps ``vgg.py``'s), and models share blocks (``blocks.py``).
    """
    import flopcast.calibration.zoo as zoo

    return _package_digest(zoo)


def transformers_version() -> str:
    """The installed transformers version (its code builds the hf zoo models), ``""`` when not installed."""
    try:
        return version("transformers")
    except PackageNotFoundError:
        return ""


def cache_key(model: str, batch_size: int, mode: str, precision: str, optimizer: str, device: str,
              **options: Any) -> str:
    """Key of a zoo step analysis.

    The config (step options included), the zoo and features source digests, and the flopcast, torch and
    transformers versions.
    """
    parts = {"model": model, "batch_size": int(batch_size), "mode": mode, "precision": precision,
             "optimizer": optimizer, "device": device, "step": options, "zoo": zoo_digest(),
             "features": features_digest(), "flopcast": flopcast_version(), "torch": torch.__version__,
             "transformers": transformers_version()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


@lru_cache(maxsize=512)
def zoo_step(model: str, batch_size: int, mode: str, precision: str, optimizer: str, device: str,
             **options: Any) -> StepAnalysis:
    """The analysis of a zoo step, from the cache or freshly traced.

    Args:
        model: zoo model name.
        batch_size: value of ``B``.
        mode: train or infer.
        precision: fp32, tf32, bf16 or fp16.
        optimizer: adamw, adam, sgd or none.
        device: ``cuda`` or ``cpu`` (the analysis' device kind).
        **options: step options that differ from the plain step (``loss``, ``grad_clip``,
            ``grad_accumulation``, ``fused_optimizer``, ``grad_scaler``: a measured row's
            :func:`flopcast.calibration.zoo_steps.step_option_kwargs`).
    """
    key = cache_key(model, batch_size, mode, precision, optimizer, device, **options)
    folder = cache_dir()
    table, meta = folder / f"{key}.parquet", folder / f"{key}.json"
    if table.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            return StepAnalysis(pd.read_parquet(table), int(info["peak_memory_bytes"]), int(info["params"]))
        except (OSError, ValueError, KeyError) as e:
            log.warning("recomputing cached analysis %s: %s", key, e)
    step = _analyse(model, batch_size, mode, precision, optimizer, device, options)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = table.with_suffix(f".tmp-{os.getpid()}")
        step.ops.to_parquet(tmp, index=False)
        os.replace(tmp, table)
        meta.write_text(json.dumps({"peak_memory_bytes": step.peak_memory_bytes, "params": step.params}))
    except OSError as e:  # a read-only home only costs speed
        log.warning("could not cache analysis %s: %s", key, e)
    return step


def _analyse(model: str, batch_size: int, mode: str, precision: str, optimizer: str, device: str,
             options: dict[str, Any]) -> StepAnalysis:
    from flopcast.calibration.zoo import get
    from flopcast.features.api import analyze
    from flopcast.features.step_options import StepOptions

    zm = get(model)
    analysis = analyze(zm.build, zm.inputs, batch_size=batch_size, mode=mode, precision=precision, device=device,
                       optimizer=optimizer, target=f"zoo:{model}", step=StepOptions(**options))
    return StepAnalysis.of(analysis)
