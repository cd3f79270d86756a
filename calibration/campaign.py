"""A calibration campaign: ceilings, then op microbenchmarks and zoo steps, each row stored as it finishes.

The campaign is resumable (done keys are skipped), capped by ``--budget-minutes`` (the task order
puts the most informative configs first), tracked as one MLflow run and wrapped in CodeCarbon.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from flopcast.calibration.catalog import get_hardware
from flopcast.calibration.ceilings import measure_ceilings
from flopcast.calibration.config import CalibrateConfig
from flopcast.calibration.descriptor import DescriptorError, HardwareDescriptor
from flopcast.calibration.energy import EnergyMeter, NullMeter, select_meter
from flopcast.calibration.measurement import Measurement
from flopcast.calibration.microbench import get_family
from flopcast.calibration.microbench.base import math_mode
from flopcast.calibration.plan import Task, config_json, plan_tasks
from flopcast.calibration.probe import probe_device
from flopcast.calibration.provenance import Provenance
from flopcast.calibration.rows import failure_reason, measured_columns, missing_columns, with_problem
from flopcast.calibration.store import Store
from flopcast.calibration.tracking import CampaignRun, Emissions, check_reachable, flatten, resolve_uri, track_emissions
from flopcast.calibration.windows import UntrustedMeasurementWarning, measure
from flopcast.calibration.zoo_steps import StepConfig, measure_step, release_memory
from flopcast.datasets.schema import MICROBENCH_COLUMNS, STEP_COLUMNS

log = logging.getLogger(__name__)

TABLES = {"microbench": MICROBENCH_COLUMNS, "steps": STEP_COLUMNS}
CEILING_DTYPES = {"cpu": ("fp32", "bf16"), "gpu": ("fp32", "tf32", "bf16", "fp16")}

MeasureFn = Callable[[Callable[[], object], bool], Measurement]


class NoDeviceError(ValueError):
    """The requested device is not present."""


@dataclass(frozen=True)
class CampaignResult:
    """What a campaign did.

    Attributes:
        out_dir: its directory.
        descriptor: the calibrated descriptor.
        campaign: campaign id (the MLflow run id when tracked).
        tracking_uri: where it was tracked (``None`` when not).
        planned: tasks of this shard.
        already_done: tasks skipped because an earlier run stored them.
        measured: rows written by this run.
        rows: rows per table after this run (all shards).
        trusted_share: share of trusted rows over all tables.
        duration_s: wall time, s.
        stopped_by_budget: whether ``--budget-minutes`` cut the task list.
        emissions: the campaign's own CodeCarbon emissions.
    """

    out_dir: Path
    descriptor: HardwareDescriptor
    campaign: str
    tracking_uri: str | None
    planned: int
    already_done: int
    measured: int
    rows: dict[str, int]
    trusted_share: float
    duration_s: float
    stopped_by_budget: bool
    emissions: Emissions


def check_device(device: str) -> None:
    """Refuse ``cuda`` when no GPU is visible.

    Raises:
        NoDeviceError: with the one-line reason.
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NoDeviceError("--device cuda: no CUDA GPU is visible (torch.cuda.is_available() is False); "
                            "use --device cpu or run on a GPU machine")


def labelled(probed: HardwareDescriptor, name_or_path: str | None) -> HardwareDescriptor:
    """The probed descriptor, named and spec'd after a catalog entry or descriptor file when one is given.

    Raises:
        UnknownHardwareError: for a name the catalog does not know (close matches listed).
        NoDeviceError: when the entry is of another kind (a GPU entry for ``--device cpu``).
    """
    if name_or_path is None:
        return probed
    spec = get_hardware(name_or_path)
    if spec.kind != probed.kind:
        raise NoDeviceError(f"--hardware {name_or_path} is a {spec.kind}, but the calibrated device is a {probed.kind}")
    return replace(probed, name=spec.name, peak_flops_per_s=spec.peak_flops_per_s, source=spec.source,
                   memory_bandwidth_bytes_per_s=spec.memory_bandwidth_bytes_per_s, tdp_w=spec.tdp_w or probed.tdp_w,
                   interconnect=spec.interconnect or probed.interconnect)


