from __future__ import annotations

import random

import pandas as pd
import pytest
import torch

from flopcast.calibration import microbench as mb
from flopcast.calibration.microbench.base import Family, math_mode
from flopcast.calibration.microbench.static import main_record, static_features
from flopcast.datasets.schema import OP_COLUMNS
from flopcast.features.table import ops_table
from flopcast.features.trace_torch import trace_ops

EXPECTED = {
    "matmul", "conv2d_fwd", "conv2d_grad_input", "conv2d_grad_weight", "conv1d", "conv1d_grad_input",
    "conv1d_grad_weight", "sdpa_fwd", "sdpa_fwd_bwd",
    "elementwise_unary", "elementwise_binary", "reduction", "softmax", "norm", "embedding", "indexing",
    "data_movement", "rnn_cell", "optimizer", "matmul_decode", "sdpa_decode",
}
CAP_BYTES = 256 * 1024


def test_every_family_of_the_vocabulary_is_registered():
    assert set(mb.family_names()) == EXPECTED


def test_duplicate_registration_is_refused():
    class Again(Family):
        name = "matmul"

    with pytest.raises(ValueError, match="already registered"):
        mb.register_family(Again)


def test_unknown_family_names_the_known_ones():
    with pytest.raises(KeyError, match="known: conv1d"):
        mb.get_family("matmull")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_family_samples_fit_build_run_and_trace(name):
    family = mb.get_family(name)
    configs = family.sample_configs(random.Random(0), CAP_BYTES, 4, ("fp32", "bf16"))
    assert [c["dtype"] for c in configs] == ["fp32", "bf16", "fp32", "bf16"]
    assert configs == family.sample_configs(random.Random(0), CAP_BYTES, 4, ("fp32", "bf16"))  # seeded
    for config in configs:
        assert family.working_set_bytes(config) <= CAP_BYTES or all(config[k] == 1 for k in family.shrink_keys)
        with math_mode(config["dtype"]):
            family.build(config, "cpu")()
    static, problem = static_features(family, configs[0])
    assert problem == ""
    assert set(static) == set(OP_COLUMNS)
    assert static["op"].startswith("aten.") and static["bytes_read"] > 0


def test_sampling_spans_launch_bound_to_large():
    family = mb.get_family("matmul")
    configs = family.sample_configs(random.Random(1), 1 << 30, 64, ("fp32",))
    sizes = sorted(c["b"] * c["m"] * c["k"] * c["n"] for c in configs)
    assert sizes[0] < 1e4 and sizes[-1] > 1e9  # tiny launch-bound to large compute-bound


def test_multi_op_rows_take_the_main_op_and_sum_costs():
    family = mb.get_family("sdpa_fwd_bwd")
    config = {"b": 1, "heads": 2, "s_q": 8, "s_kv": 8, "head_dim": 32, "causal": False, "dtype": "fp32"}
    records = [r for r in trace_ops(lambda: family.build(config, "cpu")) if r.op.startswith("aten.")]
    static, _ = static_features(family, config)
    assert static["op"] == main_record(records, family.main_ops).op
    assert static["bytes_read"] == sum(r.bytes_read for r in records)
    assert static["flops"] == sum(r.flops for r in records)


def test_tf32_rows_are_kept_apart_from_fp32():
    static, _ = static_features(mb.get_family("matmul"),
                                {"variant": "mm", "b": 1, "m": 4, "k": 4, "n": 4, "dtype": "tf32"})
    assert static["dtype"] == "tf32"


def test_math_mode_sets_tf32_only_for_tf32_and_restores():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with math_mode("tf32"):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    with math_mode("fp32"):
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def _table(*closures) -> pd.DataFrame:
    rows = []
    for build in closures:
        rows.append(ops_table([r for r in trace_ops(build) if r.op.startswith("aten.")]))
    return pd.concat(rows, ignore_index=True)


def test_configs_from_an_analyze_op_table():
    def mm():
        a, b = torch.randn(64, 32), torch.randn(32, 16)
        return lambda: torch.mm(a, b)

    def conv():
        x, w = torch.randn(2, 8, 16, 16), torch.randn(4, 8, 3, 3)
        return lambda: torch.nn.functional.conv2d(x, w, None, 1, 1)

    def ln():
        x = torch.randn(6, 32, dtype=torch.bfloat16)
        return lambda: torch.nn.functional.layer_norm(x, (32,))

    df = _table(mm, conv, ln)
    configs = mb.configs_from_ops_table(df)
    assert ("matmul", {"variant": "mm", "b": 1, "m": 64, "k": 32, "n": 16, "dtype": "fp32"}) in configs
    conv_cfg = next(c for f, c in configs if f == "conv2d_fwd")
    assert conv_cfg | {} == {"n": 2, "c_in": 8, "c_out": 4, "size": 16, "k": 3, "stride": 1, "padding": 1,
                             "depthwise": False, "dtype": "fp32"}
    assert ("norm", {"kind": "layer", "pass": "fwd", "n": 6, "c": 32, "spatial": 1, "dtype": "bf16"}) in configs
    assert len(configs) == len({repr(c) for c in configs})  # no duplicates
    for family, config in configs:  # every derived config builds
        mb.get_family(family).build(config, "cpu")()


def test_conv1d_families_cover_audio_front_ends_forward_and_backward():
    # M5's first layer: 1 input channel, kernel 80, stride 4; its backward gives both gradient families
    x = torch.randn(2, 1, 800, requires_grad=True)
    w = torch.randn(8, 1, 80, requires_grad=True)

    def step():
        return lambda: torch.autograd.grad(torch.nn.functional.conv1d(x, w, None, 4, 40).sum(), (x, w))

    configs = mb.configs_from_ops_table(ops_table(trace_ops(step)))
    found = {f: c for f, c in configs if f.startswith("conv1d")}
    assert set(found) == {"conv1d", "conv1d_grad_input", "conv1d_grad_weight"}
    for family, config in found.items():
        assert (config["k"], config["stride"], config["c_in"], config["size"]) == (80, 4, 1, 800)
        mb.get_family(family).build(config, "cpu")()
    sampled = mb.get_family("conv1d_grad_weight").sample_configs(random.Random(0), 1 << 28, 96, ("fp32",))
    assert {80, 31} <= {c["k"] for c in sampled} and 4 in {c["stride"] for c in sampled}


def test_conv2d_samples_patchify_stems_and_conv1d_does_not():
    import random

    from flopcast.calibration.microbench import get_family
    from flopcast.calibration.microbench.conv import PATCH_SHARE

    rng = random.Random(0)
    configs = [get_family("conv2d_fwd").sample(rng) for _ in range(400)]
    patchify = [c for c in configs if c["k"] == c["stride"] and c["k"] >= 4]
    assert 0.5 * PATCH_SHARE < len(patchify) / len(configs) < 2 * PATCH_SHARE
    assert all(c["padding"] == 0 and c["size"] >= c["k"] for c in patchify)  # a ViT's 16 x 16 stem, say
    assert not [c for c in (get_family("conv1d").sample(rng) for _ in range(200)) if c["k"] in (4, 8, 14, 16, 32)]
