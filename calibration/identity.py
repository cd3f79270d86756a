"""Whether two descriptors describe the same device: the one rule behind "calibrated" everywhere.

The cost model uses it to find a trained device (``CostModel.trained_name``), the per-user calibration
store to find this machine's campaign; both must agree, or a device would count as calibrated in one place
and not in the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from flopcast.calibration.descriptor import HardwareDescriptor

CPU_IDENTITY_EXTRA = ("cpu_family", "flops_per_cycle_per_core")
"""``extra`` facts that tell CPUs of one probed name apart (generation, vector width)."""


def same_device(d: HardwareDescriptor, name: str, desc: Mapping[str, Any]) -> bool:
    """Whether ``d`` is the device of a stored descriptor ``desc`` (named ``name`` where it was stored).

    Same name, or same vendor name, and the same kind. A CPU must also be the same processor
    (:func:`same_cpu`): CPU descriptors are named by vendor and brand (``local-cpu-amd-epyc``), which
    cloud VMs share across generations and core counts.

    Args:
        d: the device asked about (probed, or from the catalog).
        name: the name the other device is stored under (a trained model's key, a campaign's name).
        desc: the other device's descriptor as a dict (``HardwareDescriptor.to_dict`` or its JSON).
    """
    same = d.name == name or (bool(d.vendor_name) and desc.get("vendor_name") == d.vendor_name)
    return same and desc.get("kind") == d.kind and (d.kind != "cpu" or same_cpu(d, desc))


def same_cpu(d: HardwareDescriptor, desc: Mapping[str, Any]) -> bool:
    """Whether a CPU descriptor matches another CPU's: core count, CPU family, FLOPs per cycle (unknowns match).

    A 2-core Zen 5 VM's measurements do not calibrate a 64-core server or a Zen 3 VM of the same brand.
    """
    theirs_cores = desc.get("compute_units")
    if theirs_cores and d.compute_units and int(theirs_cores) != int(d.compute_units):
        return False
    mine, theirs = d.extra or {}, desc.get("extra") or {}
    return all(mine.get(k) is None or theirs.get(k) is None or mine[k] == theirs[k] for k in CPU_IDENTITY_EXTRA)


def identity_key(d: HardwareDescriptor) -> str:
    """A short stable key of the facts :func:`same_device` compares (kind, vendor name, cores, CPU extras).

    Two campaigns of one processor get one key, so the newer replaces the older in the store.

    Returns:
        12 hex digits.
    """
    facts: dict[str, Any] = {"kind": d.kind, "vendor_name": d.vendor_name or d.name}
    if d.kind == "cpu":
        facts["compute_units"] = int(d.compute_units or 0)
        facts.update({k: (d.extra or {}).get(k) for k in CPU_IDENTITY_EXTRA})
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
