"""A lab's GPU pool for ``flopcast suggest``: a YAML file listing GPU types with their SLURM names and prices.

Format (``gpus`` is required; each entry needs ``hardware``, ``partition`` and ``gres``)::

    gpus:
      - hardware: a100-80gb      # catalog name or alias, or a descriptor file (relative to this file)
        partition: gpu-a100      # SLURM partition
        gres: a100               # SLURM gres name: --gres=gpu:<gres>:<n>
        per_node: 4              # GPUs per node (1)
        price_per_gpu_hour: 2.1  # optional: ranks by --objective cost
        cpus_per_gpu: 8          # optional: --cpus-per-task (or cpus_per_node / per_node)
        mem_per_gpu_gb: 64       # optional: --mem (default: derived from the predicted peak)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flopcast.calibration.catalog import get_hardware
from flopcast.calibration.descriptor import HardwareDescriptor

REQUIRED = ("hardware", "partition", "gres")
OPTIONAL = ("per_node", "price_per_gpu_hour", "cpus_per_gpu", "cpus_per_node", "mem_per_gpu_gb")


class PoolError(ValueError):
    """A pool file that cannot be read or names something wrong (the file and entry are named)."""


@dataclass(frozen=True)
class PoolGPU:
    """One GPU type of a pool.

    Attributes:
        hardware: the catalog name or descriptor path as ``--hardware`` takes it (paths made absolute).
        descriptor: the resolved descriptor.
        partition: SLURM partition.
        gres: SLURM gres name of the GPU.
        per_node: GPUs per node.
        price_per_gpu_hour: price of one GPU for one hour (any currency; ``None``: not given).
        cpus_per_gpu: CPU cores to request per GPU (``None``: not given).
        mem_per_gpu_gb: host memory to request per GPU, GB (``None``: derived from the prediction).
    """

    hardware: str
    descriptor: HardwareDescriptor
    partition: str
    gres: str
    per_node: int = 1
    price_per_gpu_hour: float | None = None
    cpus_per_gpu: int | None = None
    mem_per_gpu_gb: float | None = None

    @property
    def name(self) -> str:
        """The device's name (``a100-80gb``)."""
        return self.descriptor.name


def _number(entry: dict[str, Any], key: str, where: str, integer: bool = False) -> Any:
    value = entry.get(key)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if not ok or (integer and int(value) != value):
        kind = "a whole number" if integer else "a number"
        raise PoolError(f"{where}: {key} must be {kind} > 0, not {value!r}")
    return int(value) if integer else float(value)


def _gpu(entry: Any, i: int, path: Path) -> PoolGPU:
    where = f"{path}: gpus[{i}]"
    if not isinstance(entry, dict):
        raise PoolError(f"{where} must be a mapping with {', '.join(REQUIRED)}")
    missing = [k for k in REQUIRED if not entry.get(k)]
    if missing:
        raise PoolError(f"{where} is missing {', '.join(missing)}")
    unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise PoolError(f"{where} has unknown field(s) {', '.join(unknown)} (known: {', '.join(REQUIRED + OPTIONAL)})")
    name = str(entry["hardware"])
    relative = path.parent / name
    hardware = str(relative) if (name.endswith(".json") or "/" in name) and relative.is_file() else name
    try:
        descriptor = get_hardware(hardware)
    except ValueError as e:
        raise PoolError(f"{where}: {e}") from None
    per_node = _number(entry, "per_node", where, integer=True) or 1
    cpus = _number(entry, "cpus_per_gpu", where, integer=True)
    per_node_cpus = _number(entry, "cpus_per_node", where, integer=True)
    if cpus is None and per_node_cpus is not None:
        cpus = max(per_node_cpus // per_node, 1)
    return PoolGPU(hardware, descriptor, str(entry["partition"]), str(entry["gres"]), per_node,
                   _number(entry, "price_per_gpu_hour", where), cpus, _number(entry, "mem_per_gpu_gb", where))


def load_pool(path: Path) -> tuple[PoolGPU, ...]:
    """The GPU types of a pool file, each resolved to its descriptor.

    Raises:
        PoolError: no such file, not YAML, no ``gpus`` list, an entry missing a field or with a bad value, an
            unknown GPU (close catalog names listed), or one GPU type listed twice.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise PoolError(f"pool file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise PoolError(f"{path}: not valid YAML{at} ({getattr(e, 'problem', None) or 'parse error'})") from None
    if not isinstance(data, dict) or not isinstance(data.get("gpus"), list) or not data["gpus"]:
        raise PoolError(f"{path}: expected a mapping with a non-empty list 'gpus' (see `flopcast suggest --help`)")
    gpus = tuple(_gpu(e, i, path) for i, e in enumerate(data["gpus"]))
    names = [g.name for g in gpus]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PoolError(f"{path}: GPU type(s) listed twice: {', '.join(twice)}")
    return gpus
