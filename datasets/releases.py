"""Which devices the released data holds, and who measured them (for ``hardware list`` and ``predict``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from flopcast.datasets.loader import DATASETS_DIR, hardware_folders

OWN = "flopcast"
"""``measured_by`` of a device measured by a flopcast campaign."""


@dataclass(frozen=True)
class ReleasedDevice:
    """One released device folder.

    Attributes:
        name: the device (descriptor) name.
        folder: its folder.
        measured_by: who measured it: :data:`OWN`, or the external source its descriptor names.
        op_rows: microbenchmark rows.
        steps: measured step rows.
    """

    name: str
    folder: Path
    measured_by: str
    op_rows: int
    steps: int

    @property
    def external(self) -> bool:
        """Whether someone else measured it (imported public data)."""
        return self.measured_by != OWN

    def describe(self) -> str:
        """One line: who measured it and how much (``NeuSight (external): 53343 ops, 11 steps``)."""
        return f"{self.measured_by}: {self.op_rows} ops, {self.steps} steps"


def _rows(path: Path) -> int:
    return pq.read_metadata(path).num_rows if path.is_file() else 0


def released_devices(root: Path = DATASETS_DIR) -> dict[str, ReleasedDevice]:
    """Every device folder under ``root``, by device name (unreadable folders are skipped)."""
    out = {}
    for folder in hardware_folders([root]):
        try:
            descriptor = json.loads((folder / "descriptor.json").read_text())
        except (OSError, ValueError):
            continue
        name = str(descriptor.get("name", folder.name))
        by = (descriptor.get("extra") or {}).get("measured_by") or OWN
        out[name] = ReleasedDevice(name, folder, str(by), _rows(folder / "microbench.parquet"),
                                   _rows(folder / "steps.parquet"))
    return out
