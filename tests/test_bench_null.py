"""Small-seed run of benchmarks/bench_null.py: on data with no effect the new rules hold 5%, the old ones do not."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_null import arm_tables, clopper_pearson_upper, one_field_tables


def test_one_field_against_controls_new_rule_holds_old_rule_does_not():
    """Exchangeable layouts only (controls and test alike); the old bootstrap-of-the-mean rule claims ~50%."""
    for row in one_field_tables(200)[:2]:
        assert row["new unlike (either side)"]["rate"] <= 0.08, row["set"]
        assert row["old any claim"]["rate"] > 0.3, row["set"]


def test_arms_replicate_unit_holds_frames_as_units_do_not():
    row = arm_tables(100)[0]
    assert row["new any claim"]["rate"] <= 0.08 < 0.3 < row["old any claim"]["rate"]


def test_clopper_pearson_upper_bound():
    assert clopper_pearson_upper(0, 400) == pytest.approx(1 - 0.025 ** (1 / 400), rel=1e-6)
    assert clopper_pearson_upper(20, 400) > 0.05 and clopper_pearson_upper(400, 400) == 1.0


def test_false_onsets_small_seed():
    """bench_onsets.py with 60 seeds: the default persistence holds 5% family-wise per experiment."""
    from bench_onsets import synthetic_table

    (row,) = synthetic_table(60, persistences=(2,), old=False)
    assert row["after, persistence 2"]["rate"] <= 0.05
