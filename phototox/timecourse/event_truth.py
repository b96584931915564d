"""Annotated events (``tests/data/t98g_events.csv``, see ``docs/annotation-protocol-events.md``) and
matching of detected events against them: precision and recall with Wilson 95% intervals.

A detected event matches an annotated one when it starts within ``frame_tol`` frames of the
annotated first round frame and within ``dist_px`` of its position; each annotation is matched
once (nearest first).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phototox.errors import ManifestError
from phototox.stats.calibration_metrics import wilson_interval

OUTCOMES = ("division", "failed_division", "persistent_round", "unresolved")


@dataclass
class Event:
    """One rounding episode: ``frame`` is 0-based (first round frame); ``y``, ``x`` in px."""

    frame: int
    y: float
    x: float
    outcome: str
    confidence: int = 3
    outcome_frame: int | None = None
    note: str = ""
    track: object = None  # the detector's round-object track (mitosis.Track), when detected


def read_events(path: str | Path) -> list[Event]:
    """Annotated events of a CSV (1-based ``frame`` as in the file names, converted to 0-based)."""
    events = []
    with Path(path).open(newline="") as handle:
        for i, row in enumerate(csv.DictReader(handle), start=2):
            try:
                outcome = row["outcome"].strip()
                if outcome not in OUTCOMES:
                    raise ValueError(f"outcome {outcome!r} is not one of {OUTCOMES}")
                done = row.get("outcome_frame", "").strip()
                events.append(
                    Event(
                        int(row["frame"]) - 1,
                        float(row["y"]),
                        float(row["x"]),
                        outcome,
                        int(row.get("confidence") or 3),
                        int(done) - 1 if done else None,
                        row.get("note", ""),
                    )
                )
            except (KeyError, ValueError) as error:
                raise ManifestError(f"{path}: line {i}: {error}") from None
    return events


def in_box(events: list[Event], y0: int, x0: int, y1: int, x1: int) -> list[Event]:
    """Events inside rows ``[y0, y1)`` and columns ``[x0, x1)``, shifted to that box's origin."""
    return [
        Event(e.frame, e.y - y0, e.x - x0, e.outcome, e.confidence, e.outcome_frame, e.note)
        for e in events
        if y0 <= e.y < y1 and x0 <= e.x < x1
    ]


def match(
    detected: list[Event], truth: list[Event], frame_tol: int = 2, dist_px: float = 20.0
) -> list[tuple[int, int]]:
    """Pairs (detected index, truth index), nearest in space first, each used at most once."""
    pairs = sorted(
        (float(np.hypot(d.y - t.y, d.x - t.x)), i, j)
        for i, d in enumerate(detected)
        for j, t in enumerate(truth)
        if abs(d.frame - t.frame) <= frame_tol and np.hypot(d.y - t.y, d.x - t.x) <= dist_px
    )
    used_d: set[int] = set()
    used_t: set[int] = set()
    out = []
    for _, i, j in pairs:
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
            out.append((i, j))
    return out


@dataclass
class Score:
    """Precision and recall of one event class, with Wilson 95% intervals."""

    true_positives: int
    detected: int
    annotated: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.detected if self.detected else float("nan")

    @property
    def recall(self) -> float:
        return self.true_positives / self.annotated if self.annotated else float("nan")

    @property
    def precision_interval(self) -> tuple[float, float]:
        return wilson_interval(self.true_positives, self.detected)

    @property
    def recall_interval(self) -> tuple[float, float]:
        return wilson_interval(self.true_positives, self.annotated)

    def line(self) -> str:
        """'precision 5/6 = 0.83 (0.44-0.97), recall 5/7 = 0.71 (0.36-0.92)'."""
        p, r = self.precision_interval, self.recall_interval
        return (
            f"precision {self.true_positives}/{self.detected} = {self.precision:.2f} ({p[0]:.2f}-{p[1]:.2f}), "
            f"recall {self.true_positives}/{self.annotated} = {self.recall:.2f} ({r[0]:.2f}-{r[1]:.2f})"
        )


def score(
    detected: list[Event],
    truth: list[Event],
    outcomes: tuple[str, ...] = ("division",),
    frame_tol: int = 2,
    dist_px: float = 20.0,
    ignore: tuple[str, ...] = ("unresolved",),
) -> Score:
    """Score the detected events of ``outcomes`` against the annotated ones of the same outcomes.

    A detection matching an annotated event of an ``ignore`` outcome (e.g. a rounding cut short by
    the end of the series) counts neither as a hit nor as a false alarm.
    """
    det = [d for d in detected if d.outcome in outcomes]
    tru = [t for t in truth if t.outcome in outcomes]
    hits = match(det, tru, frame_tol, dist_px)
    hit = {i for i, _ in hits}
    rest = [d for i, d in enumerate(det) if i not in hit]
    excused = match(rest, [t for t in truth if t.outcome in ignore], frame_tol, dist_px)
    return Score(len(hits), len(det) - len(excused), len(tru))
