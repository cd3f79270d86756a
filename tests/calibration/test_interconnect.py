from __future__ import annotations

import json

import pytest

from flopcast.calibration.catalog import get_hardware
from flopcast.calibration.interconnect import (
    InterconnectError,
    UnknownInterconnectError,
    fabrics,
    resolve_interconnect,
    systems,
)

FABRICS = fabrics()


@pytest.mark.parametrize("name", sorted(FABRICS))
def test_every_fabric_is_sourced_and_nccl_never_beats_the_spec(name):
    f = FABRICS[name]
    assert "https://" in f.source or "IEEE" in f.source
    assert 0 < f.nccl_bandwidth_bytes_per_s <= f.bandwidth_bytes_per_s
    assert f.scope in ("intra", "inter") and f.kind in ("nvlink", "pcie", "infiniband", "ethernet")


def test_nvlink_generations_are_links_times_the_per_link_rate():
    # H100 SXM: 900 GB/s both ways = 18 links x 25 GB/s per direction; NCCL models 20.6 GB/s per SM90 link
    assert FABRICS["nvlink4"].bandwidth_bytes_per_s == pytest.approx(18 * 25e9)
    assert FABRICS["nvlink4"].nccl_bandwidth_bytes_per_s == pytest.approx(18 * 20.6e9)
    assert FABRICS["nvlink3"].bandwidth_bytes_per_s == pytest.approx(12 * 25e9)
    assert FABRICS["pcie4"].nccl_bandwidth_bytes_per_s == pytest.approx(16 * 120 / 80 * 1e9)  # lanes x rate / 80


@pytest.mark.parametrize("name", sorted(systems()))
def test_systems_name_catalog_gpus_and_fabrics(name):
    s = systems()[name]
    assert s["intra"] in FABRICS and s["inter"] in FABRICS and "https://" in s["source"]
    for gpu in s["gpus"]:
        assert get_hardware(gpu).kind == "gpu"


@pytest.mark.parametrize(("gpu", "intra", "inter", "system"), [
    ("h100-sxm", "nvlink4", "ib-ndr", "dgx-h100"),
    ("a100-40gb", "nvlink3", "ib-hdr", "dgx-a100"),
    ("l4", "pcie4", "ib-hdr", ""),  # no system: its own PCIe and the assumed network
])
def test_default_interconnect_of_a_gpu(gpu, intra, inter, system):
    ic = resolve_interconnect(get_hardware(gpu))
    assert (ic.intra.name, ic.inter.name, ic.system) == (intra, inter, system)
    assert bool(ic.assumed) == (system == "")


def test_named_links():
    h100 = get_hardware("h100-sxm")
    assert resolve_interconnect(h100, "pcie").intra.name == "pcie5"
    both = resolve_interconnect(h100, "nvlink,eth-100g")
    assert (both.intra.name, both.inter.name) == ("nvlink4", "eth-100g")


@pytest.mark.parametrize(("gpu", "text", "error", "message"), [
    ("l4", "nvlink", InterconnectError, "l4 has no NVLink"),
    ("a100-pcie-40gb", "nvlink", InterconnectError, "only an NVLink bridge"),
    ("h100-sxm", "nvlnk", UnknownInterconnectError, "unknown intra-node interconnect 'nvlnk'"),
    ("h100-sxm", "nvlink,nvlink4", UnknownInterconnectError, "unknown inter-node"),
    ("h100-sxm", "missing.json", InterconnectError, "not found"),
])
def test_bad_interconnects_are_one_line(gpu, text, error, message):
    with pytest.raises(error, match=message) as e:
        resolve_interconnect(get_hardware(gpu), text)
    assert "\n" not in str(e.value)


def test_a_file_with_measured_busbw_overrides_the_spec(tmp_path):
    f = tmp_path / "cluster.json"
    f.write_text(json.dumps({"intra": "nvlink4", "inter": "ib-hdr", "nics_per_node": 4,
                             "busbw_bytes_per_s": {"all_reduce": 3.6e11, "all_gather": 3.4e11},
                             "measured_by": "nccl-tests 2.13"}))
    ic = resolve_interconnect(get_hardware("h100-sxm"), str(f))
    assert ic.intra.measured and ic.intra.busbw("all_reduce") == 3.6e11 and ic.intra.busbw("all_gather") == 3.4e11
    assert ic.intra.busbw("reduce_scatter") == 3.6e11  # an op not measured takes the all-reduce's
    assert (ic.inter.name, ic.nics_per_node, ic.gpus_per_node) == ("ib-hdr", 4, 8)
    assert "measured busbw 360 GB/s" in ic.describe()


@pytest.mark.parametrize(("content", "message"), [
    ('{"busbw": 1}', "unknown key"),
    ('{"busbw_bytes_per_s": {"alltoall": 1e9}}', "unknown collective"),
    ('{"busbw_bytes_per_s": {"all_reduce": -1}}', "> 0"),
    ('not json', "not valid JSON"),
])
def test_bad_files_are_named(tmp_path, content, message):
    f = tmp_path / "ic.json"
    f.write_text(content)
    with pytest.raises(InterconnectError, match=message):
        resolve_interconnect(get_hardware("h100-sxm"), str(f))
