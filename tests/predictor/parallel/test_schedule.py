from __future__ import annotations

import pytest

from flopcast.predictor.parallel.schedule import (
    bubble_share,
    overlap_exposed_s,
    pipeline_s,
    prefetched_exposed_s,
)


@pytest.mark.parametrize(("p", "k", "share"), [(4, 1, 3 / 4), (4, 4, 3 / 7), (2, 8, 1 / 9), (1, 5, 0.0)])
def test_bubble_is_p_minus_1_over_k_plus_p_minus_1(p, k, share):
    assert bubble_share(p, k) == pytest.approx(share)


@pytest.mark.parametrize(("p", "k"), [(4, 1), (4, 4), (8, 16)])
def test_equal_stages_take_k_plus_p_minus_1_slots_and_idle_the_bubble(p, k):
    t = 0.01
    total = pipeline_s([t] * p, k, 0.0)
    assert total == pytest.approx((k + p - 1) * t)
    busy = k * t  # each GPU works k slots
    assert 1 - busy / total == pytest.approx(bubble_share(p, k))


def test_pipeline_waits_for_the_slowest_stage_and_every_hand_over():
    # first micro-batch through all stages (1+2+1), 2 more at the slowest (2 each), 2(p+K-2) = 8 hand-overs
    assert pipeline_s([1.0, 2.0, 1.0], 3, 0.1) == pytest.approx(4 + 2 * 2 + 8 * 0.1)


def test_overlap_hides_what_ends_before_the_backward():
    assert overlap_exposed_s([0.1, 0.5], [0.1, 0.2], 1.0) == 0.0
    # the last bucket is ready at the end of the backward: its whole time shows
    assert overlap_exposed_s([0.2, 1.0], [0.1, 0.3], 1.0) == pytest.approx(0.3)
    # one stream: the second waits for the first (0 -> 0.8, then 0.8 -> 1.4)
    assert overlap_exposed_s([0.0, 0.1], [0.8, 0.6], 1.0) == pytest.approx(0.4)


def test_prefetched_gathers_hide_behind_the_previous_unit():
    # units of 1 s; gathers of 0.5 s: only the first is waited for
    assert prefetched_exposed_s([1, 1, 1], [0.5, 0.5, 0.5], [0, 0, 0]) == pytest.approx(0.5)
    # gathers longer than the compute: the stream sets the pace (issued one unit ahead)
    assert prefetched_exposed_s([1, 1], [2, 2], [0, 0]) == pytest.approx(3.0)
    # a reduction after the last unit shows whole
    assert prefetched_exposed_s([1], [0], [0.4]) == pytest.approx(0.4)
