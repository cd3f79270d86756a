"""The NVML device behind a CUDA device index, matched by PCI bus id.

CUDA numbers the devices a process may see (``CUDA_VISIBLE_DEVICES``, set by every SLURM ``--gres`` job),
NVML numbers every GPU of the machine: ``cuda:0`` of a job given GPU 3 is NVML device 3, and reading
NVML device 0 would meter another job's GPU. The PCI bus id names the same board in both; where torch
cannot give it (no CUDA build), ``CUDA_VISIBLE_DEVICES`` is read (a UUID entry names the board, an
integer entry is taken as its NVML index).
"""

from __future__ import annotations

import os
from typing import Any


class NvmlDeviceError(LookupError):
    """The CUDA device has no NVML device (out of range, or NVML does not know its bus id)."""


def pci_bus_id(cuda_index: int) -> str | None:
    """The PCI bus id of CUDA device ``cuda_index`` in NVML's form (``00000000:1B:00.0``), if torch knows it."""
    import torch

    if not torch.cuda.is_available() or not 0 <= cuda_index < torch.cuda.device_count():
        return None
    props = torch.cuda.get_device_properties(cuda_index)
    bus = getattr(props, "pci_bus_id", None)
    if bus is None:
        return None
    domain, device = int(getattr(props, "pci_domain_id", 0)), int(getattr(props, "pci_device_id", 0))
    return f"{domain:08X}:{int(bus):02X}:{device:02X}.0"


def nvml_handle(nvml: Any, cuda_index: int) -> tuple[Any, int]:
    """The NVML handle and NVML index of CUDA device ``cuda_index``.

    Args:
        nvml: the initialised pynvml module.
        cuda_index: the device's index as CUDA (torch, ``cuda:N``) numbers it.

    Raises:
        NvmlDeviceError: no NVML device matches.
        nvml.NVMLError: NVML refused a query.
    """
    bus = pci_bus_id(cuda_index)
    if bus is not None:
        handle = nvml.nvmlDeviceGetHandleByPciBusId(bus)
        return handle, int(nvml.nvmlDeviceGetIndex(handle))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        if not 0 <= cuda_index < int(nvml.nvmlDeviceGetCount()):
            raise NvmlDeviceError(f"GPU index {cuda_index} out of range: NVML sees {nvml.nvmlDeviceGetCount()} GPU(s)")
        return nvml.nvmlDeviceGetHandleByIndex(cuda_index), cuda_index
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if not 0 <= cuda_index < len(entries):
        raise NvmlDeviceError(f"cuda:{cuda_index} is not visible (CUDA_VISIBLE_DEVICES={visible!r})")
    entry = entries[cuda_index]
    if entry.isdigit():
        return nvml.nvmlDeviceGetHandleByIndex(int(entry)), int(entry)
    handle = nvml.nvmlDeviceGetHandleByUUID(entry)
    return handle, int(nvml.nvmlDeviceGetIndex(handle))


def visible_gpu_count(nvml: Any) -> int:
    """GPUs this process may use: CUDA's count, else ``CUDA_VISIBLE_DEVICES``' entries, else NVML's count."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([e for e in visible.split(",") if e.strip()])
    return int(nvml.nvmlDeviceGetCount())
