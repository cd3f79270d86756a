"""The hardware catalog: vendor spec values for known GPUs and generic CPUs, looked up by name or alias.

The data live in ``catalog.json`` next to this module (one row per device); its ``conventions`` field
states what the numbers mean (dense peaks, FLOPs = 2 x MACs, binary GiB).
"""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from flopcast.calibration.descriptor import DescriptorError, HardwareDescriptor

CATALOG_FILE = "catalog.json"


class UnknownHardwareError(ValueError):
    """A hardware name matches no catalog entry or alias (the message lists close matches)."""


def _normalise(name: str) -> str:
    """Catalog key form: lower case, runs of spaces and underscores become one hyphen."""
    return re.sub(r"[\s_]+", "-", name.strip().lower())


@lru_cache(maxsize=1)
def _raw_catalog() -> dict[str, Any]:
    text = resources.files("flopcast.calibration").joinpath(CATALOG_FILE).read_text()
    return json.loads(text)


@lru_cache(maxsize=1)
def _entries() -> dict[str, HardwareDescriptor]:
    raw = _raw_catalog()
    entries: dict[str, HardwareDescriptor] = {}
    for row in raw["hardware"]:
        try:
            desc = HardwareDescriptor.from_dict(row)
        except DescriptorError as e:
            raise DescriptorError(f"{CATALOG_FILE} entry {row.get('name', '?')!r}: {e}") from None
        if desc.name in entries:
            raise DescriptorError(f"{CATALOG_FILE}: duplicate entry {desc.name!r}")
        entries[desc.name] = desc
    for alias, target in raw.get("aliases", {}).items():
        if target not in entries:
            raise DescriptorError(f"{CATALOG_FILE}: alias {alias!r} points to unknown entry {target!r}")
    return entries


def load_catalog() -> dict[str, HardwareDescriptor]:
    """All catalog entries by id.

    Returns:
        A new dict (catalog id -> descriptor) on every call; the descriptors are frozen and shared.

    Raises:
        DescriptorError: if the shipped catalog is malformed (a packaging bug, loud on purpose).

    """
    return dict(_entries())


def catalog_aliases() -> dict[str, str]:
    """Short names accepted by :func:`get_hardware` (``h100`` -> ``h100-sxm``)."""
    return dict(_raw_catalog().get("aliases", {}))


def catalog_section(key: str) -> dict[str, Any]:
    """A top-level section of ``catalog.json`` other than the devices (``interconnects``), as stored."""
    return dict(_raw_catalog().get(key, {}))


def _looks_like_path(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or text.endswith(".json") or "/" in text or "\\" in text


def get_hardware(name_or_path: str | Path) -> HardwareDescriptor:
    """Resolve a catalog id, an alias or a descriptor JSON file.

    Names are case-insensitive; spaces and underscores count as hyphens (``H100_SXM`` is ``h100-sxm``).

    Args:
        name_or_path: catalog id (``h100-sxm``), alias (``h100``, ``a100``, ``cpu``) or path to a JSON
            descriptor (as written by ``flopcast hardware probe --out``).

    Returns:
        The descriptor.

    Raises:
        UnknownHardwareError: if the name is neither a catalog id, an alias nor an existing file.
        DescriptorError: if the file exists but is not a valid descriptor.

    """
    path = Path(name_or_path)
    if path.is_file():
        return HardwareDescriptor.load(path)
    if _looks_like_path(name_or_path):
        raise DescriptorError(f"hardware descriptor file not found: {path}")
    entries = _entries()
    key = _normalise(str(name_or_path))
    key = catalog_aliases().get(key, key)
    if key in entries:
        return entries[key]
    candidates = sorted(set(entries) | set(catalog_aliases()))
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownHardwareError(
        f"unknown hardware {str(name_or_path)!r}{hint} (see `flopcast hardware list`, or pass a descriptor file)"
    )


def match_vendor_name(vendor_name: str) -> str | None:
    """Map a driver-reported device name (NVML, ROCm) to a catalog id.

    Args:
        vendor_name: e.g. ``NVIDIA H100 80GB HBM3`` from ``nvmlDeviceGetName``.

    Returns:
        The catalog id, or ``None`` when no entry has that vendor name (case and spacing ignored).

    """
    wanted = " ".join(vendor_name.split()).lower()
    for name, desc in _entries().items():
        if " ".join(desc.vendor_name.split()).lower() == wanted:
            return name
    return None
