"""The ``flopcast hardware`` subcommands: ``list``, ``show NAME`` and ``probe [--out FILE] [--measure]``.

Each handler is set as ``func`` on its parser and returns an exit code; errors are ``ValueError``
subclasses with one clear message, which the top-level CLI prints as one line (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from flopcast.calibration.catalog import get_hardware, load_catalog
from flopcast.calibration.ceilings import measure_ceilings
from flopcast.calibration.descriptor import DTYPES, HardwareDescriptor
from flopcast.calibration.fitted_table import Column, fitted, layouts
from flopcast.calibration.identity import same_device
from flopcast.calibration.probe import probe_local
from flopcast.calibration.user_store import StoredCalibration, calibrations_dir, list_calibrations
from flopcast.datasets.releases import released_devices

TERA = 1e12
GIB = 2**30


@dataclass(frozen=True)
class ProbeConfig:
    """Options of ``flopcast hardware probe``.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        out: descriptor JSON to write (the first GPU, else the CPU), or ``None``.
        measure: measure ceilings and store them in the descriptor(s).
        quick: smaller ceiling benchmarks.

    """

    device: str = "auto"
    out: Path | None = None
    measure: bool = False
    quick: bool = False


def _tflops(value: float | None) -> str:
    return f"{value / TERA:.4g}" if value else "-"


def _tib(d: HardwareDescriptor) -> str:
    return f"{d.memory_bytes / GIB:.0f}"


CATALOG_COLUMNS: tuple[Column[HardwareDescriptor], ...] = (
    Column("name", lambda d: d.name),
    Column("kind", lambda d: d.kind),
    Column("vendor name", lambda d: d.vendor_name),
    Column("fp32 TF/s", lambda d: _tflops(d.peak_flops_per_s.get("fp32")), numeric=True),
    Column("bf16 TF/s", lambda d: _tflops(d.peak_flops_per_s.get("bf16")), numeric=True),
    Column("fp8 TF/s", lambda d: _tflops(d.peak_flops_per_s.get("fp8")), numeric=True),
    Column("BW TB/s", lambda d: _tflops(d.memory_bandwidth_bytes_per_s), numeric=True),
    Column("mem GiB", _tib, numeric=True),
    Column("TDP W", lambda d: f"{d.tdp_w:.0f}" if d.tdp_w else "-", numeric=True),
)
CATALOG_DROP_ORDER = ("fp8 TF/s", "TDP W", "bf16 TF/s", "BW TB/s", "kind", "mem GiB", "fp32 TF/s", "data")
"""Columns left out, in this order, where the table does not fit the terminal (names never are)."""


def data_column() -> Column[HardwareDescriptor]:
    """The ``data`` column: what the released data holds of a device.

    Measured (by a flopcast campaign or an imported public one, with its row counts), or ``spec sheet``: the
    shipped model prices it from its spec sheet alone.
    """
    released = {d.name: d for d in released_devices().values()}
    by_vendor = {str(json.loads((d.folder / "descriptor.json").read_text()).get("vendor_name", "")): d
                 for d in released.values()}

    def cell(d: HardwareDescriptor) -> str:
        r = released.get(d.name) or (by_vendor.get(d.vendor_name) if d.vendor_name else None)
        return r.describe() if r else "spec sheet"

    return Column("data", cell)


def hardware_table(descriptors: list[HardwareDescriptor], title: str, console: Console) -> Table:
    """One row per device: kind, vendor name, peaks (TFLOP/s), bandwidth (TB/s), memory (GiB), TDP, data.

    Dense peaks; ``data``: what the shipped model knows of it (measured, by whom, or the spec sheet alone).

    Laid out for ``console``'s width without ever cutting a name (:mod:`flopcast.calibration.fitted_table`).
    """
    columns = (*CATALOG_COLUMNS, data_column())
    return fitted(console, layouts(title, descriptors, columns, "vendor name", CATALOG_DROP_ORDER))


STORE_COLUMNS: tuple[Column[tuple[StoredCalibration, bool]], ...] = (
    Column("name", lambda e: e[0].name),
    Column("kind", lambda e: str(e[0].descriptor.get("kind", ""))),
    Column("vendor name", lambda e: str(e[0].descriptor.get("vendor_name", ""))),
    Column("op rows", lambda e: str(e[0].rows.get("microbench", 0)), numeric=True),
    Column("steps", lambda e: str(e[0].rows.get("steps", 0)), numeric=True),
    Column("filed", lambda e: e[0].stored_at[:16].replace("T", " ")),
    Column("this machine", lambda e: "yes: --hardware local" if e[1] else "no"),
)


def store_table(entries: list[StoredCalibration], console: Console) -> Table:
    """The calibrations in the per-user store, and which one ``predict --hardware local`` uses here."""
    local = probe_local()
    rows = [(e, any(same_device(d, e.name, e.descriptor) for d in local[:1])) for e in entries]
    title = f"calibrated with `flopcast calibrate` ({calibrations_dir()})"
    return fitted(console, layouts(title, rows, STORE_COLUMNS, "vendor name", ("filed", "kind")))


def descriptor_table(d: HardwareDescriptor) -> Table:
    """Every field of one descriptor, with units, measured values beside the spec ones."""
    table = Table(title=d.name, show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key in ("kind", "vendor_name", "compute_units", "interconnect", "source", "calibrated"):
        table.add_row(key, str(getattr(d, key)))
    table.add_row("clock", f"{d.clock_hz / 1e9:.3g} GHz")
    table.add_row("memory", f"{d.memory_bytes / GIB:.1f} GiB")
    table.add_row("tdp", f"{d.tdp_w:.0f} W")
    measured_bw = d.measured_bandwidth_bytes_per_s
    table.add_row(
        "bandwidth",
        f"{d.memory_bandwidth_bytes_per_s / TERA:.3g} TB/s"
        + (f" (measured {measured_bw / TERA:.3g})" if measured_bw else ""),
    )
    for dtype in DTYPES:
        peak, measured = d.peak_flops_per_s.get(dtype), d.measured_peak_flops_per_s.get(dtype)
        if peak or measured:
            table.add_row(
                f"peak {dtype}",
                f"{_tflops(peak)} TFLOP/s" + (f" (measured {_tflops(measured)})" if measured else ""),
            )
    if d.launch_overhead_s is not None:
        table.add_row("launch overhead", f"{d.launch_overhead_s * 1e6:.1f} µs")
    if d.idle_power_w is not None:
        table.add_row("idle power", f"{d.idle_power_w:.1f} W")
    if d.measured_first_touch_bytes_per_s:
        table.add_row("first touch", f"{d.measured_first_touch_bytes_per_s / 1e9:.3g} GB/s (measured: fresh outputs "
                      ">= 32 MiB)")
    for key, value in sorted(d.extra.items()):
        table.add_row(f"extra.{key}", str(value))
    return table


def cmd_list(args: argparse.Namespace) -> int:
    """Print the catalog, then the devices calibrated in the per-user store (an unusable entry: one line each)."""
    console = Console()
    console.print(hardware_table(list(load_catalog().values()), "flopcast hardware catalog (dense peaks)", console))
    entries, problems = list_calibrations()
    if entries:
        console.print(store_table(entries, console))
    for problem in problems:
        print(f"flopcast: warning: ignoring a stored calibration: {problem}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print one catalog entry or descriptor file (unknown names raise ``UnknownHardwareError``)."""
    Console().print(descriptor_table(get_hardware(args.name)))
    return 0


