"""Synthetic phase-contrast time-lapses of migrating, dividing cells under a light dose.

Builds on :mod:`phototox.synth.fields` (same cell shapes and phase-contrast optics). Healthy cells
crawl (persistent random walk, kept ``MARGIN_PX`` from the border), carry a fine ~1 um
cytoplasmic texture (granules, organelles: what :mod:`phototox.timecourse.cells` finds cells by) and
divide as :mod:`phototox.synth.events` draws it: a mitotic cell rounds up into a phase-bright sphere
for ``rounding_frames`` frames, two bright daughters separate over two frames, then spread. A failed
division bursts into three to five bright fragments that fade over three frames and leave a
damaged remnant (a death).

**Onset.** Damage starts when the cumulative dose reaches ``critical_dose`` (so the onset time is a
known function of dose: ``onset_frame = ceil(critical_dose / dose_per_frame) - 1``, see
:func:`onset_frame`). From then on cells slow down (speed halves every ``slowdown_frames``).

**Dose model** (:class:`TimelapseBiology`). With ``D`` the dose received since the onset (J/cm2,
0 before it and in the controls):

- mitotic delay: a cell's cycle advances ``1 / (1 + D / delay_dose)`` frames per frame, so the
  time to the next mitosis lengthens with dose (``delay_dose``: the dose that halves the pace);
  the frames lost per mitosis are recorded (``mitosis_delays``);
- mitotic failure: a cell entering mitosis at dose ``D`` fails with probability
  ``p_fail(D) = 1 - exp(-D / fail_dose)``;
- death: from ``death_delay`` frames after the onset an interphase cell dies in a frame that
  delivers ``dD`` with probability ``1 - exp(-dD / death_dose)`` (survival ``exp(-D / death_dose)``);
  failed divisions die as well.

The ground truth of each field (:meth:`TimelapseCells.truth`) lists every mitosis (first round frame,
position, outcome, dose ``D`` at entry), deaths and the live cells per frame, so the true division
delay and failure fraction per dose are known. These series test the machinery (does
``phototox timecourse`` recover a known onset, division rate and failure fraction?); they are not
real cells and are no validation of the biology.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from phototox.io.images import write_tiff_atomic
from phototox.synth.fields import _damaged_cell, _disc, _healthy_cell, phase_contrast

PIXEL_UM = 0.87
INTERVAL_MIN = 10.0
MITOTIC_RADIUS_PX = 14.0  # a rounded cell about 24 um across at PIXEL_UM
MARGIN_PX = 22.0  # cells keep this far from the border (a round cell touching it is not detectable)
MITOTIC_PHI = 2.0  # optical thickness (negative: phase-bright) of a round cell at its centre
GRANULE_DENSITY = 0.1  # fraction of a spread cell's pixels that carry a granule (~1 um detail)
GRANULE_PHI = 1.0  # optical thickness of a granule (before blurring)
DAUGHTER_FRAMES = 2  # frames the two daughters stay round and bright while they separate
FRAGMENT_FRAMES = 3  # frames the fragments of a failed division stay visible


@dataclass
class TimelapseBiology:
    """Parameters of the synthetic cells (frames are ``INTERVAL_MIN`` apart; doses in J/cm2)."""

    speed_px: float = 2.5  # mean displacement per frame of a healthy cell
    cycle_frames: int = 36  # mean time between divisions (6 h)
    rounding_frames: int = 4  # how long a mitotic cell stays round before the daughters separate
    critical_dose: float = 0.1  # cumulative dose at which damage starts
    slowdown_frames: float = 3.0  # half-life of the speed after the onset
    death_delay: int = 6  # frames from onset before interphase cells may die
    delay_dose: float = 0.1  # dose since onset that halves the pace of the cell cycle
    fail_dose: float = 0.02  # p_fail = 1 - exp(-dose since onset / fail_dose)
    death_dose: float = 0.3  # interphase survival exp(-dose since onset / death_dose)

    def p_fail(self, dose_since_onset: float) -> float:
        """Probability that a mitosis entered at ``dose_since_onset`` fails."""
        return 1.0 - math.exp(-max(0.0, dose_since_onset) / self.fail_dose)

    def pace(self, dose_since_onset: float) -> float:
        """Frames of cell cycle advanced per frame at ``dose_since_onset`` (1 when unexposed)."""
        return 1.0 / (1.0 + max(0.0, dose_since_onset) / self.delay_dose)


def onset_frame(dose_per_frame_j_cm2: float, biology: TimelapseBiology | None = None) -> int | None:
    """Frame at which damage starts for a dose per frame (None: never, e.g. the controls)."""
    b = biology or TimelapseBiology()
    if dose_per_frame_j_cm2 <= 0:
        return None
    return max(0, math.ceil(b.critical_dose / dose_per_frame_j_cm2 - 1e-9) - 1)


@dataclass
class _Cell:
    y: float
    x: float
    heading: float
    shape_seed: int
    age: float  # cycle frames advanced since the last division
    cycle: int
    rounding: int = -1  # frames spent rounded in mitosis; -1 when not dividing
    dead_at: int | None = None
    scale: float = 1.0
    newborn: int = -1  # frames since the division that made this daughter (round while < DAUGHTER_FRAMES)
    fails: bool = False  # this mitosis will fail
    burst: int = -1  # frames since a failed division burst; -1 otherwise
    fragments: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    lost: float = 0.0  # cycle frames lost to the dose since the last division


def _mitotic_cell(phi: np.ndarray, cy: float, cx: float, radius: float, thickness: float = 1.2) -> None:
    """A rounded mitotic cell: phase-bright body in a dark ring.

    A sphere's phase shift is beyond the first-order model of :func:`phototox.synth.fields.phase_contrast`
    (there thick means dark); real rounded cells look bright, so the body is drawn with negative
    optical thickness, which the model renders bright with a dark surround. ``thickness``: its
    magnitude at the centre (:class:`TimelapseCells` draws ``MITOTIC_PHI``, brighter than the
    default, so that a round cell stands out from textured neighbours).
    """
    yy, xx = np.ogrid[: phi.shape[0], : phi.shape[1]]
    dome = np.clip(1 - ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2, 0, None) ** 0.5
    phi -= dome * thickness


@lru_cache(maxsize=512)
def _texture_patch(seed: int, size: int) -> np.ndarray:
    """A (size, size) texture of sparse one-pixel granules (``GRANULE_DENSITY`` of the pixels,
    thickness ``GRANULE_PHI``; the optics blur them to about 1 um) that moves with its cell."""
    granules = np.random.default_rng(seed).random((size, size)) < GRANULE_DENSITY
    return granules * GRANULE_PHI


def _textured_cell(
    phi: np.ndarray, labels: np.ndarray, cid: int, cy: float, cx: float, scale: float, shape_seed: int
) -> None:
    """A spread cell of :func:`phototox.synth.fields._healthy_cell` with a fine texture on its body."""
    own = np.zeros_like(phi)
    own_labels = np.zeros(phi.shape, np.int32)
    _healthy_cell(own, own_labels, cid, cy, cx, scale, np.random.default_rng(shape_seed))
    body = own_labels == cid
    if body.any():
        n = 2 * _REACH
        patch = _texture_patch(shape_seed + 1, n)
        rows = (np.arange(phi.shape[0]) - round(cy)) % n
        cols = (np.arange(phi.shape[1]) - round(cx)) % n
        own += np.where(body, patch[np.ix_(rows, cols)], 0.0)
    phi += own
    labels[body & (labels == 0)] = cid


_REACH = 80  # no cell part lies farther than this (px) from its centre


class TimelapseCells:
    """One field of synthetic cells advanced frame by frame under the light it actually receives.

    Damage starts at the first frame whose cumulative dose (this frame's included) reaches
    ``critical_dose``: with a constant dose per frame that is :func:`onset_frame`. After it the dose
    model of the module docstring applies. Used by :func:`render_dose_series` and by the simulated
    microscope (:mod:`phototox.live.sim`).
    """

    def __init__(self, size: int = 256, seed: int = 0, n_cells: int = 8, biology: TimelapseBiology | None = None):
        self.b = biology or TimelapseBiology()
        self.size, self.seed = size, seed
        self.rng = np.random.default_rng(seed)
        b, rng = self.b, self.rng
        lo, hi = self._bounds()
        self.cells = [
            _Cell(
                rng.uniform(lo, hi),
                rng.uniform(lo, hi),
                rng.uniform(0, 2 * np.pi),
                int(rng.integers(1 << 30)),
                float(rng.integers(0, b.cycle_frames)),
                self._cycle(),
            )
            for _ in range(n_cells)
        ]
        self.t = 0
        self.cumulative_dose = 0.0
        self.dose_at_onset = 0.0
        self.onset: int | None = None  # frame at which damage started
        self.divisions: list[int] = []
        self.failed_divisions: list[int] = []
        self.deaths: list[int] = []
        self.mitoses: list[dict] = []  # frame, y, x, outcome, dose_since_onset, delay_frames
        self.cells_per_frame: list[int] = []

    def _bounds(self) -> tuple[float, float]:
        margin = min(MARGIN_PX, self.size / 3)
        return margin, self.size - 1 - margin

    def _cycle(self) -> int:
        b = self.b
        return max(2 * b.rounding_frames, int(self.rng.normal(b.cycle_frames, b.cycle_frames / 6)))

    @property
    def dose_since_onset(self) -> float:
        """Dose received since the onset (J/cm2; 0 before it)."""
        return 0.0 if self.onset is None else max(0.0, self.cumulative_dose - self.dose_at_onset)

    def truth(self) -> dict:
        """Ground truth so far: onset frame (None: not yet), division, failed-division and death frames,
        each mitosis (first round frame, y, x, outcome, dose since onset at entry, cycle frames lost
        to the dose) and the live cells per frame."""
        return {
            "onset_frame": self.onset,
            "divisions": self.divisions,
            "failed_divisions": self.failed_divisions,
            "deaths": self.deaths,
            "mitoses": self.mitoses,
            "cells_per_frame": self.cells_per_frame,
        }

    def step(self, dose_j_cm2: float = 0.0, damage_start: int | None = None) -> np.ndarray:
        """Advance one frame that received ``dose_j_cm2``; return its (size, size) uint16 image.

        ``damage_start``: a known onset frame overriding the cumulative rule (used by
        :func:`render_dose_series`, whose onset comes from :func:`onset_frame`).
        """
        b, size, t = self.b, self.size, self.t
        self.cumulative_dose += dose_j_cm2
        if self.onset is None and (
            (damage_start is not None and t >= damage_start)
            or (damage_start is None and dose_j_cm2 > 0 and self.cumulative_dose >= b.critical_dose * (1 - 1e-9))
        ):
            self.onset = t if damage_start is None else damage_start
            self.dose_at_onset = self.cumulative_dose
        start = self.onset if self.onset is not None else 1 << 30
        damaged = t >= start
        dose = self.dose_since_onset
        speed = b.speed_px * (0.5 ** ((t - start) / b.slowdown_frames) if damaged else 1.0)
        p_death = 1.0 - math.exp(-dose_j_cm2 / b.death_dose) if damaged and t >= start + b.death_delay else 0.0
        pace = b.pace(dose)
        lo, hi = self._bounds()
        phi, top = np.zeros((size, size)), np.zeros((size, size))
        labels = np.zeros((size, size), np.int32)
        born: list[_Cell] = []
        for c in self.cells:
            self._advance(c, t, speed, pace, dose, p_death, lo, hi, born)
        self.cells.extend(born)
        for i, c in enumerate(self.cells):
            self._draw(c, i + 1, phi, top, labels)
        over = ndimage.binary_dilation(top < 0, iterations=2)  # a round cell hides what lies beneath it
        phi = np.where(over, 0.0, phi) + top
        self.cells_per_frame.append(sum(1 for c in self.cells if c.dead_at is None and c.burst < 0))
        self.t += 1
        return phase_contrast(phi, np.random.default_rng((self.seed, t)), 16)

    def _advance(self, c: _Cell, t: int, speed: float, pace: float, dose: float, p_death: float, lo, hi, born) -> None:
        """One frame of one cell's life (state changes; new daughters go to ``born``)."""
        b, rng = self.b, self.rng
        if c.dead_at is not None:
            return
        if c.burst >= 0:  # fragments of a failed division, then a damaged remnant
            c.burst += 1
            if c.burst >= FRAGMENT_FRAMES:
                c.dead_at = t
                self.deaths.append(t)
            return
        if c.rounding >= 0:
            c.rounding += 1
            if c.rounding < b.rounding_frames:
                return
            c.rounding = -1
            if c.fails:
                c.burst = 0
                c.fragments = rng.uniform(-16, 16, (int(rng.integers(3, 6)), 2))
                return
            angle = rng.uniform(0, np.pi)
            dy, dx = np.sin(angle), np.cos(angle)
            daughter = _Cell(
                c.y - 10 * dy, c.x - 10 * dx, angle + np.pi, int(rng.integers(1 << 30)), 0.0, self._cycle()
            )
            daughter.scale, daughter.newborn = 0.7, 0
            born.append(daughter)
            c.y, c.x, c.heading, c.age, c.cycle, c.lost = c.y + 10 * dy, c.x + 10 * dx, angle, 0.0, self._cycle(), 0.0
            c.scale, c.newborn = 0.7, 0
            return
        if c.newborn >= 0:  # the daughters separate 4 px a frame while round, then spread
            c.newborn += 1
            if c.newborn < DAUGHTER_FRAMES:
                c.y = float(np.clip(c.y + 4 * np.sin(c.heading), lo, hi))
                c.x = float(np.clip(c.x + 4 * np.cos(c.heading), lo, hi))
                return
            c.newborn = -1
        if p_death > 0 and rng.random() < p_death:
            c.dead_at = t
            self.deaths.append(t)
            return
        c.heading += rng.normal(0, 0.4)
        y, x = c.y + speed * np.sin(c.heading), c.x + speed * np.cos(c.heading)
        if not lo <= y <= hi:
            c.heading = -c.heading
        if not lo <= x <= hi:
            c.heading = np.pi - c.heading
        c.y, c.x = float(np.clip(y, lo, hi)), float(np.clip(x, lo, hi))
        c.scale = min(1.0, c.scale + 0.02)
        c.age += pace
        c.lost += 1.0 - pace
        if c.age >= c.cycle:
            c.rounding, c.fails = 0, bool(rng.random() < b.p_fail(dose))
            outcome = "failed_division" if c.fails else "division"
            (self.failed_divisions if c.fails else self.divisions).append(t)
            self.mitoses.append(
                {"frame": t, "y": c.y, "x": c.x, "outcome": outcome, "dose_since_onset": dose, "delay_frames": c.lost}
            )

    def _draw(self, c: _Cell, cid: int, phi: np.ndarray, top: np.ndarray, labels: np.ndarray) -> None:
        """Add one cell's optical thickness (and label) to the frame: spread and dead cells to ``phi``,
        round ones (mitoses, daughters, fragments) to ``top``, which lies over the others."""
        size = self.size
        y0, x0 = max(0, int(c.y) - _REACH), max(0, int(c.x) - _REACH)
        box = (slice(y0, min(size, int(c.y) + _REACH)), slice(x0, min(size, int(c.x) + _REACH)))
        cy, cx = c.y - y0, c.x - x0
        if c.dead_at is not None:
            scale = 0.6 if c.fails else c.scale
            _damaged_cell(phi[box], labels[box], cid, cy, cx, scale, 0.8, np.random.default_rng(c.shape_seed))
        elif c.burst >= 0:
            for oy, ox in c.fragments:
                _mitotic_cell(top[box], cy + oy, cx + ox, 4.5 - c.burst)
        elif c.rounding >= 0 or c.newborn >= 0:
            radius = MITOTIC_RADIUS_PX if c.rounding >= 0 else 9.5 - c.newborn
            _mitotic_cell(top[box], cy, cx, radius, MITOTIC_PHI)
            labels[box][_disc(top[box].shape, cy, cx, radius) & (labels[box] == 0)] = cid
        else:
            _textured_cell(phi[box], labels[box], cid, cy, cx, c.scale, c.shape_seed)


def render_dose_series(
    n_frames: int = 36,
    size: int = 256,
    dose_per_frame: float = 0.0,
    seed: int = 0,
    n_cells: int = 8,
    biology: TimelapseBiology | None = None,
) -> tuple[np.ndarray, dict]:
    """A (T, size, size) uint16 stack and its ground truth (onset frame, division and death frames)."""
    cells = TimelapseCells(size, seed, n_cells, biology)
    onset = onset_frame(dose_per_frame, cells.b)
    damage_start = n_frames if onset is None else onset  # no onset: never damaged within the recording
    stack = [cells.step(dose_per_frame, damage_start) for _ in range(n_frames)]
    truth = cells.truth()
    truth["onset_frame"] = onset
    return np.stack(stack), truth


DOSE_SERIES_IRRADIANCES = (0.0, 0.0, 0.0, 100.0, 100.0, 200.0, 200.0, 400.0, 400.0)
"""mW/cm2 of the fields :func:`write_dose_series` writes by default (zero: controls)."""


def dose_series_paths(out_dir: str | Path, n_fields: int = len(DOSE_SERIES_IRRADIANCES)) -> list[Path]:
    """The files :func:`write_dose_series` writes: one TIFF per field and doses.csv."""
    return [Path(out_dir) / f"field{k:02d}.tif" for k in range(n_fields)] + [Path(out_dir) / "doses.csv"]


def _mean_delay(truth: dict) -> str:
    """Mean cycle frames lost to the dose per mitosis after the onset ('' when none)."""
    delays = [m["delay_frames"] for m in truth["mitoses"] if m["dose_since_onset"] > 0]
    return f"{np.mean(delays):.3g}" if delays else ""


def write_dose_series(
    out_dir: str | Path,
    irradiances: tuple[float, ...] = DOSE_SERIES_IRRADIANCES,
    exposure_ms: float = 50.0,
    n_frames: int = 36,
    size: int = 256,
    seed: int = 0,
    biology: TimelapseBiology | None = None,
) -> Path:
    """Write one TIFF per field (ImageJ metadata: frame interval, pixel size) and a doses CSV; return the CSV.

    The CSV's ``true_*`` columns are the ground truth: onset frame, successful and failed divisions
    (mitoses entered in the recording), deaths, and the mean cycle frames lost to the dose per mitosis
    entered after the onset (the division delay; empty without one). Cumulative dose per frame =
    irradiance (mW/cm2) x exposure (ms) x 1e-6 J/cm2; fields with zero
    irradiance are the controls.
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, irradiance in enumerate(irradiances):
        per_frame = irradiance * exposure_ms * 1e-6
        stack, truth = render_dose_series(n_frames, size, per_frame, seed=seed * 1000 + k, biology=biology)
        name = f"field{k:02d}"
        write_tiff_atomic(
            out / f"{name}.tif",
            stack,
            imagej=True,
            resolution=(1 / PIXEL_UM, 1 / PIXEL_UM),
            metadata={"axes": "TYX", "finterval": INTERVAL_MIN * 60, "tunit": "sec", "unit": "um"},
        )
        rows.append(
            [
                name,
                f"{irradiance:g}",
                f"{exposure_ms:g}",
                str(n_frames),
                "488",
                "" if truth["onset_frame"] is None else str(truth["onset_frame"]),
                str(len(truth["divisions"])),
                str(len(truth["failed_divisions"])),
                str(len(truth["deaths"])),
                _mean_delay(truth),
            ]
        )
    doses = out / "doses.csv"
    with doses.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "field",
                "irradiance_mW_per_cm2",
                "exposure_ms",
                "frames",
                "wavelength_nm",
                "true_onset_frame",
                "true_divisions",
                "true_failed_divisions",
                "true_deaths",
                "true_mean_mitosis_delay_frames",
            ]
        )
        writer.writerows(rows)
    return doses
