from __future__ import annotations

import json

import pytest

from flopcast.calibration.catalog import (
    UnknownHardwareError,
    catalog_aliases,
    get_hardware,
    load_catalog,
    match_vendor_name,
)
from flopcast.calibration.descriptor import DTYPES, REQUIRED_FIELDS, DescriptorError, HardwareDescriptor

CATALOG = load_catalog()
EXPECTED = {
    "h100-sxm", "h100-pcie", "h200", "a100-40gb", "a100-80gb", "l40s", "l4", "a10", "v100-sxm2-32gb", "t4",
    "rtx-4090", "rtx-a6000", "mi300x", "cpu-generic-avx2-8c", "cpu-xeon-sapphire-rapids-16c", "cpu-epyc-genoa-32c",
}  # fmt: skip


def test_catalog_has_the_expected_entries():
    assert set(CATALOG) >= EXPECTED


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_entry_is_complete_and_sane(name):
    d = CATALOG[name]
    assert d.name == name
    for field in REQUIRED_FIELDS:
        assert getattr(d, field) not in (None, "", {})
    assert set(d.peak_flops_per_s) <= set(DTYPES)
    assert all(v > 0 for v in d.peak_flops_per_s.values())
    assert d.memory_bandwidth_bytes_per_s > 0 and d.memory_bytes > 0
    assert d.compute_units > 0 and d.clock_hz > 0 and d.tdp_w > 0
    assert d.vendor_name and d.interconnect
    assert "https://" in d.source
    assert d.peak_flops_per_s["fp64"] <= d.peak_flops_per_s["fp32"]
    if "fp8" in d.peak_flops_per_s and "bf16" in d.peak_flops_per_s:
        assert d.peak_flops_per_s["bf16"] < d.peak_flops_per_s["fp8"]
    if d.kind == "gpu" and "bf16" in d.peak_flops_per_s:
        assert d.peak_flops_per_s["fp32"] < d.peak_flops_per_s["bf16"]  # tensor cores beat CUDA cores


def test_dense_not_sparse_h100_numbers():
    d = CATALOG["h100-sxm"]
    assert d.peak_flops_per_s["bf16"] == pytest.approx(989.4e12)  # 1979 TFLOP/s is the 2:4-sparse figure
    assert d.peak_flops_per_s["tf32"] == pytest.approx(494.7e12)
    assert d.peak_flops_per_s["fp32"] == pytest.approx(66.9e12)
    assert d.memory_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert (d.compute_units, d.tdp_w) == (132, 700)


def test_vendor_names_are_unique():
    names = [d.vendor_name.lower() for d in CATALOG.values()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("alias", "target"),
    [("h100", "h100-sxm"), ("A100", "a100-80gb"), ("cpu", "cpu-generic-avx2-8c"), ("H100_SXM", "h100-sxm"),
     ("  L40S ", "l40s"), ("mi300", "mi300x")],
)  # fmt: skip
def test_aliases_and_case(alias, target):
    assert get_hardware(alias).name == target


def test_every_alias_resolves():
    for alias, target in catalog_aliases().items():
        assert get_hardware(alias) is CATALOG[target]


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownHardwareError, match=r"did you mean .*h100"):
        get_hardware("h10")
    with pytest.raises(ValueError, match="unknown hardware 'quantum-9000'"):
        get_hardware("quantum-9000")


def test_descriptor_file_round_trip(tmp_path):
    path = tmp_path / "mine.json"
    CATALOG["l4"].save(path)
    assert get_hardware(path) == CATALOG["l4"]
    assert get_hardware(str(path)) == CATALOG["l4"]


def test_bad_descriptor_files(tmp_path):
    with pytest.raises(DescriptorError, match="not found"):
        get_hardware(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DescriptorError, match="not valid JSON"):
        get_hardware(broken)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"name": "x", "kind": "gpu"}))
    with pytest.raises(DescriptorError, match="missing field"):
        get_hardware(partial)


def test_load_catalog_returns_a_copy():
    first = load_catalog()
    first.pop("h100-sxm")
    assert "h100-sxm" in load_catalog()
    assert isinstance(load_catalog()["t4"], HardwareDescriptor)


@pytest.mark.parametrize(
    ("nvml_name", "expected"),
    [("NVIDIA H100 80GB HBM3", "h100-sxm"), ("nvidia  a100-sxm4-80gb", "a100-80gb"), ("Tesla T4", "t4"),
     ("NVIDIA L4", "l4"), ("NVIDIA L40S", "l40s"), ("NVIDIA GeForce GTX 1080", None)],
)  # fmt: skip
def test_match_vendor_name(nvml_name, expected):
    assert match_vendor_name(nvml_name) == expected
