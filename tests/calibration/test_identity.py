from __future__ import annotations

from dataclasses import replace

import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.identity import identity_key, same_device

ZEN4 = HardwareDescriptor("local-cpu-amd-epyc", "cpu", {"fp32": 1e11}, 1e10, 2**34, compute_units=2,
                          vendor_name="AMD EPYC", extra={"cpu_family": 25, "flops_per_cycle_per_core": {"fp32": 32}})
H100 = HardwareDescriptor("h100-sxm", "gpu", {"fp32": 6e13}, 3e12, 8e10, compute_units=132,
                          vendor_name="NVIDIA H100 80GB HBM3")


@pytest.mark.parametrize(("other", "same"), [
    (ZEN4, True),
    (replace(ZEN4, name="renamed-by-release"), True),  # same vendor name and processor
    (replace(ZEN4, compute_units=64), False),  # a 64-core server of the same brand
    (replace(ZEN4, extra={**ZEN4.extra, "cpu_family": 26}), False),  # Zen 5
    (replace(ZEN4, extra={"cpu_family": 25}), True),  # unknown vector width matches
    (replace(ZEN4, kind="gpu"), False),
    (replace(ZEN4, vendor_name="Intel Xeon", name="local-cpu-intel-xeon"), False),
])
def test_same_device_is_the_rule_of_calibrated(other, same):
    assert same_device(ZEN4, other.name, other.to_dict()) is same


def test_gpus_match_by_vendor_name_whatever_the_catalog_label():
    probed = replace(H100, name="local-gpu-nvidia-h100-80gb-hbm3", compute_units=0)
    assert same_device(probed, H100.name, H100.to_dict())


def test_identity_key_is_stable_and_tells_processors_apart():
    assert identity_key(ZEN4) == identity_key(replace(ZEN4, memory_bytes=1.0, clock_hz=3e9))
    assert identity_key(ZEN4) != identity_key(replace(ZEN4, compute_units=4))
    assert identity_key(ZEN4) != identity_key(replace(ZEN4, extra={**ZEN4.extra, "cpu_family": 26}))
    assert len(identity_key(H100)) == 12
