"""Per dose: is a biological readout of the exposed fields non-inferior to the zero-light controls?

Each field is one unit and gives one summary value per readout over the recording:

* confluence: growth, the mean of the last ``baseline_frames`` frames over the mean of the first;
* motion: motility, the mean speed after the baseline over the mean speed during it;
* divisions: the division rate, mean divisions per hour over the recording (rounding events that
  ended in two daughters: a dose that blocks mitosis and one that turns divisions into failed ones
  both lower it; the rounding rate with failed divisions is plotted, not judged);
* cell count: growth, like confluence (last over first frames);
* median cell area: cell size, like motion (after over during the baseline).

All are harmed when lower. Per readout, :func:`phototox.stats.dose_tests.judge_doses` (the
comparison engine) tests each dose against the controls for non-inferiority (relative margin,
fixed sequence from the lowest dose, the highest dose as the positive control that must show the
assay's sensitivity). P(sick) gets onsets only: it is no biological readout and never makes a
dose harmless.
"""

from __future__ import annotations

import warnings

import numpy as np

from phototox.errors import PhototoxError
from phototox.stats.dose_tests import DoseTests, judge_doses

READOUTS = {
    "confluence": "confluence growth (last / first frames)",
    "motion_um_per_min": "motility (speed after / during the baseline)",
    "division_events_per_hour": "division rate (divisions per hour)",
    "cell_count": "cell growth (cells, last / first frames)",
    "median_cell_area_um2": "cell size (median area after / during the baseline)",
}


def field_summary(measure: str, values: np.ndarray, baseline_frames: int) -> float:
    """One field's summary of ``measure`` over the recording (NaN when it has no usable baseline)."""
    b = max(1, baseline_frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if measure in ("mitotic_events_per_hour", "division_events_per_hour"):
            return float(np.nanmean(values))
        finite = values[np.isfinite(values)]
        if finite.size <= b:
            return float("nan")
        before = float(np.mean(finite[:b]))
        after = float(np.mean(finite[-b:])) if measure in ("confluence", "cell_count") else float(np.mean(finite[b:]))
    return after / before if before > 0 else float("nan")


def dose_verdicts(
    measures: dict[str, np.ndarray],
    groups: list[str],
    names: list[str],
    group_doses: dict[str, float],
    baseline_frames: int,
    margin: float,
    seed: int = 0,
    n_boot: int = 0,
) -> dict[str, DoseTests | str]:
    """Per biological readout present: the dose tests, or ``cannot test: ...`` in words."""
    out: dict[str, DoseTests | str] = {}
    for measure, readout in READOUTS.items():
        if measure not in measures:
            continue
        rows: list[dict] = []
        for values, group, name in zip(measures[measure], groups, names, strict=True):
            rows.append(
                {"dose": group_doses[group], "value": field_summary(measure, values, baseline_frames), "path": name}
            )
        missing = [r["path"] for r in rows if not np.isfinite(r["value"])]
        if missing:
            out[measure] = f"cannot test: field {missing[0]} has no usable {readout}"
            continue
        options = {"n_boot": n_boot} if n_boot > 0 else {}
        try:
            out[measure] = judge_doses(
                rows, margin, seed, key="value", higher_is_harm=False, readout=readout, **options
            )
        except PhototoxError as exc:
            out[measure] = f"cannot test: {exc}"
    return out
