"""The comparison engine: units at the right level, honest intervals on data with no effect."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from phototox.errors import PhototoxError
from phototox.stats.compare import (
    HARMLESS,
    NO_DIFFERENCE,
    SICKER,
    UNLIKE,
    Arm,
    check_new_field,
    compare,
    non_inferiority,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_null import fields_of as experiment

SEEDS = 200
MAX_RATE = 0.08  # nominal 5%; over 200 seeds a correct rule stays below 8% (binomial 95th pct ~ 7.5%)


def false_rate(replicates, fields, frames, labels=("replicate", "field"), dish=0.03, seeds=SEEDS):
    rng = np.random.default_rng(7)
    claims = 0
    for seed in range(seeds):
        arms = []
        for name in ("test", "control"):
            v, r, f = experiment(rng, replicates, fields, frames, dish_sd=dish)
            given = {"replicate": r, "field": f}
            arms.append(Arm.of(v, name=name, **{k: given[k] for k in labels}))
        claims += compare(*arms, n_boot=500, seed=seed).verdict != NO_DIFFERENCE
    return claims / seeds


def test_frames_of_one_field_are_one_unit():
    """Many frames of one field each: one unit per arm, no test, whatever the difference."""
    frames = np.arange(10)
    test = Arm.of(np.full(10, 0.9) + 0.001 * frames, frame=frames, name="test")
    control = Arm.of(np.full(10, 0.1) + 0.001 * frames, frame=frames, name="control")
    result = compare(test, control)
    assert (result.n_test, result.n_control, result.level) == (1, 1, "field")
    assert result.verdict == "cannot test: one field per arm" and result.low is None
    assert result.effect == pytest.approx(0.8)


def test_frames_within_fields_are_averaged_not_counted():
    """Fields differ by more than frames do: frames counted as units would claim effects (mutation: 40%+)."""
    assert false_rate(1, 3, 8, labels=("field",), dish=0.0) <= MAX_RATE


def test_one_field_or_dish_per_arm_is_never_sicker():
    test = Arm.of([0.9, 0.91, 0.92], field=["a", "a", "a"])
    control = Arm.of([0.1, 0.11], field=["b", "c"])
    assert compare(test, control).verdict == "cannot test: one field per arm"
    dishes = compare(
        Arm.of([0.9, 0.95], replicate=[1, 1], field=[1, 2]), Arm.of([0.1, 0.2], replicate=[1, 1], field=[1, 2])
    )
    assert dishes.verdict == "cannot test: one replicate per arm" and dishes.n_test == 1
    assert non_inferiority(test, control).verdict.startswith("cannot test")


def test_fewer_than_five_units_use_welch_t():
    t, c = np.array([0.3, 0.35, 0.28, 0.4]), np.array([0.2, 0.22, 0.19, 0.3, 0.25, 0.21])
    result = compare(Arm.of(t), Arm.of(c))
    assert result.method.startswith("Welch")
    vt, vc = t.var(ddof=1) / 4, c.var(ddof=1) / 6
    df = (vt + vc) ** 2 / (vt**2 / 3 + vc**2 / 5)
    half = stats.t.ppf(0.975, df) * np.sqrt(vt + vc)
    assert (result.low, result.high) == pytest.approx((t.mean() - c.mean() - half, t.mean() - c.mean() + half))
    assert result.verdict == SICKER and result.level == "field"
    many = compare(Arm.of(np.r_[t, 0.33]), Arm.of(c))
    assert many.method.startswith("studentised bootstrap")


def test_replicates_are_the_unit_and_few_replicates_are_said():
    v, r, f = experiment(np.random.default_rng(0), 2, 3, 2)
    result = compare(Arm.of(v, replicate=r, field=f), Arm.of(v + 0.5, replicate=r, field=f))
    assert (result.level, result.n_test) == ("replicate", 2)
    assert "describes these dishes, not the biology" in result.words
    v, r, f = experiment(np.random.default_rng(0), 3, 2, 2)
    three = compare(Arm.of(v, replicate=r, field=f), Arm.of(v, replicate=r, field=f))
    assert three.n_test == 3 and "not the biology" not in three.words
    with pytest.raises(PhototoxError, match="label replicates in both arms"):
        compare(Arm.of(v, replicate=r), Arm.of(v))


@pytest.mark.parametrize(("replicates", "fields"), [(3, 3), (2, 2), (6, 2)])
def test_no_effect_gives_few_false_claims(replicates, fields):
    """Welch (3 and 2 replicates) and the bootstrap (6) on data with dish and field variation."""
    assert false_rate(replicates, fields, 3) <= MAX_RATE


def test_non_inferiority_size_and_power():
    """At a true harm equal to the margin, harmless is claimed at most ~5%; at no harm, mostly harmless."""
    rng = np.random.default_rng(3)
    margin, at_margin, at_zero = 0.2, 0, 0
    for seed in range(SEEDS):
        c, rc, fc = experiment(rng, 3, 3, 2, dish_sd=0.005, field_sd=0.01)
        t, rt, ft = experiment(rng, 3, 3, 2, dish_sd=0.005, field_sd=0.01)
        control = Arm.of(c, replicate=rc, field=fc)
        shifted = non_inferiority(Arm.of(t + margin * 0.2, replicate=rt, field=ft), control, margin, seed=seed)
        at_margin += shifted.verdict == HARMLESS
        at_zero += non_inferiority(Arm.of(t, replicate=rt, field=ft), control, margin, seed=seed).verdict == HARMLESS
    assert at_margin / SEEDS <= MAX_RATE
    assert at_zero / SEEDS >= 0.8


def test_non_inferiority_direction_for_readouts_where_lower_is_harm():
    control = Arm.of([1.0, 1.02, 0.98, 1.01])
    slower = Arm.of([0.5, 0.52, 0.49, 0.51])
    assert non_inferiority(slower, control, 0.2, higher_is_harm=False).verdict != HARMLESS
    assert non_inferiority(control, slower, 0.2, higher_is_harm=False).verdict == HARMLESS
    assert compare(slower, control, higher_is_harm=False).verdict == SICKER


def test_new_field_check_holds_its_rate_on_fields_with_no_effect():
    """A field like the controls is called unlike in ~5% (mutation: CI of the control mean gives ~40%)."""
    rng = np.random.default_rng(11)
    unlike = 0
    for _ in range(SEEDS):
        fields = rng.normal(0.2, 0.03, 5)
        unlike += check_new_field(fields[0], fields[1:]).verdict == UNLIKE
    assert unlike / SEEDS <= MAX_RATE
    far = check_new_field(0.9, [0.1, 0.12, 0.09, 0.11])
    assert far.verdict == UNLIKE and far.low > 0
    assert "it says unlike, not caused by light" in far.words
    with pytest.raises(PhototoxError, match="at least 2 control fields"):
        check_new_field(0.1, [0.1])


def test_bad_input_names_the_arm():
    with pytest.raises(PhototoxError, match="control: value nan"):
        Arm.of([0.1, float("nan")], name="control")
    with pytest.raises(PhototoxError, match="test: 1 field labels for 2 values"):
        Arm.of([0.1, 0.2], field=["a"], name="test")
