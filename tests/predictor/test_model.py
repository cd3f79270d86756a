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


def test_a_cpu_of_the_same_brand_but_another_generation_is_not_calibrated(model):
    import copy

    name, d = _descriptor(model, "cpu")
    zen5 = {**(d.extra or {}), "cpu_family": 26, "flops_per_cycle_per_core": {"fp32": 64.0}}
    trained = copy.copy(model)
    trained.hardware = copy.deepcopy(model.hardware)
    trained.hardware[name]["descriptor"]["extra"] = zen5
    me = replace(d, extra=zen5)
    assert trained.trained_name(me) == name
    assert trained.trained_name(replace(me, extra={**zen5, "cpu_family": 25})) is None  # same brand, Zen 3
    assert trained.trained_name(replace(me, extra={**zen5, "flops_per_cycle_per_core": {"fp32": 32.0}})) is None
    assert trained.trained_name(replace(me, extra={})) == name  # unknown: the name decides
