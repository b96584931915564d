"""One comparison engine: a readout of a test arm against a control arm, the experiment's structure kept.

Every command that compares two sets of images calls this module; the readout (P(sick), a
fraction, divisions per cell per hour, growth, motility) does not matter, only its direction
(``higher_is_harm``).

Structure. Each value may carry a ``replicate`` (an independent dish, day or passage), a ``field``
(one stage position) and a ``frame`` label. Frames of one field are never independent: they are
averaged into one field value. Fields within a replicate are averaged into one replicate value
when replicates are given. The unit of inference is the highest level present (:attr:`Arm.level`);
a value with no labels at all is one field of its own; frame labels without field labels mean one
field.

Tests (two-sided, 95% by default, on per-unit means; effect = test mean - control mean):

* one unit in either arm: no test. The only verdict is ``cannot test: one field per arm`` (or one
  replicate); never ``sicker``;
* fewer than 5 units in either arm: Welch's t-interval (Satterthwaite degrees of freedom);
* 5 or more units in both: a studentised (bootstrap-t) interval, units resampled within each arm.

Fewer than 3 replicates per arm: the words say the result describes these dishes, not the biology.
"No difference shown" is never "harmless": :func:`non_inferiority` is the one test of harmlessness
(upper one-sided 95% bound of the harm below a margin relative to the control mean).
:func:`check_new_field` asks of ONE field whether it lies outside the controls' field-to-field
spread (a prediction interval for a new field), the question a single test image can answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats

from phototox.errors import PhototoxError

Level = Literal["field", "replicate"]
MIN_BOOT_UNITS = 5
"""Bootstrap only with at least this many units in each arm; fewer use Welch's t."""
MIN_REPLICATES = 3
"""Fewer independent replicates per arm: the result describes these dishes, not the biology."""
N_BOOT = 4000

SICKER, HEALTHIER, NO_DIFFERENCE = "sicker", "healthier", "no difference shown"
UNLIKE = "unlike your controls"
HARMLESS, NOT_SHOWN_HARMLESS = "harmless (non-inferior)", "not shown harmless"


def cannot_test(level: Level) -> str:
    """The verdict when an arm has a single unit."""
    return f"cannot test: one {level} per arm"


@dataclass(frozen=True)
class Arm:
    """One arm's values of a readout, each optionally labelled with its replicate, field and frame."""

    values: np.ndarray
    replicate: tuple | None = None
    field: tuple | None = None
    frame: tuple | None = None
    name: str = "arm"

    @classmethod
    def of(
        cls,
        values: Sequence[float] | np.ndarray,
        replicate: Sequence | None = None,
        field: Sequence | None = None,
        frame: Sequence | None = None,
        name: str = "arm",
    ) -> Arm:
        """Validated arm: finite values, every label list as long as the values."""
        array = np.asarray(values, dtype=np.float64).ravel()
        if array.size == 0:
            raise PhototoxError(f"{name}: no values")
        if not np.isfinite(array).all():
            raise PhototoxError(f"{name}: value {array[~np.isfinite(array)][0]} is not a finite number")
        labels = {}
        for label, given in (("replicate", replicate), ("field", field), ("frame", frame)):
            if given is not None:
                given = tuple(given)
                if len(given) != array.size:
                    raise PhototoxError(f"{name}: {len(given)} {label} labels for {array.size} values")
            labels[label] = given
        return cls(array, labels["replicate"], labels["field"], labels["frame"], name)

    @property
    def level(self) -> Level:
        return "replicate" if self.replicate is not None else "field"

    def units(self) -> np.ndarray:
        """One value per unit of :attr:`level`: frames averaged per field, fields per replicate."""
        n = self.values.size
        if self.field is not None:
            field_of: list = list(self.field)
        elif self.frame is not None:
            field_of = [0] * n  # frames without fields: one field
        else:
            field_of = list(range(n))  # each value its own field
        replicate_of = list(self.replicate) if self.replicate is not None else [None] * n
        fields: dict[tuple, list[float]] = {}
        for rep, fld, value in zip(replicate_of, field_of, self.values, strict=True):
            fields.setdefault((rep, fld), []).append(float(value))
        if self.replicate is None:
            return np.array([np.mean(v) for v in fields.values()])
        replicates: dict = {}
        for (rep, _fld), v in fields.items():
            replicates.setdefault(rep, []).append(np.mean(v))
        return np.array([np.mean(v) for v in replicates.values()])


