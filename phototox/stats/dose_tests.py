"""Which light doses are shown harmless? Non-inferiority per dose against the zero-light controls.

Replaces the "largest safe dose" of a fitted curve (an absence of evidence). Per exposed dose,
:func:`phototox.stats.compare.non_inferiority` asks whether the harm (dose minus dose-0 controls, on
per-unit means: fields, or replicates when the manifest labels them) is below ``margin`` x the
control mean, with an upper one-sided 95% bound. Doses are tested in a fixed sequence from the
lowest up, each at 5%, stopping at the first that is not shown harmless (the family-wise error
stays 5%); the **no-observed-effect dose** is the highest dose of the passing run.

A dose is called harmless only when the assay showed it could see harm: the highest dose must be
``sicker`` than the controls with an estimated harm beyond the margin. Otherwise "the assay showed
no sensitivity: no dose can be called harmless". An arm with any out-of-domain image is not tested
(its P(sick) is not to be trusted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phototox.errors import PhototoxError
from phototox.stats.compare import (
    HARMLESS,
    N_BOOT,
    SICKER,
    Arm,
    Comparison,
    NonInferiority,
    compare,
    non_inferiority,
    replicate_caveat,
)

DEFAULT_MARGIN = 0.2
INSENSITIVE = "the assay showed no sensitivity: no dose can be called harmless"
OUT_OF_DOMAIN = "cannot test: P(sick) out of the model's domain"


@dataclass(frozen=True)
class DoseVerdict:
    """One exposed dose against the zero-light controls."""

    dose: float
    verdict: str
    comparison: Comparison
    non_inferiority: NonInferiority | None


@dataclass
class DoseTests:
    """The verdict of every exposed dose, the sensitivity check and the no-observed-effect dose."""

    margin: float
    sensitive: bool
    sensitivity: str
    no_observed_effect_dose: float | None
    doses: list[DoseVerdict] = field(default_factory=list)
    readout: str = "P(sick)"
    control_mean: float | None = None
    """mean of the control units (the margin is relative to it)"""
    higher_is_harm: bool = True

    def as_dict(self) -> dict:
        return {
            "readout": self.readout,
            "control_mean": self.control_mean,
            "higher_is_harm": self.higher_is_harm,
            "margin": self.margin,
            "sensitive": self.sensitive,
            "sensitivity": self.sensitivity,
            "no_observed_effect_dose": self.no_observed_effect_dose,
            "doses": [
                {
                    "dose": d.dose,
                    "verdict": d.verdict,
                    "comparison": d.comparison.as_dict(),
                    "non_inferiority": None if d.non_inferiority is None else d.non_inferiority.as_dict(),
                }
                for d in self.doses
            ],
        }


def _arm(rows: list[dict], name: str, key: str = "mean_sick_probability") -> Arm:
    """Rows of one dose as an arm: replicate and field labels where the manifest gives them."""

    def labels(key: str) -> list | None:
        given = [r.get(key) for r in rows]
        if all(v in (None, "") for v in given):
            return None
        if any(v in (None, "") for v in given):
            raise PhototoxError(f"{name}: '{key}' given for some images and not others")
        return given

    field_labels = labels("field")
    if field_labels is None:
        field_labels = [r["path"] for r in rows]  # each file one field
    return Arm.of([r[key] for r in rows], labels("replicate"), field_labels, name=name)


def judge_doses(
    rows: list[dict],
    margin: float = DEFAULT_MARGIN,
    seed: int = 0,
    *,
    key: str = "mean_sick_probability",
    higher_is_harm: bool = True,
    readout: str = "P(sick)",
    n_boot: int = N_BOOT,
) -> DoseTests:
    """Non-inferiority of each exposed dose (rows: ``dose``, the readout under ``key``, ``path``, optional
    ``replicate``, ``field``, ``out_of_domain``) against the dose-0 rows, in a fixed sequence.

    ``higher_is_harm``: the readout's harmful direction (False for division rate, growth, motility)."""
    if not margin > 0:
        raise PhototoxError(f"--margin must be a positive fraction of the control mean, got {margin}")
    by_dose: dict[float, list[dict]] = {}
    for r in rows:
        by_dose.setdefault(float(r["dose"]), []).append(r)
    if 0.0 not in by_dose:
        raise PhototoxError("no zero-light controls (dose 0) in the manifest: no dose can be tested")
    controls = _arm(by_dose.pop(0.0), "dose 0", key)
    sign = 1.0 if higher_is_harm else -1.0
    options: dict = {"higher_is_harm": higher_is_harm, "readout": readout, "n_boot": n_boot, "seed": seed}
    if not by_dose:
        raise PhototoxError("no exposed dose in the manifest")
    ood = {d for d, rs in by_dose.items() if any(r.get("out_of_domain") for r in rs)}
    control_ood = any(r.get("out_of_domain") for r in rows if float(r["dose"]) == 0)
    doses = sorted(by_dose)
    comparisons = {d: compare(_arm(by_dose[d], f"dose {d:g}", key), controls, **options) for d in doses}
    top = comparisons[doses[-1]]
    sensitive = bool(
        not control_ood
        and doses[-1] not in ood
        and top.verdict == SICKER
        and sign * top.effect > margin * abs(float(controls.units().mean()))
    )
    sensitivity = (
        f"sensitivity shown: the highest dose {doses[-1]:g} is {SICKER} than the controls (harm "
        f"{sign * top.effect:+.3g}, beyond the margin)"
        if sensitive
        else f"{INSENSITIVE} (the highest dose {doses[-1]:g}: {top.verdict}, harm {sign * top.effect:+.3g}; "
        f"it must be {SICKER} by more than {margin:.0%} of the control mean)"
    )
    result = DoseTests(
        margin,
        sensitive,
        sensitivity,
        None,
        readout=readout,
        control_mean=float(controls.units().mean()),
        higher_is_harm=higher_is_harm,
    )
    stopped: float | None = None
    for d in doses:
        ni = None
        if control_ood or d in ood:
            verdict = OUT_OF_DOMAIN
        else:
            ni = non_inferiority(_arm(by_dose[d], f"dose {d:g}", key), controls, margin, **options)
            verdict = ni.verdict
        if not sensitive:
            if verdict == HARMLESS:
                verdict = "not called harmless: the assay showed no sensitivity"
        elif stopped is not None:
            verdict = f"not tested: the fixed sequence stopped at dose {stopped:g}"
        elif verdict == HARMLESS:
            result.no_observed_effect_dose = d
        else:
            stopped = d
        result.doses.append(DoseVerdict(d, verdict, comparisons[d], ni))
    return result