def run_probe(config: ProbeConfig) -> list[HardwareDescriptor]:
    """Probe (and optionally measure) the local devices; write ``config.out`` when set.

    Returns:
        The descriptors, GPUs first.

    """
    descriptors = probe_local(config.device)
    if config.measure:
        descriptors = [
            d.with_measurements(**measure_ceilings(_torch_device(d), quick=config.quick)) for d in descriptors
        ]
    if config.out is not None:
        descriptors[0].save(config.out)
    return descriptors


def _torch_device(d: HardwareDescriptor) -> str:
    return f"cuda:{d.extra.get('cuda_index', d.extra.get('nvml_index', 0))}" if d.kind == "gpu" else "cpu"


def cmd_probe(args: argparse.Namespace) -> int:
    """Probe the local machine and print (and write) its descriptors."""
    config = ProbeConfig(device=args.device, out=args.out, measure=args.measure, quick=args.quick)
    console = Console()
    descriptors = run_probe(config)
    for d in descriptors:
        console.print(descriptor_table(d))
    if config.out is not None:
        console.print(f"wrote {descriptors[0].name} to {config.out}")
    return 0


def add_hardware_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``hardware list | show NAME | probe`` to a ``flopcast`` subparsers object.

    Every leaf parser gets ``func`` (``Namespace -> exit code``) as a default.

    Returns:
        The ``hardware`` parser.

    """
    hardware = subparsers.add_parser("hardware", help="list, show or probe hardware descriptors")
    commands = hardware.add_subparsers(dest="hardware_command", required=True)
    commands.add_parser("list", help="list the catalog and this user's calibrated devices").set_defaults(func=cmd_list)
    show = commands.add_parser("show", help="show one catalog entry or descriptor file")
    show.add_argument("name", help="catalog id or alias (h100, a100, cpu) or a descriptor JSON file")
    show.set_defaults(func=cmd_show)
    probe = commands.add_parser("probe", help="describe the local GPUs and CPU")
    probe.add_argument("--device", default="auto", help="auto (all), cpu, cuda or cuda:N")
    probe.add_argument("--out", type=Path, help="write the descriptor (first GPU, else CPU) as JSON")
    probe.add_argument("--measure", action="store_true", help="also measure ceilings (matmul, copy, launch, idle)")
    probe.add_argument("--quick", action="store_true", help="smaller ceiling benchmarks (with --measure)")
    probe.set_defaults(func=cmd_probe)
    return hardware