def _welch(t: np.ndarray, c: np.ndarray, confidence: float) -> tuple[float, float]:
    vt, vc = t.var(ddof=1) / t.size, c.var(ddof=1) / c.size
    se = float(np.sqrt(vt + vc))
    d = float(t.mean() - c.mean())
    if se == 0:
        return d, d
    df = (vt + vc) ** 2 / (vt**2 / (t.size - 1) + vc**2 / (c.size - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return d - half, d + half


def _bootstrap_t(t: np.ndarray, c: np.ndarray, confidence: float, n_boot: int, seed: int) -> tuple[float, float]:
    """Studentised bootstrap interval of the difference of means (units resampled within each arm)."""
    rng = np.random.default_rng(seed)
    d = float(t.mean() - c.mean())
    se = float(np.sqrt(t.var(ddof=1) / t.size + c.var(ddof=1) / c.size))
    if se == 0:
        return d, d
    bt = t[rng.integers(0, t.size, (n_boot, t.size))]
    bc = c[rng.integers(0, c.size, (n_boot, c.size))]
    se_star = np.sqrt(bt.var(axis=1, ddof=1) / t.size + bc.var(axis=1, ddof=1) / c.size)
    ok = se_star > 0
    t_star = (bt.mean(axis=1)[ok] - bc.mean(axis=1)[ok] - d) / se_star[ok]
    q_low, q_high = np.quantile(t_star, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return d - float(q_high) * se, d - float(q_low) * se


def interval(
    t: np.ndarray, c: np.ndarray, confidence: float = 0.95, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, str]:
    """Two-sided interval of mean(t) - mean(c) from per-unit values (each arm at least 2) and its method."""
    if min(t.size, c.size) < MIN_BOOT_UNITS:
        return (*_welch(t, c, confidence), "Welch t (Satterthwaite df)")
    return (*_bootstrap_t(t, c, confidence, n_boot, seed), f"studentised bootstrap ({n_boot} resamples)")


def replicate_caveat(level: Level, n_test: int, n_control: int) -> str:
    if level == "replicate" and min(n_test, n_control) >= MIN_REPLICATES:
        return ""
    have = "no replicate labels" if level == "field" else f"{min(n_test, n_control)} replicate(s) in an arm"
    return (
        f"; {have}: this describes these dishes, not the biology "
        f"(at least {MIN_REPLICATES} independent dishes/days per arm are needed for that)"
    )


def _check_levels(test: Arm, control: Arm) -> Level:
    if test.level != control.level:
        raise PhototoxError(
            f"{test.name} has {test.level} units, {control.name} {control.level} units: label replicates in both arms"
        )
    return test.level


@dataclass(frozen=True)
class Comparison:
    """Test against control on one readout: effect, interval, verdict and the units it rests on."""

    effect: float
    """mean of the test units minus mean of the control units"""
    low: float | None
    high: float | None
    verdict: str
    level: Level
    n_test: int
    n_control: int
    method: str
    words: str
    confidence: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def compare(
    test: Arm,
    control: Arm,
    *,
    higher_is_harm: bool = True,
    readout: str = "P(sick)",
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Comparison:
    """Test arm against control arm at the highest level present (see the module's rules)."""
    level = _check_levels(test, control)
    t, c = test.units(), control.units()
    effect = float(t.mean() - c.mean())
    units = f"{t.size} vs {c.size} {level}s"
    if min(t.size, c.size) < 2:
        verdict = cannot_test(level)
        words = (
            f"{readout}: test - control {effect:+.3g} ({units}); {verdict}: the spread between {level}s is unknown, "
            f"so no difference can be told from {level}-to-{level} variation"
        )
        return Comparison(effect, None, None, verdict, level, t.size, c.size, "none", words, confidence)
    low, high, method = interval(t, c, confidence, n_boot, seed)
    harm_low, harm_high = (low, high) if higher_is_harm else (-high, -low)
    verdict = SICKER if harm_low > 0 else HEALTHIER if harm_high < 0 else NO_DIFFERENCE
    words = (
        f"{readout}: test - control {effect:+.3g}, {confidence:.0%} CI [{low:+.3g}, {high:+.3g}] "
        f"({method}, {units}): {verdict}"
        + (" (not evidence of no harm: see the non-inferiority test)" if verdict == NO_DIFFERENCE else "")
        + replicate_caveat(level, t.size, c.size)
    )
    return Comparison(effect, low, high, verdict, level, t.size, c.size, method, words, confidence)


@dataclass(frozen=True)
class NonInferiority:
    """Is the harm smaller than the margin? Upper one-sided bound of the harm against ``margin_abs``."""

    harm: float
    """(test - control) in the harmful direction"""
    harm_upper: float | None
    margin: float
    """relative to the control mean"""
    margin_abs: float
    verdict: str
    level: Level
    n_test: int
    n_control: int
    method: str
    words: str
    confidence: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def non_inferiority(
    test: Arm,
    control: Arm,
    margin: float = 0.2,
    *,
    higher_is_harm: bool = True,
    readout: str = "P(sick)",
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> NonInferiority:
    """``harmless (non-inferior)`` only when the harm is shown to be below ``margin`` x the control mean.

    The null hypothesis "test is worse than the control mean by the margin or more" is tested
    on the per-unit means as ``mean(t) - (1 + margin) mean(c) >= 0`` (``(1 - margin)`` and ``<=``
    when lower is harm), so the uncertainty of the control mean enters the margin too. The
    one-sided bound at ``confidence`` is the end of the two-sided interval at ``2 * confidence - 1``;
    ``harm_upper`` is that bound plus the margin, in the readout's units.
    """
    if not margin > 0:
        raise PhototoxError(f"non-inferiority margin must be positive, got {margin}")
    level = _check_levels(test, control)
    t, c = test.units(), control.units()
    sign = 1.0 if higher_is_harm else -1.0
    harm = sign * float(t.mean() - c.mean())
    margin_abs = margin * abs(float(c.mean()))
    units = f"{t.size} vs {c.size} {level}s"
    bound = f"{margin:.0%} of the control mean ({margin_abs:.3g})"
    if min(t.size, c.size) < 2:
        verdict = cannot_test(level)
        words = f"{readout}: harm {harm:+.3g} ({units}); {verdict}; nothing can be called harmless"
        return NonInferiority(harm, None, margin, margin_abs, verdict, level, t.size, c.size, "none", words, confidence)
    low, high, method = interval(t, (1 + sign * margin) * c, 2 * confidence - 1, n_boot, seed)
    excess = high if higher_is_harm else -low  # upper bound of the harm beyond the margin
    upper = excess + margin_abs
    verdict = HARMLESS if excess < 0 else NOT_SHOWN_HARMLESS
    words = (
        f"{readout}: harm {harm:+.3g}, upper one-sided {confidence:.0%} bound {upper:+.3g} "
        f"{'<' if verdict == HARMLESS else '>='} margin {bound} ({method}, {units}): {verdict}"
        + replicate_caveat(level, t.size, c.size)
    )
    return NonInferiority(harm, upper, margin, margin_abs, verdict, level, t.size, c.size, method, words, confidence)


@dataclass(frozen=True)
class FieldCheck:
    """One field against the controls' fields: difference and its prediction interval for a new field."""

    difference: float
    """the field's value minus the control fields' mean"""
    low: float
    high: float
    verdict: str
    n_control: int
    words: str

    def as_dict(self) -> dict:
        return asdict(self)


def prediction_factor(k: int, level: float) -> float:
    """Half-width of the two-sided prediction interval for one new field, in control-field SDs:
    ``t(1 - level/2, k-1) * sqrt(1 + 1/k)`` for ``k`` control fields."""
    return float(stats.t.ppf(1 - level / 2, k - 1) * np.sqrt(1 + 1 / k))


def check_new_field(
    value: float,
    control_fields: Sequence[float] | np.ndarray,
    *,
    readout: str = "P(sick)",
    confidence: float = 0.95,
) -> FieldCheck:
    """Is one field outside the spread of the control fields? (t prediction interval, k-1 df)

    The interval is the difference plus or minus ``t(k-1) * s * sqrt(1 + 1/k)`` (``s``: the
    standard deviation of the k control field values): a further control field falls outside it
    with probability ``1 - confidence`` (normal field values). Outside: ``unlike your controls``,
    which says the field differs from the control fields, not that the light did it (one field
    is one unit: a field of another dish can differ for other reasons). Inside: ``no difference
    shown``.
    """
    c = np.asarray(control_fields, dtype=np.float64)
    if c.size < 2:
        raise PhototoxError(f"comparing with controls needs at least 2 control fields, got {c.size}")
    difference = float(value - c.mean())
    half = prediction_factor(c.size, 1 - confidence) * float(c.std(ddof=1))
    low, high = difference - half, difference + half
    outside = low > 0 or high < 0
    verdict = UNLIKE if outside else NO_DIFFERENCE
    side = "higher" if difference > 0 else "lower"
    words = (
        f"{readout} {value:.3f} vs control fields' {c.mean():.3f}: difference {difference:+.3f}, "
        f"{confidence:.0%} prediction interval for one new field [{low:+.3f}, {high:+.3f}] over {c.size} control "
        f"fields: "
        + (
            f"{UNLIKE} ({side} {readout} than {confidence:.0%} of control fields would show; one field against "
            "other dishes' fields: it says unlike, not caused by light)"
            if outside
            else f"{NO_DIFFERENCE} (within the controls' field-to-field spread; not evidence of no harm)"
        )
    )
    return FieldCheck(difference, low, high, verdict, c.size, words)
