from __future__ import annotations

from dataclasses import replace

from flopcast.calibration.descriptor import HardwareDescriptor


def _descriptor(model, kind):
    name = next(n for n, e in model.hardware.items() if e["descriptor"]["kind"] == kind)
    return name, HardwareDescriptor.from_dict(model.hardware[name]["descriptor"])


def test_same_gpu_name_is_the_trained_device(model):
    name, d = _descriptor(model, "gpu")
    assert model.trained_name(d) == name
    assert model.trained_name(replace(d, name="renamed", vendor_name="Other GPU")) is None


def test_a_cpu_of_the_same_family_with_other_core_count_is_not_calibrated(model):
    name, d = _descriptor(model, "cpu")
    assert model.trained_name(d) == name
    bigger = replace(d, compute_units=(d.compute_units or 2) * 32)
    assert model.trained_name(bigger) is None
