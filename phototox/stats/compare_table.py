"""Any results table against its controls: the comparison engine for tables phototox did not write.

CellProfiler's exported image measurements, a Fiji Results table, ``phototox predict``'s CSV, a
time-course CSV or a spreadsheet of division rates all reach :mod:`phototox.stats.compare` through
:func:`compare_table`: one column holds the readout, one the condition (dose or treatment), and
optional columns label the replicate (dish, day, passage), the field (stage position) and the
frame. Frames of one field are one unit, the unit of inference is the highest level labelled.

Numeric conditions with a zero (light doses) go through :func:`phototox.stats.dose_tests.judge_doses`
(non-inferiority per dose, fixed sequence from the lowest dose, sensitivity check). Other
conditions are each compared with the control condition (two-sided test and non-inferiority),
each at its own 5%.

Rows whose value is empty or ``nan`` are skipped and counted. Rows the table marks out of the
model's domain (a column named ``out_of_domain`` or ``OutOfDomain``, or CellProfiler's ``Phototoxicity_OutOfDomain_<image>``)
keep their values, but no verdict of harm or harmlessness rests on them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from phototox.errors import ManifestError, PhototoxError
from phototox.io.tables import read_csv
from phototox.stats.compare import Arm, Comparison, NonInferiority, compare, non_inferiority
from phototox.stats.dose_tests import OUT_OF_DOMAIN, DoseTests, format_dose_tests, judge_doses

DOMAIN_COLUMNS = ("out_of_domain", "OutOfDomain")
TRUE_WORDS = {"1", "true", "yes", "y", "t"}
FALSE_WORDS = {"0", "false", "no", "n", "f", ""}


@dataclass(frozen=True)
class TableSpec:
    """Which columns of a table mean what."""

    value: str
    """the readout's column"""
    condition: str
    """the column naming each row's condition (a light dose or a treatment)"""
    control: str
    """the condition value of the zero-light controls"""
    replicate: str | None = None
    field: str | None = None
    frame: str | None = None
    higher_is_harm: bool = True
    margin: float = 0.2
    readout: str | None = None
    """the readout's name in the words (default: the value column)"""

    @property
    def name(self) -> str:
        return self.readout or self.value


@dataclass(frozen=True)
class ConditionResult:
    """One condition against the controls."""

    condition: str
    comparison: Comparison
    non_inferiority: NonInferiority | None
    verdict: str


@dataclass
class TableComparison:
    """Every condition of a table against its controls, and what was left out."""

    spec: TableSpec
    skipped: int
    """rows without a value"""
    out_of_domain: int
    """rows the table marks out of the model's domain"""
    conditions: list[ConditionResult] = field(default_factory=list)
    doses: DoseTests | None = None

    def rows(self) -> list[dict]:
        """One flat row per condition (CSV/JSON)."""
        out = []
        for r in self.conditions:
            c, ni = r.comparison, r.non_inferiority
            out.append(
                {
                    "readout": self.spec.name,
                    "condition": r.condition,
                    "control": self.spec.control,
                    "verdict": r.verdict,
                    "effect": c.effect,
                    "low": c.low,
                    "high": c.high,
                    "two_sided_verdict": c.verdict,
                    "level": c.level,
                    "n_test": c.n_test,
                    "n_control": c.n_control,
                    "method": c.method,
                    "harm_upper": None if ni is None else ni.harm_upper,
                    "margin": self.spec.margin,
                    "margin_abs": None if ni is None else ni.margin_abs,
                    "words": c.words if ni is None else f"{c.words}; {ni.words}",
                }
            )
        return out


