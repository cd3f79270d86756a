"""Check, on the GPU machine, that the carried wheels in ``.whl/`` work with the packages already there.

Run after installing them (see README.md beside this file)::

    python3 experiments/device/smoke_wheels.py

It prints one line per check and exits non-zero on the first hard failure:

1. requirement conflicts: every ``Requires-Dist`` of the carried wheels (extras left out, markers evaluated
   here) against the versions importable now, the machine's own packages included;
2. MLflow through ``flopcast.calibration.tracking``: default URI, then a SQLite store in a temporary
   folder with params, metrics, a tag and a parquet artifact, read back;
3. CodeCarbon's ``OfflineEmissionsTracker`` (``FRA``) through ``track_emissions`` and the ``codecarbon-tdp``
   meter's imports.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

WHEEL_DIR = Path(__file__).resolve().parents[2] / ".whl"


def carried() -> list[str]:
    """Distribution names of the wheels in ``.whl/``."""
    return sorted(canonicalize_name(w.name.split("-")[0]) for w in WHEEL_DIR.glob("*.whl"))


def check_requirements(names: list[str]) -> list[str]:
    """Unmet requirements of the carried distributions, as readable lines."""
    problems = []
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}: carried but not importable (install step failed?)")
            continue
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{name} needs {req}: missing")
                continue
            if req.specifier and not req.specifier.contains(have, prereleases=True):
                problems.append(f"{name} needs {req}: found {have}")
    return problems


def check_mlflow(tmp: Path) -> None:
    """Log a run to a SQLite store and read it back."""
    import pandas as pd

    from flopcast.calibration.tracking import CampaignRun, check_reachable, resolve_uri

    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        print("mlflow default uri:", resolve_uri(None))
    finally:
        os.chdir(cwd)
    uri = f"sqlite:///{tmp}/mlflow.db"
    check_reachable(uri)
    table = tmp / "microbench.parquet"
    pd.DataFrame({"op": ["matmul"], "time_s": [1.5e-3]}).to_parquet(table)
    run = CampaignRun(uri, "smoke-wheels", "smoke")
    run.log_params({"hardware": "smoke", "n_tasks": "1"})
    run.log_metrics({"time_s": 1.5e-3, "skipped": None})
    run.set_tags({"flopcast.smoke": "1"})
    run.log_artifacts([table])
    run.end()
    got = run.client.get_run(run.run_id)
    arts = [a.path for a in run.client.list_artifacts(run.run_id)]
    assert got.info.status == "FINISHED", got.info.status
    assert got.data.params["hardware"] == "smoke" and got.data.metrics["time_s"] == 1.5e-3, got.data
    assert "microbench.parquet" in arts, arts
    print(f"mlflow ok: run {run.run_id} at {uri}, artifacts {arts}")


def check_codecarbon(tmp: Path) -> None:
    """Start and stop CodeCarbon's offline tracker, as a campaign does."""
    from codecarbon.core.cpu import TDP  # noqa: F401  (the codecarbon-tdp meter's imports)
    from codecarbon.external.hardware import CPU, POWER_CONSTANT  # noqa: F401

    from flopcast.calibration.tracking import track_emissions

    with track_emissions(tmp, "FRA") as em:
        time.sleep(2)
    if em.error:
        raise RuntimeError(em.error)
    print(f"codecarbon ok: {em.kg_co2eq} kg CO2-eq, {em.energy_kwh} kWh, csv {sorted(p.name for p in tmp.iterdir())}")


def main() -> int:
    import codecarbon
    import mlflow

    print("python", sys.version.split()[0], "| mlflow", mlflow.__version__, "| codecarbon", codecarbon.__version__)
    names = carried()
    print(f"{len(names)} carried wheels in {WHEEL_DIR}")
    problems = check_requirements(names)
    for p in problems:
        print("CONFLICT", p)
    with tempfile.TemporaryDirectory() as d:
        check_mlflow(Path(d))
    with tempfile.TemporaryDirectory() as d:
        check_codecarbon(Path(d))
    print("smoke_wheels: ok" if not problems else f"smoke_wheels: ok, with {len(problems)} version conflicts above")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
