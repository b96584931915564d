"""Does the event detector recover a synthetic dose model? Known truth vs detected, per field and dose.

Each field is a stack with its truth dict (as :func:`phototox.synth.timelapse.render_dose_series` gives: every
mitosis: first round frame, position, outcome). The detector (:func:`phototox.timecourse.events.events_in_stack`)
and the nuclei-free cell count (:func:`phototox.timecourse.cells.frame_cells`) run on the pixels
only. Per dose (fields pooled):

- divisions and failed divisions, true and detected (a true mitosis counts when it resolves in the
  recording: its daughters or fragments appear at least ``RESOLVE_FRAMES`` frames before the end;
  detections matched to truth within 2 frames and 20 px give precision/recall; a detection matching
  an unresolved true mitosis is left out of both sides);
- failure fraction = failed / (divisions + failed), with a Wilson 95% interval (mitoses treated as
  independent given the dose, as the model draws them);
- division rate per cell per hour = divisions / cell-hours (true: live cells of the truth; detected:
  the estimated cell count, every ``cell_every``-th frame, times the frame interval).

Synthetic cells test the machinery, not the biology.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from phototox.stats.calibration_metrics import wilson_interval
from phototox.timecourse.event_truth import Event, score

RESOLVE_FRAMES = 2  # after the round phase: the daughters (or fragments) must be seen this many frames
OUTCOMES = ("division", "failed_division")


@dataclass
class FieldRecovery:
    """One field: its dose, true and detected event counts, matches and cell-hours."""

    dose_j_cm2: float
    true: dict[str, int]
    detected: dict[str, int]
    matched: dict[str, int]
    true_cell_hours: float
    detected_cell_hours: float
    mean_delay_frames: float  # cycle frames lost per mitosis after the onset (NaN: none)


def truth_events(truth: dict, n_frames: int, rounding_frames: int) -> list[Event]:
    """The truth's mitoses as events; those that do not resolve within the recording are ``unresolved``."""
    last = n_frames - 1 - rounding_frames - RESOLVE_FRAMES
    return [
        Event(m["frame"], m["y"], m["x"], m["outcome"] if m["frame"] <= last else "unresolved")
        for m in truth["mitoses"]
    ]


def recover_field(
    stack: np.ndarray,
    truth: dict,
    dose_j_cm2: float,
    interval_min: float,
    pixel_um: float,
    rounding_frames: int,
    cell_every: int = 3,
) -> FieldRecovery:
    """Detect the events and cells of one rendered field and count them against its truth."""
    from phototox.timecourse.cells import frame_cells
    from phototox.timecourse.events import events_in_stack

    n = len(stack)
    detected = events_in_stack(stack, interval_min, pixel_um)
    true = truth_events(truth, n, rounding_frames)
    scores = {o: score(detected, true, (o,)) for o in OUTCOMES}
    counts = [frame_cells(stack[t], pixel_um).count for t in range(0, n, cell_every)]
    hours = interval_min / 60.0
    delays = [m["delay_frames"] for m in truth["mitoses"] if m["dose_since_onset"] > 0]
    return FieldRecovery(
        dose_j_cm2,
        {o: scores[o].annotated for o in OUTCOMES},
        {o: scores[o].detected for o in OUTCOMES},
        {o: scores[o].true_positives for o in OUTCOMES},
        float(np.sum(truth["cells_per_frame"])) * hours,
        float(np.mean(counts)) * n * hours,
        float(np.mean(delays)) if delays else float("nan"),
    )


@dataclass
class DoseRecovery:
    """Fields of one dose pooled: counts, failure fractions (Wilson 95%) and division rates."""

    dose_j_cm2: float
    n_fields: int
    true: dict[str, int]
    detected: dict[str, int]
    matched: dict[str, int]
    true_cell_hours: float
    detected_cell_hours: float
    mean_delay_frames: float

    def failure(self, which: str) -> tuple[float, float, float, int]:
        """(fraction, low, high, mitoses) of failed divisions among the ``true`` or ``detected`` ones."""
        counts = self.true if which == "true" else self.detected
        n = counts["division"] + counts["failed_division"]
        fraction = counts["failed_division"] / n if n else float("nan")
        return (fraction, *wilson_interval(counts["failed_division"], n), n)

    def division_rate(self, which: str) -> float:
        """Divisions per cell per hour (``true`` or ``detected`` divisions and cell-hours)."""
        if which == "true":
            return self.true["division"] / self.true_cell_hours if self.true_cell_hours else float("nan")
        hours = self.detected_cell_hours
        return self.detected["division"] / hours if hours else float("nan")

    def mitosis_rate(self, which: str) -> float:
        """Mitoses entered (divisions + failed) per cell per hour: lower when mitosis is delayed."""
        counts = self.true if which == "true" else self.detected
        hours = self.true_cell_hours if which == "true" else self.detected_cell_hours
        return (counts["division"] + counts["failed_division"]) / hours if hours else float("nan")


def pool_by_dose(fields: list[FieldRecovery]) -> list[DoseRecovery]:
    """One :class:`DoseRecovery` per dose, in increasing dose."""
    out = []
    for dose in sorted({f.dose_j_cm2 for f in fields}):
        group = [f for f in fields if f.dose_j_cm2 == dose]
        delays = [f.mean_delay_frames for f in group if np.isfinite(f.mean_delay_frames)]
        out.append(
            DoseRecovery(
                dose,
                len(group),
                {o: sum(f.true[o] for f in group) for o in OUTCOMES},
                {o: sum(f.detected[o] for f in group) for o in OUTCOMES},
                {o: sum(f.matched[o] for f in group) for o in OUTCOMES},
                sum(f.true_cell_hours for f in group),
                sum(f.detected_cell_hours for f in group),
                float(np.mean(delays)) if delays else float("nan"),
            )
        )
    return out


def monotone(values: list[float], increasing: bool) -> bool:
    """Are the (finite) values ordered, non-strictly, in the given direction?"""
    v = [x for x in values if np.isfinite(x)]
    return all((b >= a) if increasing else (b <= a) for a, b in pairwise(v))