def _flag(text: str, where: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ManifestError(f"{where}: '{text}' is not true/false")


def _domain_column(header: list[str]) -> str | None:
    for name in header:
        if name in DOMAIN_COLUMNS or "_OutOfDomain" in name:  # CellProfiler: Phototoxicity_OutOfDomain_<image>
            return name
    return None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_table(path: str | os.PathLike, spec: TableSpec) -> tuple[list[dict], int]:
    """Rows with ``condition``, ``value``, ``out_of_domain`` and labels; the count of rows without a value."""
    header, records = read_csv(path, "results table")
    for role, column in (
        ("--value", spec.value),
        ("--by", spec.condition),
        ("--replicate", spec.replicate),
        ("--field", spec.field),
        ("--frame", spec.frame),
    ):
        if column is not None and column not in header:
            raise ManifestError(f"{path}: no column '{column}' ({role}); columns: {', '.join(header[:12])}")
    domain = _domain_column(header)
    rows, skipped = [], 0
    for line, rec in enumerate(records, start=2):
        where = f"{path}, line {line}"
        text = rec[spec.value].strip()
        if text.lower() in ("", "nan", "na"):
            skipped += 1
            continue
        value = _number(text)
        if value is None:
            raise ManifestError(f"{where}: {spec.value} '{text}' is not a number")
        condition = rec[spec.condition].strip()
        if not condition:
            raise ManifestError(f"{where}: no {spec.condition}")
        out_of_domain = domain is not None and _flag(rec[domain], f"{where}, {domain}")
        row = {"condition": condition, "value": value, "out_of_domain": out_of_domain, "line": line}
        for key, column in (("replicate", spec.replicate), ("field", spec.field), ("frame", spec.frame)):
            if column is not None:
                label = rec[column].strip()
                if not label:
                    raise ManifestError(f"{where}: no {column} ({key})")
                row[key] = label
        rows.append(row)
    if not rows:
        raise ManifestError(f"{path}: no row with a value in '{spec.value}'")
    return rows, skipped


def _labels(rows: list[dict], key: str) -> list | None:
    """The rows' labels of one level (field names may repeat across dishes: Arm keys fields by dish)."""
    return [r[key] for r in rows] if key in rows[0] else None


def _arm(rows: list[dict], name: str) -> Arm:
    field_labels = _labels(rows, "field")
    if field_labels is None and "frame" not in rows[0]:
        field_labels = [r["line"] for r in rows]  # no labels: each row its own field
    return Arm.of([r["value"] for r in rows], _labels(rows, "replicate"), field_labels, _labels(rows, "frame"), name)


def _numeric_doses(conditions: set[str], control: str) -> bool:
    return all(_number(c) is not None for c in conditions) and _number(control) == 0.0


def compare_table(path: str | os.PathLike, spec: TableSpec, seed: int = 0) -> TableComparison:
    """Every condition of the table against the control condition (see the module's rules)."""
    rows, skipped = read_table(path, spec)
    return compare_rows(rows, spec, str(path), seed=seed, skipped=skipped)


def compare_rows(rows: list[dict], spec: TableSpec, source: str, *, seed: int = 0, skipped: int = 0) -> TableComparison:
    """Rows (``condition``, ``value``, ``out_of_domain``, ``line``, optional ``replicate``/``field``/``frame``
    labels) of every condition against the control condition; ``source`` names them in errors."""
    if not spec.margin > 0:
        raise PhototoxError(f"--margin must be a positive fraction of the control mean, got {spec.margin}")
    ood = sum(bool(r["out_of_domain"]) for r in rows)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["condition"], []).append(r)
    if spec.control not in groups:
        raise ManifestError(f"{source}: no row has {spec.condition} = '{spec.control}' (the controls)")
    if len(groups) < 2:
        raise ManifestError(f"{source}: only the controls; nothing to compare")
    result = TableComparison(spec, skipped, ood)
    options: dict = {"higher_is_harm": spec.higher_is_harm, "readout": spec.name, "seed": seed}
    if _numeric_doses(set(groups), spec.control):
        dose_rows = [{**r, "dose": float(r["condition"]), "path": str(r["line"])} for r in rows]
        if "field" not in rows[0] and "frame" in rows[0]:
            dose_rows = [{**r, "field": r["condition"]} for r in dose_rows]  # frames only: one field per dose
        tests = judge_doses(
            dose_rows,
            spec.margin,
            seed,
            key="value",
            higher_is_harm=spec.higher_is_harm,
            readout=spec.name,
        )
        result.doses = tests
        for d in tests.doses:
            result.conditions.append(ConditionResult(f"{d.dose:g}", d.comparison, d.non_inferiority, d.verdict))
        return result
    controls = _arm(groups.pop(spec.control), spec.control)
    control_ood = any(r["out_of_domain"] for r in rows if r["condition"] == spec.control)
    for name in sorted(groups):
        arm = _arm(groups[name], name)
        comparison = compare(arm, controls, **options)
        if control_ood or any(r["out_of_domain"] for r in groups[name]):
            result.conditions.append(ConditionResult(name, comparison, None, OUT_OF_DOMAIN))
            continue
        ni = non_inferiority(arm, controls, spec.margin, **options)
        result.conditions.append(ConditionResult(name, comparison, ni, ni.verdict))
    return result


def format_table_comparison(result: TableComparison) -> list[str]:
    """Terminal lines: what was read, then one line per condition (or the dose report)."""
    spec = result.spec
    lines = [
        f"{spec.name} by {spec.condition} against '{spec.control}' "
        f"({'higher' if spec.higher_is_harm else 'lower'} is harm; margin {spec.margin:.0%} of the control mean)"
    ]
    if result.skipped:
        lines.append(f"  {result.skipped} row(s) without a value skipped")
    if result.out_of_domain:
        lines.append(f"  {result.out_of_domain} row(s) out of the model's domain: no verdict rests on their conditions")
    if result.doses is not None:
        return lines + format_dose_tests(result.doses)
    lines.append(
        "  each condition against the controls, each at 5% (several conditions: expect 5% false per condition)"
    )
    for r in result.conditions:
        ni = r.non_inferiority
        lines.append(f"  {r.condition}: {r.verdict}; {r.comparison.words}" + (f"; {ni.words}" if ni else ""))
    return lines
