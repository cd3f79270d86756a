"""The per-user calibration store: ``flopcast calibrate`` files this machine's campaign here, ``predict`` finds it.

One folder per device under ``<home>/calibrations/``, named ``<device name>-<identity key>``
(:func:`flopcast.calibration.identity.identity_key`), holding a copy of the campaign (``descriptor.json``,
the tables) and ``entry.json`` (when, from where, by which version). ``<home>`` is ``$FLOPCAST_HOME`` when
set (tests, CI, a shared cluster home), else the platform's user data dir (``~/.local/share/flopcast`` on
Linux). A campaign of the same device replaces the older one; the device is found by the same rule that
decides ``calibrated`` in the cost model (:func:`flopcast.calibration.identity.same_device`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flopcast.calibration.descriptor import DescriptorError, HardwareDescriptor
from flopcast.calibration.identity import identity_key, same_device
from flopcast.datasets.loader import TABLES, DatasetError, load_datasets, trusted_rows
from flopcast.datasets.schema import SCHEMA_VERSION
from flopcast.features.version import flopcast_version

log = logging.getLogger(__name__)

HOME_ENV = "FLOPCAST_HOME"
"""Environment variable that moves the store (and everything flopcast keeps per user)."""
ENTRY_FILE = "entry.json"
ENTRY_FORMAT = 1
"""Layout version of an entry; an entry of another version is stale."""
CAMPAIGN_FILES = ("descriptor.json", "meta.json", *(f"{t}.parquet" for t in TABLES))
"""Files of a campaign folder copied into an entry (plus its tables' JSONL files)."""


class CalibrationStoreError(ValueError):
    """A campaign cannot be stored (no descriptor, no trusted rows, unwritable home)."""


@dataclass(frozen=True)
class StoredCalibration:
    """One device's campaign in the store.

    Attributes:
        path: the entry's folder (a ``flopcast calibrate --out`` folder in layout: ``predict --calibration``
            takes it as is).
        name: the device's name in its descriptor.
        descriptor: the campaign's descriptor, as stored.
        stored_at: when ``calibrate`` filed it (ISO 8601, UTC).
        source: the campaign folder it was copied from.
        rows: trusted rows per table (``microbench``, ``steps``).
    """

    path: Path
    name: str
    descriptor: dict[str, Any]
    stored_at: str
    source: str
    rows: dict[str, int]


def store_home() -> Path:
    """The per-user folder: ``$FLOPCAST_HOME``, else the platform's user data dir for ``flopcast``."""
    env = os.environ.get(HOME_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("flopcast", appauthor=False))


def calibrations_dir(home: Path | None = None) -> Path:
    """The folder holding one entry per calibrated device."""
    return (home or store_home()) / "calibrations"


def entry_name(d: HardwareDescriptor) -> str:
    """Folder name of ``d``'s entry: its name (path-safe) and its identity key."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in d.name).strip("-.") or "device"
    return f"{safe}-{identity_key(d)}"


def save_campaign(campaign: Path, home: Path | None = None) -> StoredCalibration:
    """Copy a finished campaign folder into the store, replacing the same device's older entry.

    The copy is loaded back before it replaces anything, so a campaign the predictor could not read is
    never filed.

    Args:
        campaign: a ``flopcast calibrate --out`` folder of one device.
        home: the store's home (``None``: :func:`store_home`).

    Returns:
        The new entry.

    Raises:
        CalibrationStoreError: no readable descriptor, no trusted rows, or the store cannot be written.
    """
    campaign = Path(campaign).resolve()
    try:
        d = HardwareDescriptor.load(campaign / "descriptor.json")
    except (OSError, DescriptorError, ValueError) as e:
        raise CalibrationStoreError(f"{campaign}: no readable descriptor.json ({e})") from None
    root = calibrations_dir(home)
    final = root / entry_name(d)
    tmp = root / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        copied = [n for n in CAMPAIGN_FILES if (campaign / n).is_file()]
        copied += sorted(p.name for t in TABLES for p in campaign.glob(f"{t}*.jsonl"))
        for name in copied:
            shutil.copy2(campaign / name, tmp / name)  # mtimes kept: the loader reads the newer of parquet/JSONL
        try:
            data = load_datasets([tmp])
        except (DatasetError, OSError, ValueError) as e:
            raise CalibrationStoreError(f"{campaign}: its tables cannot be read back ({e})") from None
        rows = {t: len(trusted_rows(getattr(data, t))) for t in TABLES}
        if not any(rows.values()):
            raise CalibrationStoreError(f"{campaign}: no trusted rows to calibrate with")
        entry = {"format": ENTRY_FORMAT, "schema_version": SCHEMA_VERSION, "name": d.name,
                 "identity": identity_key(d), "stored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "source": str(campaign), "flopcast_version": flopcast_version(), "rows": rows}
        (tmp / ENTRY_FILE).write_text(json.dumps(entry, indent=2) + "\n")
        old = root / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise CalibrationStoreError(f"cannot write the calibration store at {root}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return read_entry(final)


def read_entry(path: Path) -> StoredCalibration:
    """One entry of the store.

    Raises:
        CalibrationStoreError: an entry that is unreadable (corrupt JSON, missing files) or stale (written by a
            flopcast whose data schema or entry layout differs from this one's).
    """
    try:
        entry = json.loads((path / ENTRY_FILE).read_text())
        descriptor = json.loads((path / "descriptor.json").read_text())
    except FileNotFoundError as e:
        raise CalibrationStoreError(f"{path}: {Path(e.filename).name} is missing") from None
    except (OSError, json.JSONDecodeError) as e:
        raise CalibrationStoreError(f"{path}: unreadable ({e})") from None
    if not isinstance(entry, dict) or not isinstance(descriptor, dict):
        raise CalibrationStoreError(f"{path}: {ENTRY_FILE} or descriptor.json is not a JSON object")
    if entry.get("format") != ENTRY_FORMAT or str(entry.get("schema_version")) != SCHEMA_VERSION:
        raise CalibrationStoreError(f"{path}: stale (stored by flopcast {entry.get('flopcast_version', '?')}, "
                                    f"data schema {entry.get('schema_version', '?')}; this one reads {SCHEMA_VERSION})")
    return StoredCalibration(path, str(descriptor.get("name") or entry.get("name") or path.name), descriptor,
                             str(entry.get("stored_at", "")), str(entry.get("source", "")),
                             {t: int(n) for t, n in (entry.get("rows") or {}).items()})


def list_calibrations(home: Path | None = None) -> tuple[list[StoredCalibration], list[str]]:
    """Every entry of the store, newest first, and one line per entry that cannot be used."""
    root = calibrations_dir(home)
    entries, problems = [], []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    for folder in folders:
        try:
            entries.append(read_entry(folder))
        except CalibrationStoreError as e:
            problems.append(str(e))
    return sorted(entries, key=lambda e: e.stored_at, reverse=True), problems


def find_calibration(d: HardwareDescriptor, home: Path | None = None) -> StoredCalibration | None:
    """The newest stored campaign of device ``d``, else ``None``.

    An unusable entry filed for ``d`` (its folder carries ``d``'s identity key) is reported in one warning
    line and skipped; entries of other devices are not looked at beyond their descriptor.
    """
    root = calibrations_dir(home)
    if not root.is_dir():
        return None
    mine = entry_name(d)
    found: list[StoredCalibration] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            entry = read_entry(folder)
        except CalibrationStoreError as e:
            if folder.name == mine:
                log.warning("flopcast: warning: ignoring this machine's stored calibration: %s; predicting it as "
                            "uncalibrated (rerun `flopcast calibrate` to replace it)", e)
            continue
        if same_device(d, entry.name, entry.descriptor):
            found.append(entry)
    return max(found, key=lambda e: e.stored_at, default=None)
