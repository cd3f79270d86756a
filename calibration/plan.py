"""The task list of a campaign: op configs and zoo steps, keyed, ordered so that any prefix covers everything.

Families, ``--ops-from`` shapes and zoo steps are separate streams; each stream is ordered to spread
sizes (small, large, middle, ... by bit reversal of the size rank) and the streams are interleaved in
proportion to their length, so a campaign stopped by its budget still covers every family and size.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from flopcast.calibration.config import CalibrateConfig
from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.microbench import configs_from_ops_table, family_names, get_family
from flopcast.calibration.microbench.base import Config, Family
from flopcast.calibration.microbench.static import static_features
from flopcast.calibration.provenance import Provenance
from flopcast.calibration.store import row_key
from flopcast.calibration.zoo import names as zoo_names
from flopcast.calibration.zoo_steps import step_configs
from flopcast.features.table import ops_table_source

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_WORKING_SET_BYTES = {"cpu": 64 * 2**20, "gpu": 16 * 2**30}
"""Largest working set of one microbenchmark by device kind, bytes (also capped by device memory)."""
MEMORY_SHARE = {"cpu": 0.05, "gpu": 0.25}
"""Share of the device memory one microbenchmark may hold."""
FLOPS_CAP = {"cpu": 5e10, "gpu": 2e12}
"""Most FLOPs of one repetition (about 0.3 s on a small CPU, 40 ms at an H100's fp32 peak).

Constants rather than the probed peak, so the plan (hence every key) is the same on every rerun."""


@dataclass(frozen=True)
class Task:
    """One measurement to take.

    Attributes:
        kind: ``op`` (microbenchmark) or ``step`` (zoo model step).
        name: family or zoo model.
        config: the family's config, or the step config as a dict.
        key: the row key (see :func:`~flopcast.calibration.store.row_key`).
        energy: whether this measurement gets an energy window.
        static: traced OP_COLUMNS of an op config, with a trace problem under ``"_problem"``.
        source: the op row's ``source_model``: models its shapes derive from, comma-separated and sorted (the
            targets of the ``--ops-from`` tables holding it, the zoo models its sampler range was widened for).
    """

    kind: str
    name: str
    config: dict[str, Any]
    key: str
    energy: bool = False
    static: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str = ""


def working_set_cap_bytes(cfg: CalibrateConfig, descriptor: HardwareDescriptor) -> int:
    """Memory cap of one microbenchmark config, bytes."""
    kind = "gpu" if descriptor.kind == "gpu" else "cpu"
    cap = cfg.max_working_set_bytes or DEFAULT_WORKING_SET_BYTES[kind]
    if descriptor.memory_bytes:
        cap = min(cap, int(descriptor.memory_bytes * MEMORY_SHARE[kind]))
    return cap


def spread(items: Sequence[T], size: Callable[[T], float]) -> list[T]:
    """Items in an order whose every prefix spans the size range (bit-reversed rank of the size order)."""
    ranked = sorted(items, key=size)
    n = len(ranked)
    if n < 3:
        return list(ranked)
    bits = max(1, math.ceil(math.log2(n)))
    order = sorted(range(n), key=lambda i: int(f"{i:0{bits}b}"[::-1], 2))
    return [ranked[i] for i in order]


def interleave(streams: Sequence[Sequence[T]]) -> list[T]:
    """Merge streams so each advances in proportion to its length (item i of L sits at (i + 0.5) / L)."""
    keyed = [((i + 0.5) / len(s), k, x) for k, s in enumerate(streams) for i, x in enumerate(s)]
    return [x for _, _, x in sorted(keyed, key=lambda t: (t[0], t[1]))]


def _fit(family: Family, config: Config, cap_bytes: int, cap_flops: float) -> tuple[Config, dict[str, Any]]:
    """Shrink a config into the memory cap, then until its traced FLOPs fit ``cap_flops``."""
    config = family.fit(config, cap_bytes)
    static, problem = static_features(family, config)
    while static["flops"] > cap_flops:
        key = max(family.shrink_keys, key=lambda k: config[k])
        if config[key] <= 1:
            break
        config = {**config, key: max(1, config[key] // 2)}
        static, problem = static_features(family, config)
    return config, {**static, "_problem": problem}


def _op_task(name: str, config: Config, static: dict[str, Any], prov: Provenance, sources: Sequence[str] = ()
             ) -> Task:
    key = row_key(kind="op", family=name, config=config, dtype=config["dtype"], **prov.versions())
    return Task("op", name, config, key, static=static,
                source=joined_sources(sources, get_family(name).derived_from(config)))


def joined_sources(*parts: Sequence[str]) -> str:
    """The ``source_model`` value of several lists of model names: unique, sorted, comma-separated."""
    return ",".join(sorted({m for part in parts for m in part if m}))


def table_source(path: Path) -> str:
    """The model an ``--ops-from`` table was analysed from (a zoo model by its bare name), ``""`` if it does not say."""
    source = ops_table_source(path).removeprefix("zoo:")
    if not source:
        log.warning("--ops-from %s names no source model (written before op tables recorded it): its rows cannot "
                    "be kept out of a family-out evaluation", path)
    return source


def _size(task: Task) -> float:
    return float(task.static.get("flops", 0)) + float(task.static.get("bytes_read", 0))


def op_streams(cfg: CalibrateConfig, descriptor: HardwareDescriptor, prov: Provenance) -> list[list[Task]]:
    """One spread-ordered stream of op tasks per family."""
    kind = "gpu" if descriptor.kind == "gpu" else "cpu"
    cap_bytes, cap_flops = working_set_cap_bytes(cfg, descriptor), cfg.max_flops or FLOPS_CAP[kind]
    streams = []
    for name in family_names() if cfg.families is None else cfg.families:
        family = get_family(name)
        dtypes = [d for d in (cfg.dtypes or family.dtypes_for(kind)) if d in family.dtypes_for(kind)]
        if not dtypes:
            log.info("family %s: none of the dtypes %s is measured on a %s", name, cfg.dtypes, kind)
            continue
        rng = random.Random(f"{cfg.seed}:{name}")
        tasks = []
        for config in family.sample_configs(rng, cap_bytes, cfg.configs_per_family, dtypes):
            config, static = _fit(family, config, cap_bytes, cap_flops)
            tasks.append(_op_task(name, config, static, prov))
        streams.append(spread(tasks, _size))
    return streams


def ops_from_stream(
    paths: Sequence[Path], cfg: CalibrateConfig, descriptor: HardwareDescriptor, prov: Provenance
) -> list[Task]:
    """Op tasks for the shapes of analysed models (``analyze --ops-parquet`` tables), spread over their sizes.

    Each prefix of the list spans the tables' size range (:func:`spread`), as the sampled families' streams
    do, so a campaign stopped by its budget has measured small and large shapes alike.
    """
    kind = "gpu" if descriptor.kind == "gpu" else "cpu"
    cap_bytes, cap_flops = working_set_cap_bytes(cfg, descriptor), cfg.max_flops or FLOPS_CAP[kind]
    tasks: dict[str, Task] = {}
    for path in paths:
        source = table_source(path)
        for name, config in configs_from_ops_table(pd.read_parquet(path)):
            family = get_family(name)
            excluded = cfg.families is not None and name not in cfg.families
            if config["dtype"] not in family.dtypes_for(kind) or excluded:
                continue
            config, static = _fit(family, config, cap_bytes, cap_flops)
            task = _op_task(name, config, static, prov, [source])
            if task.key in tasks:  # one shape of several models: measured once, derived from each
                task = replace(tasks[task.key], source=joined_sources(tasks[task.key].source.split(","), [source]))
            tasks[task.key] = task
    return spread(list(tasks.values()), _size)


def step_stream(cfg: CalibrateConfig, descriptor: HardwareDescriptor, prov: Provenance) -> list[Task]:
    """Zoo step tasks, models interleaved; every step gets an energy window when energy is on."""
    kind = "gpu" if descriptor.kind == "gpu" else "cpu"
    models = cfg.zoo if cfg.zoo is not None else tuple(zoo_names())
    per_model = []
    for model in models:
        configs = step_configs([model], kind, batch_sizes=cfg.step_batch_sizes, precisions=cfg.step_precisions,
                               modes=cfg.step_modes, options=cfg.step)
        per_model.append([
            Task("step", model, c.as_dict(), row_key(kind="step", model=model, config=c.as_dict(),
                                                     dtype=c.precision, **prov.versions()), energy=cfg.energy)
            for c in configs
        ])
    return interleave([spread(s, lambda t: t.config["batch_size"]) for s in per_model if s])


def _with_energy(tasks: list[Task], share: float) -> list[Task]:
    """Mark an evenly spread ``share`` of the op tasks (at least one when ``share`` > 0) for an energy window."""
    out, i = [], 0
    for t in tasks:
        if t.kind == "op":
            energy = math.floor((i + 1) * share) > math.floor(i * share) or (i == 0 and share > 0)
            t = replace(t, energy=energy)
            i += 1
        out.append(t)
    return out


def plan_tasks(cfg: CalibrateConfig, descriptor: HardwareDescriptor, prov: Provenance) -> list[Task]:
    """The campaign's ordered task list (deterministic for a seed), restricted to this shard."""
    streams = op_streams(cfg, descriptor, prov)
    if cfg.ops_from:
        streams.append(ops_from_stream(cfg.ops_from, cfg, descriptor, prov))
    streams.append(step_stream(cfg, descriptor, prov))
    unique: dict[str, Task] = {}
    for t in interleave([s for s in streams if s]):
        if t.key in unique:  # equal configs (sampled twice, or also in --ops-from) are measured once, with every source
            t = replace(unique[t.key], source=joined_sources(unique[t.key].source.split(","), t.source.split(",")))
        unique[t.key] = t
    tasks = list(unique.values())
    return _with_energy(tasks, cfg.energy_share if cfg.energy else 0.0)[cfg.shard_index :: cfg.shard_count]


def config_json(config: dict[str, Any]) -> str:
    """The ``config`` column: canonical JSON of a config."""
    return json.dumps(config, sort_keys=True)
