"""Intervals on constructed cases whose answers are known."""

from __future__ import annotations

import math

import pytest

from tasks.experiments.intervals import accuracy_interval, paired_difference
from tasks.experiments.plan import plan_ladder


def test_a_certain_score_has_no_width():
    ci = accuracy_interval([[True] * 50, [True] * 50])
    assert (ci.mean, ci.low, ci.high, ci.runs, ci.questions) == (1.0, 1.0, 1.0, 2, 50)


def test_one_run_matches_the_binomial_interval():
    """120 of 200 right: the bootstrap over questions is the normal approximation's
    0.6 +- 1.96 sqrt(0.6 * 0.4 / 200) = 0.6 +- 0.068, to within a point."""
    ci = accuracy_interval([[i < 120 for i in range(200)]])
    half = 1.96 * math.sqrt(0.6 * 0.4 / 200)
    assert ci.mean == pytest.approx(0.6)
    assert ci.low == pytest.approx(0.6 - half, abs=0.01)
    assert ci.high == pytest.approx(0.6 + half, abs=0.01)


def test_run_to_run_spread_widens_the_interval():
    """Three runs that disagree (0.3, 0.5, 0.7 on the same questions) are less certain
    than three that agree on 0.5: resampling runs carries their spread."""
    q = 200
    agree = accuracy_interval([[i % 2 == 0 for i in range(q)]] * 3)
    spread = accuracy_interval([[i < int(q * p) for i in range(q)] for p in (0.3, 0.5, 0.7)])
    assert agree.mean == spread.mean == pytest.approx(0.5)
    assert (spread.high - spread.low) > 1.5 * (agree.high - agree.low)


def test_paired_difference_on_the_same_questions():
    q = 200
    a = [[i < 120 for i in range(q)]]
    b = [[i < 80 for i in range(q)]]  # b is right on a subset of a's questions
    d = paired_difference(a, b)
    # Per question the difference is 1 on 40 of 200 and 0 elsewhere: 0.2 +- 1.96 sqrt(.16/200)
    half = 1.96 * math.sqrt(0.2 * 0.8 / q)
    assert d.mean == pytest.approx(0.2)
    assert d.low == pytest.approx(0.2 - half, abs=0.01)
    assert d.high == pytest.approx(0.2 + half, abs=0.01)
    assert d.excludes_zero
    # Paired is tighter than treating the two arms as independent samples.
    independent = 1.96 * math.sqrt(0.6 * 0.4 / q + 0.4 * 0.6 / q)
    assert (d.high - d.low) / 2 < 0.6 * independent
    same = paired_difference(a, a)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes_zero
    # A small difference on few questions is inside the noise.
    small = paired_difference([[i < 52 for i in range(100)]], [[i < 50 for i in range(100)]])
    assert small.mean == pytest.approx(0.02) and not small.excludes_zero


def test_paired_arms_need_the_same_questions():
    with pytest.raises(ValueError, match="same questions"):
        paired_difference([[True, False]], [[True]])


def test_plan_repeats_keep_the_data_and_change_the_seed():
    subsets = {"random": {50: "r50", 150: "r150"}, "diversity": {150: "d150"}}
    plan = plan_ladder(subsets, sizes=[50, 150], arm_sizes=[150], unverified_rate=0.3,
                       train_seed=7, repeats=2)
    assert [(r.name, r.subset_id, r.train_seed) for r in plan] == [
        ("random-n50-s0", "r50", 7), ("random-n50-s1", "r50", 8),
        ("random-n150-s0", "r150", 7), ("random-n150-s1", "r150", 8),
        ("diversity-n150-s0", "d150", 7), ("diversity-n150-s1", "d150", 8),
        ("unverified-n150-s0", "r150", 7), ("unverified-n150-s1", "r150", 8)]
    assert {r.group for r in plan if r.arm == "unverified"} == {"unverified (30% wrong)@150"}
    assert all(r.error_rate == 0.3 for r in plan if r.arm == "unverified")
    # One repeat keeps the names runs had before repeats existed.
    assert [r.name for r in plan_ladder({"random": {50: "r50"}}, sizes=[50], arm_sizes=[],
                                        unverified_rate=0, train_seed=0)] == ["random-n50"]
