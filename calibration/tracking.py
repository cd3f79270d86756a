"""MLflow tracking of campaigns (one run each, an experiment per hardware) and their own CodeCarbon emissions.

With no ``--tracking-uri`` the run goes where MLflow itself defaults (``MLFLOW_TRACKING_URI``, else
``sqlite:///mlflow.db`` in the working directory, or ``./mlruns`` where that already holds runs).
A server URI is probed with a short timeout before anything is measured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger(__name__)

MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


class TrackingUnreachableError(ValueError):
    """The MLflow tracking URI cannot be reached or written."""


def resolve_uri(uri: str | None) -> str:
    """The tracking URI a campaign uses: the given one, else MLflow's own default."""
    if uri:
        return uri
    import mlflow

    return mlflow.get_tracking_uri()


def check_reachable(uri: str, timeout_s: float = 3.0) -> None:
    """Fail fast when a tracking URI cannot work, before a campaign spends time measuring.

    HTTP(S) servers must answer ``/health`` within ``timeout_s``; SQLite and file stores need a
    writable directory. Other schemes (databricks, ...) are left to MLflow.

    Raises:
        TrackingUnreachableError: naming the URI and the cause.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        health = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=timeout_s) as response:
                if response.status != 200:
                    raise TrackingUnreachableError(f"MLflow server {uri} answered {response.status} on /health")
        except (urllib.error.URLError, OSError) as e:
            cause = getattr(e, "reason", e)
            raise TrackingUnreachableError(
                f"MLflow tracking server {uri} is unreachable ({cause}); start it, fix --tracking-uri, "
                "or leave it out to track in a local store"
            ) from None
    elif parsed.scheme in ("sqlite", "file", ""):
        if parsed.scheme == "sqlite":
            folder = Path(uri[len("sqlite:///") :]).parent  # sqlite:///rel.db, sqlite:////abs/path.db
        else:
            folder = Path(parsed.path if parsed.scheme else uri)
        existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise TrackingUnreachableError(f"MLflow store {uri}: {existing} is not a writable directory")


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested dicts as ``prefix.key.sub`` parameters; lists and scalars as JSON/str, cut to MLflow's limit."""
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    text = json.dumps(value, default=str) if isinstance(value, (list, tuple)) else str(value)
    return {prefix: text[:MAX_PARAM_CHARS]}


class CampaignRun:
    """One MLflow run of a campaign, through an explicit client (no global MLflow state).

    Args:
        uri: tracking URI (see :func:`resolve_uri`).
        experiment: experiment name, created when missing.
        run_name: display name of the run.
    """

    def __init__(self, uri: str, experiment: str, run_name: str):
        from mlflow.tracking import MlflowClient

        # a new SQLite store logs "Creating initial MLflow database tables..." at INFO between our lines
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
        self.run_id: str = self.client.create_run(exp_id, run_name=run_name).info.run_id
        self.uri = uri

    def log_params(self, params: Mapping[str, str]) -> None:
        """Log parameters in batches (MLflow takes at most 100 per call)."""
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float | None]) -> None:
        """Log the finite metrics (``None`` ones are skipped: missing, not zero)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, metrics=items[i : i + 100])

    def log_artifacts(self, paths: list[Path]) -> None:
        """Upload files (parquet tables, descriptor) that exist."""
        for p in paths:
            if p.exists():
                self.client.log_artifact(self.run_id, str(p))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set run tags."""
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)

    def end(self, status: str = "FINISHED") -> None:
        """Close the run (FINISHED, FAILED or KILLED)."""
        self.client.set_terminated(self.run_id, status)


@dataclass
class Emissions:
    """The campaign's own footprint from CodeCarbon, or why it is missing.

    Attributes:
        kg_co2eq: emissions, kg CO2-eq (``None`` when CodeCarbon failed).
        energy_kwh: energy CodeCarbon counted, kWh.
        error: why CodeCarbon gave nothing ("" when it worked).
    """

    kg_co2eq: float | None = None
    energy_kwh: float | None = None
    error: str = ""


@contextlib.contextmanager
def track_emissions(out_dir: Path, country: str) -> Iterator[Emissions]:
    """Wrap a campaign in CodeCarbon's ``OfflineEmissionsTracker``; a CodeCarbon failure is recorded, not raised.

    Args:
        out_dir: where CodeCarbon writes ``emissions.csv``.
        country: ISO 3166 alpha-3 code of the grid (``FRA``).
    """
    result = Emissions()
    tracker = None
    try:
        from codecarbon import OfflineEmissionsTracker

        # log_level below is applied only after the constructor has logged "offline tracker init" and
        # "Multiple instances of codecarbon are allowed": the logger's level is set first so neither shows
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        tracker = OfflineEmissionsTracker(country_iso_code=country, output_dir=str(out_dir), log_level="error",
                                          project_name="flopcast-calibrate", measure_power_secs=15)
        tracker.start()
    except Exception as e:
        result.error = f"codecarbon did not start: {type(e).__name__}: {e}"
        log.warning("%s", result.error)
        tracker = None
    try:
        yield result
    finally:
        if tracker is not None:
            try:
                result.kg_co2eq = tracker.stop()
                data = getattr(tracker, "final_emissions_data", None)
                result.energy_kwh = getattr(data, "energy_consumed", None)
                if result.kg_co2eq is None:
                    result.error = "codecarbon returned no emissions"
            except Exception as e:
                result.error = f"codecarbon failed to stop: {type(e).__name__}: {e}"
                log.warning("%s", result.error)
