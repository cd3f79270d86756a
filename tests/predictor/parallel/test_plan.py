from __future__ import annotations

import pytest

from flopcast.predictor.parallel.plan import ParallelError, ParallelPlan


@pytest.mark.parametrize(("text", "gpus", "degrees"), [
    ("dp", 8, (8, 1, 1, False)),
    ("fsdp", 4, (4, 1, 1, True)),
    ("tp", 4, (1, 4, 1, False)),
    ("pp", 4, (1, 1, 4, False)),
    ("dp2,tp2,pp2", 8, (2, 2, 2, False)),
    ("tp2,dp", 8, (4, 2, 1, False)),  # a strategy without a degree takes the GPUs the others leave
    ("fsdp2,tp4", 8, (2, 4, 1, True)),
])
def test_parse_degrees(text, gpus, degrees):
    p = ParallelPlan.parse(text, gpus)
    assert (p.dp, p.tp, p.pp, p.fsdp) == degrees
    assert p.dp * p.tp * p.pp == gpus


@pytest.mark.parametrize(("text", "gpus", "message"), [
    ("dp2,tp2,pp2", 4, "= 8 GPUs, --gpus says 4"),
    ("tp3,dp", 8, "not a multiple of the 3 GPUs"),
    ("xp2", 4, "unknown strategy 'xp2'"),
    ("dp,fsdp", 4, "given twice"),
    ("dp,tp", 4, "all but one"),
    ("dp0", 4, "degree must be >= 1"),
])
def test_bad_layouts_are_one_line(text, gpus, message):
    with pytest.raises(ParallelError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        ParallelPlan.parse(text, gpus)
    assert "\n" not in str(e.value)


def test_gpus_must_spread_over_nodes_and_micro_batches_need_stages():
    with pytest.raises(ParallelError, match="evenly"):
        ParallelPlan.parse("dp", 6, nodes=4)
    with pytest.raises(ParallelError, match="--micro-batches"):
        ParallelPlan.parse("dp", 4, micro_batches=4)


def test_megatron_rank_order_keeps_tensor_groups_inside_a_node():
    # 16 GPUs on 2 nodes of 8: tp fastest, then dp, then pp
    p = ParallelPlan.parse("tp4,dp2,pp2", 16, nodes=2)
    tp = p.groups("tp")
    assert tp[0].ranks == (0, 1, 2, 3) and all(g.nodes == 1 for g in tp)
    assert p.groups("dp")[0].ranks == (0, 4) and p.group("dp").nodes == 1
    assert p.groups("pp")[0].ranks == (0, 8) and p.group("pp").nodes == 2  # the stages are on different nodes
    assert sorted(r for g in p.groups("pp") for r in g.ranks) == list(range(16))  # every rank in one pp group


def test_describe():
    assert ParallelPlan.parse("dp2,tp2,pp2", 8, micro_batches=4).describe() == \
        "dp2 x tp2 x pp2 on 8 GPUs (1 node), 4 micro-batches"
    assert ParallelPlan.parse("fsdp", 16, nodes=2).describe() == "fsdp16 on 16 GPUs (2 nodes)"
