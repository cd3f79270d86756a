"""Interconnect descriptors: links between a node's GPUs (NVLink, PCIe) and between nodes (InfiniBand, Ethernet).

They come from the catalog's ``interconnects`` section or a descriptor file with measured bus bandwidths.

A fabric's bus bandwidth is the ``busbw`` of nccl-tests (``doc/PERFORMANCE.md``): the per-GPU rate a collective
reaches whatever the group size, so one figure prices rings of any size. Without a measurement it is what NCCL's
own topology model assigns the path (``nccl_bandwidth_bytes_per_s``, sources in the catalog); a measured busbw
(nccl-tests, ``flopcast calibrate --collectives``) replaces it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from flopcast.calibration.catalog import catalog_section
from flopcast.calibration.descriptor import HardwareDescriptor

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "send_recv")
"""The collectives a bus bandwidth is measured or priced for."""
DEFAULT_NETWORK = "ib-hdr"
"""Inter-node fabric of a GPU whose catalog system does not say (one 200 Gb/s NIC per node): printed as an
assumption whenever a run spans nodes; ``--interconnect INTRA,NETWORK`` or a file names the real one."""


def bus_factor(op: str, ranks: int) -> float:
    """Bytes each rank sends per byte of a collective's size (nccl-tests' busbw / algbw, ``doc/PERFORMANCE.md``).

    Args:
        op: one of :data:`COLLECTIVES`.
        ranks: ranks in the communicator.
    """
    if op == "all_reduce":
        return 2.0 * (ranks - 1) / ranks
    if op in ("all_gather", "reduce_scatter"):
        return (ranks - 1) / ranks
    if op == "send_recv":
        return 1.0
    raise ValueError(f"collective must be one of {COLLECTIVES}, not {op!r}")


FABRIC_FIELDS = ("name", "kind", "scope", "bandwidth_bytes_per_s", "nccl_bandwidth_bytes_per_s")


class UnknownInterconnectError(ValueError):
    """An ``--interconnect`` name the catalog does not know (the known ones listed)."""


class InterconnectError(ValueError):
    """An interconnect that cannot serve the request (no NVLink on that GPU, a malformed file): one line."""


@dataclass(frozen=True)
class Fabric:
    """One kind of link between GPUs.

    Attributes:
        name: catalog name (``nvlink4``, ``pcie5``, ``ib-ndr``) or a file's.
        kind: ``nvlink``, ``pcie``, ``infiniband`` or ``ethernet``.
        scope: ``intra`` (inside a node) or ``inter`` (between nodes).
        bandwidth_bytes_per_s: spec rate per GPU and per direction, bytes/s.
        nccl_bandwidth_bytes_per_s: the bus bandwidth NCCL's topology model gives the path, bytes/s.
        links: NVLink links per GPU, PCIe lanes, or NICs (1).
        max_gpus: GPUs the fabric joins all-to-all (0: any number).
        switch: the switch that joins them, where there is one.
        source: where the figures come from.
        busbw_bytes_per_s: measured bus bandwidth per collective (:data:`COLLECTIVES`), bytes/s; empty: none.
        latency_s: measured latency of a small collective over the fabric, s (``None``: NCCL's model).
        measured_by: who measured ``busbw_bytes_per_s`` (nccl-tests, ``flopcast calibrate --collectives``).
    """

    name: str
    kind: str
    scope: str
    bandwidth_bytes_per_s: float
    nccl_bandwidth_bytes_per_s: float
    links: int = 0
    max_gpus: int = 0
    switch: str = ""
    source: str = ""
    busbw_bytes_per_s: dict[str, float] = field(default_factory=dict)
    latency_s: float | None = None
    measured_by: str = ""

    @property
    def latency_class(self) -> str:
        """NCCL's hardware class of the path for its latency model: ``nvlink``, ``pcie`` or ``net``."""
        return self.kind if self.kind in ("nvlink", "pcie") else "net"

    def busbw(self, op: str) -> float:
        """Bus bandwidth of collective ``op``, bytes/s: measured where given (that op, else all-reduce), else NCCL's."""
        measured = self.busbw_bytes_per_s.get(op) or self.busbw_bytes_per_s.get("all_reduce")
        return float(measured or self.nccl_bandwidth_bytes_per_s)

    @property
    def measured(self) -> bool:
        """Whether a measured bus bandwidth replaces the spec-derived one."""
        return bool(self.busbw_bytes_per_s)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Fabric:
        """Build from a catalog or file entry, naming missing or unknown fields.

        Raises:
            InterconnectError: a field missing, unknown or not positive.
        """
        missing = [k for k in FABRIC_FIELDS if k not in data]
        unknown = sorted(set(data) - {f for f in cls.__dataclass_fields__})
        if missing or unknown:
            what = f"missing {', '.join(missing)}" if missing else f"unknown field(s) {', '.join(unknown)}"
            raise InterconnectError(f"{where}: fabric {data.get('name', '?')!r}: {what}")
        fabric = cls(**data)
        if fabric.bandwidth_bytes_per_s <= 0 or fabric.nccl_bandwidth_bytes_per_s <= 0:
            raise InterconnectError(f"{where}: fabric {fabric.name!r}: bandwidths must be > 0 bytes/s")
        _check_busbw(fabric.busbw_bytes_per_s, where)
        return fabric


@dataclass(frozen=True)
class Interconnect:
    """The links of a cluster of one GPU type: within a node, between nodes, and the node around the GPUs.

    Attributes:
        intra: fabric between the GPUs of a node.
        inter: fabric between nodes.
        gpus_per_node: GPUs a node holds (0: not known).
        nics_per_node: network adapters per node, each at ``inter``'s rate.
        system: catalog system (``dgx-h100``), ``""`` when none.
        max_power_w: the node's maximum power, W (``None``: not known); its share beyond the GPUs is the host's.
        source: where the node's figures come from.
        assumed: one-line assumptions a prediction should print (a default network, say).
    """

    intra: Fabric
    inter: Fabric
    gpus_per_node: int = 0
    nics_per_node: int = 1
    system: str = ""
    max_power_w: float | None = None
    source: str = ""
    assumed: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: the fabrics and whether their bandwidths are measured."""
        def one(f: Fabric) -> str:
            how = f"measured busbw {f.busbw('all_reduce') / 1e9:.0f} GB/s" if f.measured else \
                f"busbw {f.nccl_bandwidth_bytes_per_s / 1e9:.0f} GB/s (NCCL's model of the spec)"
            return f"{f.name} ({how})"
        return f"{one(self.intra)} within a node, {one(self.inter)} x {self.nics_per_node} per node between nodes"


@lru_cache(maxsize=1)
def _section() -> dict[str, Any]:
    return catalog_section("interconnects")


def fabrics() -> dict[str, Fabric]:
    """The catalog's fabrics by name."""
    return {f["name"]: Fabric.from_dict(f, "catalog.json") for f in _section().get("fabrics", [])}


def systems() -> dict[str, dict[str, Any]]:
    """The catalog's systems (a node of one GPU type: GPUs per node, fabrics, NICs, power) by name."""
    return {s["name"]: dict(s) for s in _section().get("systems", [])}


def system_of(gpu: HardwareDescriptor) -> dict[str, Any] | None:
    """The catalog system built around ``gpu`` (matched by catalog name), or ``None``."""
    return next((s for s in systems().values() if gpu.name in s["gpus"]), None)


def native_fabric(gpu: HardwareDescriptor, kind: str) -> Fabric:
    """The GPU's own NVLink generation or PCIe generation, read from its catalog ``interconnect`` text.

    Args:
        gpu: the GPU.
        kind: ``nvlink`` or ``pcie``.

    Raises:
        InterconnectError: the GPU has no such link (or only an NVLink bridge between pairs).
    """
    text = gpu.interconnect or ""
    if kind == "nvlink":
        m = re.search(r"NVLink\s*(\d)", text)
        if m is None:
            bridge = " (only an NVLink bridge between pairs)" if "NVLink bridge" in text else ""
            raise InterconnectError(f"{gpu.name} has no NVLink{bridge}: its links are {text or 'not in the catalog'}; "
                                    "use --interconnect pcie or a descriptor file")
        name = f"nvlink{m.group(1)}"
    else:
        m = re.search(r"PCIe\s*(\d)", text)
        if m is None:
            raise InterconnectError(f"{gpu.name}: the catalog names no PCIe generation ({text or 'no interconnect'}); "
                                    "give --interconnect pcie3|pcie4|pcie5 or a descriptor file")
        name = f"pcie{m.group(1)}"
    known = fabrics()
    if name not in known:
        raise InterconnectError(f"{gpu.name}: {name} is not in the catalog's fabrics ({', '.join(known)})")
    return known[name]


def _fabric(item: str, gpu: HardwareDescriptor, scope: str) -> Fabric:
    known = fabrics()
    key = item.strip().lower()
    if key in ("nvlink", "pcie") and scope == "intra":
        return native_fabric(gpu, key)
    if key in known and known[key].scope == scope:
        return known[key]
    names = [n for n, f in known.items() if f.scope == scope]
    hint = "nvlink, pcie, " if scope == "intra" else ""
    raise UnknownInterconnectError(f"unknown {'intra-node' if scope == 'intra' else 'inter-node'} interconnect "
                                   f"{item!r}: use {hint}{', '.join(names)} or a descriptor file")


def resolve_interconnect(gpu: HardwareDescriptor, text: str | None = None) -> Interconnect:
    """The interconnect of ``--interconnect`` for a cluster of ``gpu``.

    ``None``: the catalog system of the GPU (HGX/DGX boards: NVLink + NVSwitch, InfiniBand NICs) or, without
    one, the GPU's own NVLink or PCIe and :data:`DEFAULT_NETWORK` between nodes. ``nvlink`` / ``pcie``: the GPU's
    own generation; a fabric name; ``INTRA,NETWORK`` (``nvlink,ib-ndr``); or a JSON descriptor file
    (:func:`load_interconnect`).

    Raises:
        UnknownInterconnectError: a name the catalog does not know.
        InterconnectError: a GPU without the named link, a malformed file.
    """
    if text is not None and (text.endswith(".json") or Path(text).is_file()):
        return load_interconnect(Path(text), gpu)
    system = system_of(gpu)
    base = _system_interconnect(gpu, system)
    if text is None:
        return base
    items = [t for t in text.split(",") if t.strip()]
    if not items or len(items) > 2:
        raise UnknownInterconnectError(f"--interconnect {text!r}: give INTRA or INTRA,NETWORK "
                                       "(nvlink, pcie, a fabric name) or a descriptor file")
    intra = _fabric(items[0], gpu, "intra")
    if len(items) == 2:
        return replace(base, intra=intra, inter=_fabric(items[1], gpu, "inter"),
                       assumed=tuple(a for a in base.assumed if "network" not in a))
    return replace(base, intra=intra)


def _system_interconnect(gpu: HardwareDescriptor, system: dict[str, Any] | None) -> Interconnect:
    known = fabrics()
    if system is not None:
        return Interconnect(intra=known[system["intra"]], inter=known[system["inter"]],
                            gpus_per_node=int(system["gpus_per_node"]), nics_per_node=int(system["nics_per_node"]),
                            system=system["name"], max_power_w=float(system["max_power_w"]), source=system["source"])
    try:
        intra = native_fabric(gpu, "nvlink")
    except InterconnectError:
        intra = native_fabric(gpu, "pcie")
    return Interconnect(intra=intra, inter=known[DEFAULT_NETWORK],
                        assumed=(f"network between nodes assumed {DEFAULT_NETWORK}, one NIC per node "
                                 "(--interconnect INTRA,NETWORK names it)",))


def load_interconnect(path: Path, gpu: HardwareDescriptor) -> Interconnect:
    """Read an interconnect descriptor file.

    Keys (all optional but one of ``intra`` / ``busbw_bytes_per_s``): ``intra`` and ``inter`` (a fabric name,
    ``nvlink`` / ``pcie``, or a full fabric object), ``gpus_per_node``, ``nics_per_node``, ``max_power_w``,
    ``busbw_bytes_per_s`` (measured bus bandwidth per collective within a node, e.g. nccl-tests' ``busbw`` of
    ``all_reduce_perf`` at large sizes, in bytes/s), ``inter_busbw_bytes_per_s`` (the same measured across
    nodes), ``latency_s``, ``measured_by``, ``source``. What the file leaves out comes from the GPU's system.

    Raises:
        InterconnectError: the file is missing, not JSON, or holds an unknown key or a bad value.
    """
    if not path.is_file():
        raise InterconnectError(f"interconnect descriptor not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InterconnectError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    allowed = {"name", "intra", "inter", "gpus_per_node", "nics_per_node", "max_power_w", "busbw_bytes_per_s",
               "inter_busbw_bytes_per_s", "latency_s", "measured_by", "source", "rows"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InterconnectError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")
    base = _system_interconnect(gpu, system_of(gpu))

    def fabric(key: str, scope: str, default: Fabric) -> Fabric:
        value = data.get(key)
        if value is None:
            return default
        return Fabric.from_dict(value, str(path)) if isinstance(value, dict) else _fabric(str(value), gpu, scope)

    intra, inter = fabric("intra", "intra", base.intra), fabric("inter", "inter", base.inter)
    by = str(data.get("measured_by") or data.get("source") or path.name)
    for key, scope in (("busbw_bytes_per_s", "intra"), ("inter_busbw_bytes_per_s", "inter")):
        if key in data:
            _check_busbw(data[key], str(path))
            measured = {k: float(v) for k, v in data[key].items()}
            latency = float(data["latency_s"]) if "latency_s" in data and scope == "intra" else None
            if scope == "intra":
                intra = replace(intra, busbw_bytes_per_s=measured, latency_s=latency, measured_by=by)
            else:
                inter = replace(inter, busbw_bytes_per_s=measured, measured_by=by)
    return replace(base, intra=intra, inter=inter,
                   gpus_per_node=int(data.get("gpus_per_node", base.gpus_per_node)),
                   nics_per_node=int(data.get("nics_per_node", base.nics_per_node)),
                   max_power_w=data.get("max_power_w", base.max_power_w),
                   source=str(data.get("source", base.source)),
                   assumed=base.assumed if "inter" not in data and "inter_busbw_bytes_per_s" not in data else ())


def _check_busbw(busbw: Any, where: str) -> None:
    if not isinstance(busbw, dict):
        raise InterconnectError(f"{where}: busbw must map a collective ({', '.join(COLLECTIVES)}) to bytes/s")
    for op, value in busbw.items():
        if op not in COLLECTIVES:
            raise InterconnectError(f"{where}: unknown collective {op!r} in busbw (use {', '.join(COLLECTIVES)})")
        if not isinstance(value, int | float) or value <= 0:
            raise InterconnectError(f"{where}: busbw of {op} must be a number of bytes/s > 0, not {value!r}")
