"""Release a calibration campaign folder as a ``datasets/<hardware-id>/`` folder.

Reads the campaign's tables the way the loader does (parquet exports, else the JSONL rows, shards merged),
optionally renames the device (cloud VMs of one brand probe to one name, ``local-cpu-amd-epyc``, across CPU
generations, and two released folders must not name one device), and writes ``descriptor.json``,
``microbench.parquet``, ``steps.parquet`` (zstd) and a ``meta.json`` whose campaigns, dates and versions come
from the rows themselves.

Run: ``python -m flopcast.datasets.release RUN datasets/<folder> --name NEW-NAME --device "what it is"
--command "how it was measured" [--notes ...]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flopcast.datasets.loader import TABLES, DatasetError, read_table
from flopcast.datasets.schema import SCHEMA_VERSION


@dataclass(frozen=True)
class ReleaseConfig:
    """What ``release`` is asked to do.

    Attributes:
        campaign: a ``flopcast calibrate --out`` folder.
        dest: the new ``datasets/<hardware-id>`` folder (must not hold a descriptor yet).
        name: new device name for the descriptor and every row; ``None`` keeps the probed one.
        device: one line on the device (model, cores, memory, where it ran).
        command: the commands that measured it.
        notes: caveats (noise, curation).
    """

    campaign: Path
    dest: Path
    name: str | None
    device: str
    command: str
    notes: str = ""


def _versions(frames: list[pd.DataFrame], column: str) -> str | None:
    values = sorted({str(v) for f in frames for v in f[column].dropna().unique() if str(v)})
    return ", ".join(values) if values else None


def release_meta(descriptor: dict[str, Any], tables: dict[str, pd.DataFrame], config: ReleaseConfig
                 ) -> dict[str, Any]:
    """``meta.json`` of a release: provenance read from the rows, descriptions from ``config``."""
    frames = [t for t in tables.values() if len(t)]
    times = pd.to_datetime(pd.concat([f["measured_at"] for f in frames]), utc=True, format="ISO8601")
    meta: dict[str, Any] = {
        "schema_version": f"{SCHEMA_VERSION}.0",
        "hardware": descriptor["name"],
        "device": config.device,
        "campaigns": sorted({str(c) for f in frames for c in f["campaign"].dropna().unique()}),
        "measured_from": times.min().isoformat(),
        "measured_to": times.max().isoformat(),
        "command": config.command,
        "rows": {name: len(t) for name, t in tables.items()},
    }
    for column in ("flopcast_version", "torch_version", "cuda_version", "driver_version"):
        value = _versions(frames, column)
        if value:
            meta[column] = value
    meta["energy_source"] = _versions(frames, "energy_source") or "none"
    if config.notes:
        meta["notes"] = config.notes
    return meta


def release(config: ReleaseConfig) -> dict[str, Any]:
    """Write the release folder; returns its ``meta.json`` content.

    Raises:
        DatasetError: no descriptor or no rows in the campaign, or a destination that already holds one.
    """
    src, dest = Path(config.campaign), Path(config.dest)
    try:
        descriptor = json.loads((src / "descriptor.json").read_text())
    except FileNotFoundError:
        raise DatasetError(f"{src}: no descriptor.json (not a calibration folder)") from None
    if (dest / "descriptor.json").exists():
        raise DatasetError(f"{dest} already holds a released device; choose a new folder")
    name = config.name or str(descriptor["name"])
    descriptor = {**descriptor, "name": name}
    tables = {t: read_table(src, t, {}).assign(hardware=name) for t in TABLES}
    if not any(len(t) for t in tables.values()):
        raise DatasetError(f"{src}: no measured rows to release")
    meta = release_meta(descriptor, tables, config)
    dest.mkdir(parents=True, exist_ok=True)
    for table, df in tables.items():
        df.to_parquet(dest / f"{table}.parquet", index=False, compression="zstd")
    (dest / "descriptor.json").write_text(json.dumps(descriptor, indent=2, sort_keys=True) + "\n")
    (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    """``python -m flopcast.datasets.release``: one line per outcome, exit 2 on bad input."""
    p = argparse.ArgumentParser(prog="python -m flopcast.datasets.release", description=__doc__.splitlines()[0])
    p.add_argument("campaign", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--name", help="device name for the release (default: the probed one)")
    p.add_argument("--device", required=True, help="one line on the device")
    p.add_argument("--command", required=True, help="the commands that measured it")
    p.add_argument("--notes", default="")
    a = p.parse_args(argv)
    try:
        meta = release(ReleaseConfig(a.campaign, a.dest, a.name, a.device, a.command, a.notes))
    except DatasetError as e:
        print(f"release: error: {e}", file=sys.stderr)
        return 2
    print(f"{a.dest}: {meta['hardware']}, {meta['rows']['microbench']} op rows, {meta['rows']['steps']} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
