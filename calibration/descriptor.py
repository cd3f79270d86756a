"""The hardware descriptor: what the predictor knows of a CPU or GPU (spec values and measured ceilings)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8")
REQUIRED_FIELDS = ("name", "kind", "peak_flops_per_s", "memory_bandwidth_bytes_per_s", "memory_bytes")


class DescriptorError(ValueError):
    """A descriptor file or entry is missing fields or holds invalid values."""


@dataclass(frozen=True)
class HardwareDescriptor:
    """Static and measured facts about one device.

    Attributes:
        name: catalog id (``h100-sxm``) or probed name (``local-cpu-<model>``).
        kind: ``gpu``, ``cpu`` or ``other``.
        peak_flops_per_s: dense peak FLOP/s per dtype key of :data:`DTYPES`.
        memory_bandwidth_bytes_per_s: device (or DRAM) memory bandwidth, bytes/s.
        memory_bytes: device (or host) memory size, bytes.
        compute_units: SMs, CUs or CPU cores.
        clock_hz: boost clock, Hz.
        tdp_w: board or package power limit, W.
        interconnect: host/peer link description (``NVLink 4 900 GB/s``, ``PCIe 5 x16``).
        source: where the spec values come from (URL or ``probe``).
        vendor_name: the name the vendor or driver reports (``NVIDIA H100 80GB HBM3``).
        calibrated: whether the measured fields below come from a campaign on this device.
        idle_power_w: measured idle power, W.
        launch_overhead_s: measured time of a tiny op (dispatch + launch), s.
        measured_peak_flops_per_s: measured dense matmul throughput per dtype, FLOP/s.
        measured_bandwidth_bytes_per_s: measured device-memory copy bandwidth (read + write), bytes/s.
        measured_first_touch_bytes_per_s: a CPU's measured rate of writing freshly mapped memory (outputs of
            >= 32 MiB fault in their pages on every step: :mod:`flopcast.predictor.first_touch`), bytes/s;
            ``None``: not measured, or no cost measurable.
        extra: free-form probe facts (ISA flags, threads, driver and CUDA versions).
    """

    name: str
    kind: str
    peak_flops_per_s: dict[str, float]
    memory_bandwidth_bytes_per_s: float
    memory_bytes: float
    compute_units: int = 0
    clock_hz: float = 0.0
    tdp_w: float = 0.0
    interconnect: str = ""
    source: str = ""
    vendor_name: str = ""
    calibrated: bool = False
    idle_power_w: float | None = None
    launch_overhead_s: float | None = None
    measured_peak_flops_per_s: dict[str, float] = field(default_factory=dict)
    measured_bandwidth_bytes_per_s: float | None = None
    measured_first_touch_bytes_per_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def peak_for(self, dtype: str) -> float:
        """Peak FLOP/s for a torch-style dtype name (``float32``, ``bfloat16``) or a :data:`DTYPES` key.

        Falls back to fp32 where the dtype has no entry (integer and boolean work included).
        """
        key = DTYPE_KEYS.get(dtype, dtype)
        return float(self.peak_flops_per_s.get(key) or self.peak_flops_per_s.get("fp32") or 0.0)

    def with_measurements(self, **measured: Any) -> HardwareDescriptor:
        """Copy with measured fields set and ``calibrated`` true."""
        return replace(self, calibrated=True, **measured)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareDescriptor:
        """Build from a dict, naming every missing required field.

        Raises:
            DescriptorError: if required fields are missing or unknown fields are present.
        """
        missing = [f for f in REQUIRED_FIELDS if f not in data]
        if missing:
            raise DescriptorError(f"descriptor is missing field(s): {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DescriptorError(f"descriptor has unknown field(s): {', '.join(unknown)}")
        if data["kind"] not in ("gpu", "cpu", "other"):
            raise DescriptorError(f"descriptor kind must be gpu, cpu or other, not {data['kind']!r}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Write as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> HardwareDescriptor:
        """Read a JSON descriptor file.

        Raises:
            DescriptorError: if the file is not valid JSON or misses fields.
        """
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise DescriptorError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        return cls.from_dict(data)


DTYPE_KEYS = {
    "float64": "fp64",
    "float32": "fp32",
    "tf32": "tf32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "float8_e4m3fn": "fp8",
    "float8_e5m2": "fp8",
    "int8": "int8",
    "uint8": "int8",
}

TF32_CATEGORIES = ("matmul", "conv", "attention", "rnn")
"""Op categories whose fp32 work runs on tensor cores as TF32 when TF32 is enabled on a GPU."""


def peak_key(dtype: str, category: str, precision: str, kind: str, has_tf32: bool = True) -> str:
    """Descriptor dtype key of the peak FLOP/s that bounds one op.

    fp32 matmul-like ops use ``tf32`` under ``--precision tf32`` on a GPU. fp32 convolutions on a GPU use
    ``tf32`` at every precision but ``fp32-strict`` (an fp32 convolution left in a ``bf16`` step too): cuDNN runs
    them as TF32 by default (``torch.backends.cudnn.allow_tf32`` is on, unlike
    ``torch.backends.cuda.matmul.allow_tf32``); ``fp32-strict`` is fp32 with both switched off,
    as microbenchmark rows of dtype ``float32`` and published fp32 benchmarks run. A GPU without TF32 tensor
    cores (``has_tf32`` false: Volta, Turing, Pascal) runs them on its fp32 peak.

    Args:
        dtype: torch dtype name of the op (``float32``) or ``tf32``.
        category: op category (``matmul``, ``conv``, ...).
        precision: step precision (``fp32``, ``fp32-strict``, ``tf32``, ``bf16``, ``fp16``, ``bf16-pure``,
            ``fp16-pure``).
        kind: ``gpu`` or ``cpu``.
        has_tf32: whether the device has a TF32 peak.
    """
    key = DTYPE_KEYS.get(dtype, dtype)
    if key == "tf32" and not has_tf32:
        return "fp32"
    if key != "fp32" or kind != "gpu" or not has_tf32 or category not in TF32_CATEGORIES:
        return key
    if precision == "tf32" or (category == "conv" and precision != "fp32-strict"):
        return "tf32"
    return key
