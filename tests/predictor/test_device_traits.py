from __future__ import annotations

from flopcast.calibration.catalog import get_hardware
from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.predictor.device_traits import software_stack


def test_catalog_gpus_run_under_their_vendors_stack_and_cpus_under_none():
    assert {software_stack(get_hardware(n)) for n in ("h100-sxm", "l4", "t4", "p100-pcie-16gb")} == {"cuda"}
    assert {software_stack(get_hardware(n)) for n in ("mi100", "mi250", "mi300x")} == {"rocm"}
    cpu = HardwareDescriptor("some-cpu", "cpu", {"fp32": 1e12}, 1e11, 1e10, vendor_name="AMD EPYC 9B14")
    assert software_stack(cpu) == ""  # an AMD CPU is no ROCm GPU


def test_a_gpu_of_unknown_make_has_no_stack():
    mystery = HardwareDescriptor("mystery", "gpu", {"fp32": 1e13}, 1e12, 1e10, vendor_name="Mystery Accelerator")
    assert software_stack(mystery) == ""