def calibrated_descriptor(cfg: CalibrateConfig, probed: HardwareDescriptor) -> HardwareDescriptor:
    """The probed descriptor with measured ceilings, reused from ``descriptor.json`` when already there.

    Only shard 0 measures ceilings; other shards of a SLURM array keep the probed descriptor.
    """
    path = cfg.out_dir / "descriptor.json"
    if path.exists():
        try:
            saved = HardwareDescriptor.load(path)
        except DescriptorError as e:
            log.warning("re-measuring ceilings: %s", e)
        else:
            if saved.name == probed.name and saved.calibrated:
                return saved
    if cfg.shard_index != 0:
        return probed
    kind = "gpu" if probed.kind == "gpu" else "cpu"
    dtypes = tuple(d for d in CEILING_DTYPES[kind] if cfg.dtypes is None or d in cfg.dtypes) or ("fp32",)
    descriptor = probed.with_measurements(**measure_ceilings(cfg.device, dtypes, quick=cfg.quick))
    tmp = path.with_suffix(".json.tmp")
    descriptor.save(tmp)
    tmp.replace(path)
    return descriptor


def make_measure(cfg: CalibrateConfig, meter: EnergyMeter) -> MeasureFn:
    """The campaign's measuring function: ``fn, energy -> Measurement`` with the configured windows.

    Untrusted results are not warned about one by one: each row carries its own ``reason``.
    """

    def run(fn: Callable[[], object], energy: bool) -> Measurement:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrustedMeasurementWarning)
            return measure(fn, device=cfg.device, min_window_s=cfg.min_window_s, n_windows=cfg.n_windows,
                           energy_window_s=cfg.energy_window_s if energy else 0.0, meter=meter)

    return run


def measure_op(task: Task, device: str, measure_fn: MeasureFn) -> dict[str, Any]:
    """A ``MICROBENCH_COLUMNS`` row (without provenance) of one op task.

    A build or run failure (out of memory, a kernel missing for a dtype) gives a row with NaN times and
    the reason; other exceptions are bugs and propagate.
    """
    static = {k: v for k, v in task.static.items() if k != "_problem"}
    problem = task.static.get("_problem", "")
    fn = None
    try:
        with math_mode(task.config["dtype"]):
            fn = get_family(task.name).build(task.config, device)
            measured = measured_columns(measure_fn(fn, task.energy), problem)
    except (RuntimeError, MemoryError) as e:
        fn = None
        release_memory(device, collect=True)
        measured = missing_columns(failure_reason(e))
        measured = with_problem(measured, problem) if problem else measured
    finally:
        del fn
    return {"family": task.name, "config": config_json(task.config), "source_model": task.source, **static,
            **measured}


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[current]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled,
    )


def _run_tasks(
    todo: list[Task], cfg: CalibrateConfig, stores: dict[str, Store], prov: Provenance, measure_fn: MeasureFn,
    start_s: float,
) -> tuple[int, bool]:
    """Measure and store ``todo`` in order until done or out of budget; returns (rows written, stopped)."""
    budget_s = cfg.budget_minutes * 60 if cfg.budget_minutes else math.inf
    written, task_s = 0, 0.0
    with _progress(cfg.progress) as progress:
        bar = progress.add_task("calibrating", total=len(todo), current="")
        for task in todo:
            elapsed = time.monotonic() - start_s
            if elapsed + (task_s / written if written else 0.0) > budget_s:
                log.warning("budget of %.1f min reached: %d of %d tasks left for a rerun",
                            cfg.budget_minutes, len(todo) - written, len(todo))
                return written, True
            progress.update(bar, current=f"{task.kind}:{task.name}")
            t0 = time.monotonic()
            if task.kind == "op":
                row, table = measure_op(task, cfg.device, measure_fn), "microbench"
            else:
                step_measure = partial(measure_fn, energy=task.energy)
                row, table = measure_step(StepConfig(**task.config), cfg.device, step_measure), "steps"
            stores[table].append({**row, **prov.columns(task.key)})
            task_s += time.monotonic() - t0
            written += 1
            progress.advance(bar)
    return written, False