def format_dose_tests(tests: DoseTests, unit: str = "") -> list[str]:
    """One line per dose and the conclusion, for the terminal."""
    u = f" {unit}" if unit else ""
    lines = [
        f"{tests.readout}: non-inferiority against the zero-light controls (margin: harm below {tests.margin:.0%} of "
        f"the control mean {tests.readout}; upper one-sided 95% bound; fixed sequence from the lowest dose):"
    ]
    for d in tests.doses:
        ni = d.non_inferiority
        bound = (
            f"harm {ni.harm:+.3f}, upper bound {ni.harm_upper:+.3f} vs margin {ni.margin_abs:.3f}"
            if ni is not None and ni.harm_upper is not None
            else f"difference {d.comparison.effect:+.3f}"
        )
        lines.append(
            f"  dose {d.dose:g}{u}: {d.verdict} ({bound}; {d.comparison.n_test} vs {d.comparison.n_control} "
            f"{d.comparison.level}s; two-sided: {d.comparison.verdict})"
        )
    lines.append(f"  {tests.sensitivity}")
    noel = tests.no_observed_effect_dose
    lines.append(
        f"  no-observed-effect dose: {noel:g}{u} (shown harmless within the margin only)"
        if noel is not None
        else "  no dose is shown harmless"
    )
    caveats = {replicate_caveat(d.comparison.level, d.comparison.n_test, d.comparison.n_control) for d in tests.doses}
    lines += [f"  {c.removeprefix('; ')}" for c in sorted(caveats) if c]
    return lines