def run_campaign(cfg: CalibrateConfig) -> CampaignResult:
    """Run (or resume) one campaign as configured.

    Raises:
        NoDeviceError: ``--device cuda`` without a GPU.
        UnknownHardwareError: an unknown ``--hardware`` name.
        TrackingUnreachableError: the tracking URI does not answer (checked before measuring).
        StoreFullError: the disk filled up (rows already written are kept).
    """
    cfg = cfg.with_preset()
    check_device(cfg.device)
    uri = resolve_uri(cfg.tracking_uri) if cfg.track else None
    if uri is not None:
        check_reachable(uri)
    start_s = time.monotonic()
    probed = labelled(probe_device(cfg.device), cfg.hardware)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    run = CampaignRun(uri, cfg.experiment or f"flopcast-{probed.name}", f"calibrate-{probed.name}") if uri else None
    prov = Provenance.of(probed, campaign=run.run_id if run else uuid.uuid4().hex[:16])
    shard = cfg.shard_index if cfg.shard_count > 1 else None
    stores = {name: Store(cfg.out_dir, name, columns, shard=shard) for name, columns in TABLES.items()}
    status, descriptor, planned, skipped, written, stopped = "FAILED", probed, 0, 0, 0, False
    emissions = Emissions(error="campaign ended before CodeCarbon started")
    try:
        with track_emissions(cfg.out_dir, cfg.country) as emissions:
            descriptor = calibrated_descriptor(cfg, probed)
            tasks = plan_tasks(cfg, descriptor, prov)
            done = set().union(*(s.done_keys() for s in stores.values()))
            todo = [t for t in tasks if t.key not in done]
            planned, skipped = len(tasks), len(tasks) - len(todo)
            meter = select_meter(cfg.device) if cfg.energy else NullMeter("energy off (--no-energy)")
            written, stopped = _run_tasks(todo, cfg, stores, prov, make_measure(cfg, meter), start_s)
        for store in stores.values():
            store.to_parquet()
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        for store in stores.values():
            store.close()
        result = _result(cfg, descriptor, prov, uri, stores, planned, skipped, written, stopped,
                         time.monotonic() - start_s, emissions)
        if run is not None:
            _log_run(run, cfg, result, prov, status)
    return result


def _result(
    cfg: CalibrateConfig, descriptor: HardwareDescriptor, prov: Provenance, uri: str | None, stores: dict[str, Store],
    planned: int, skipped: int, written: int, stopped: bool, duration_s: float, emissions: Emissions,
) -> CampaignResult:
    rows = {name: s.rows() for name, s in stores.items()}
    total = sum(len(r) for r in rows.values())
    trusted = sum(bool(x["trusted"]) for r in rows.values() for x in r)
    return CampaignResult(
        out_dir=cfg.out_dir, descriptor=descriptor, campaign=prov.campaign, tracking_uri=uri, planned=planned,
        already_done=skipped, measured=written, rows={k: len(v) for k, v in rows.items()},
        trusted_share=trusted / total if total else 0.0, duration_s=duration_s, stopped_by_budget=stopped,
        emissions=emissions,
    )


def _log_run(run: CampaignRun, cfg: CalibrateConfig, result: CampaignResult, prov: Provenance, status: str) -> None:
    """Parameters, metrics and tables of a finished (or failed) campaign; a tracking failure is logged loudly."""
    d = result.descriptor
    try:
        run.log_params({**flatten("hw", d.to_dict()), **prov.versions(),
                        **flatten("cfg", json.loads(json.dumps(asdict(cfg), default=str)))})
        run.log_metrics({
            "rows_microbench": result.rows.get("microbench", 0), "rows_steps": result.rows.get("steps", 0),
            "rows_this_run": result.measured, "rows_already_done": result.already_done,
            "trusted_share": result.trusted_share, "duration_s": result.duration_s,
            "stopped_by_budget": float(result.stopped_by_budget),
            "launch_overhead_s": d.launch_overhead_s, "idle_power_w": d.idle_power_w,
            "measured_bandwidth_bytes_per_s": d.measured_bandwidth_bytes_per_s,
            **{f"measured_peak_flops_per_s.{k}": v for k, v in d.measured_peak_flops_per_s.items()},
            "campaign_emissions_kg_co2eq": result.emissions.kg_co2eq,
            "campaign_energy_kwh": result.emissions.energy_kwh,
        })
        if result.emissions.error:
            run.set_tags({"codecarbon_error": result.emissions.error[:5000]})
        run.log_artifacts([cfg.out_dir / f"{t}.parquet" for t in TABLES] + [cfg.out_dir / "descriptor.json"])
    except Exception as e:  # tracking is bookkeeping: the rows are safe on disk, so say so and go on
        log.error("could not log campaign %s to MLflow at %s: %s: %s", run.run_id, run.uri, type(e).__name__, e)
    finally:
        run.end(status)
