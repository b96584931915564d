"""Synthetic phase-contrast time-lapses of migrating, dividing cells under a light dose.

Builds on :mod:`phototox.synth.fields` (same cell shapes and phase-contrast optics). Healthy cells crawl
(persistent random walk) and divide: a mitotic cell rounds up into a thick sphere for
``rounding_frames`` frames, then two smaller daughters separate. Under light, damage starts when
the cumulative dose reaches ``critical_dose`` (so the **onset time is a known function of dose**:
``onset_frame = ceil(critical_dose / dose_per_frame) - 1``, see :func:`onset_frame`). From then on
cells slow down (speed halves every ``slowdown_frames``), cells entering mitosis stay rounded
(failed division), and after ``death_delay`` frames (plus a per-cell jitter) cells round up and die
(the damaged phenotype of :mod:`phototox.synth.fields`).

These series test the machinery (does ``phototox timecourse`` recover a known onset?); they are not
real cells and are no validation of the biology.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phototox.io.images import write_tiff_atomic
from phototox.synth.fields import _damaged_cell, _disc, _healthy_cell, phase_contrast

PIXEL_UM = 0.87
INTERVAL_MIN = 10.0
MITOTIC_RADIUS_PX = 14.0  # a rounded cell about 24 um across at PIXEL_UM


@dataclass
class TimelapseBiology:
    """Parameters of the synthetic cells (frames are ``INTERVAL_MIN`` apart)."""

    speed_px: float = 2.5  # mean displacement per frame of a healthy cell
    cycle_frames: int = 60  # mean time between divisions
    rounding_frames: int = 4  # how long a mitotic cell stays round before the daughters separate
    critical_dose: float = 0.1  # J/cm2 of cumulative dose at which damage starts
    slowdown_frames: float = 3.0  # half-life of the speed after the onset
    death_delay: int = 6  # frames from onset to the first deaths
    death_spread: int = 6  # deaths spread over this many frames after the delay


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
    age: int  # frames since last division
    cycle: int
    rounding: int = -1  # frames spent rounded in mitosis; -1 when not dividing
    dead_at: int | None = None
    scale: float = 1.0


def _mitotic_cell(phi: np.ndarray, cy: float, cx: float, radius: float) -> None:
    """A rounded mitotic cell: phase-bright body in a dark ring.

    A sphere's phase shift is beyond the first-order model of :func:`phototox.synth.fields.phase_contrast`
    (there thick means dark); real rounded cells look bright, so the body is drawn with negative
    optical thickness, which the model renders bright with a dark surround.
    """
    yy, xx = np.ogrid[: phi.shape[0], : phi.shape[1]]
    dome = np.clip(1 - ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2, 0, None) ** 0.5
    phi -= dome * 1.2


class TimelapseCells:
    """One field of synthetic cells advanced frame by frame under the light it actually receives.

    Damage starts at the first frame whose cumulative dose (this frame's included) reaches
    ``critical_dose``: with a constant dose per frame that is :func:`onset_frame`. Used by
    :func:`render_dose_series` and by the simulated microscope (:mod:`phototox.live.sim`).
    """

    def __init__(self, size: int = 256, seed: int = 0, n_cells: int = 8, biology: TimelapseBiology | None = None):
        self.b = biology or TimelapseBiology()
        self.size, self.seed = size, seed
        self.rng = np.random.default_rng(seed)
        b, rng = self.b, self.rng
        self.cells = [
            _Cell(
                rng.uniform(0, size),
                rng.uniform(0, size),
                rng.uniform(0, 2 * np.pi),
                int(rng.integers(1 << 30)),
                int(rng.integers(0, b.cycle_frames)),
                int(rng.normal(b.cycle_frames, b.cycle_frames / 6)),
            )
            for _ in range(n_cells)
        ]
        self.t = 0
        self.cumulative_dose = 0.0
        self.onset: int | None = None  # frame at which damage started
        self.divisions: list[int] = []
        self.failed_divisions: list[int] = []
        self.deaths: list[int] = []

    def truth(self) -> dict:
        """Ground truth so far: onset frame (None: not yet), division and death frames."""
        return {
            "onset_frame": self.onset,
            "divisions": self.divisions,
            "failed_divisions": self.failed_divisions,
            "deaths": self.deaths,
        }

    def step(self, dose_j_cm2: float = 0.0, damage_start: int | None = None) -> np.ndarray:
        """Advance one frame that received ``dose_j_cm2``; return its (size, size) uint16 image.

        ``damage_start``: a known onset frame overriding the cumulative rule (used by
        :func:`render_dose_series`, whose onset comes from :func:`onset_frame`).
        """
        b, rng, size, t = self.b, self.rng, self.size, self.t
        self.cumulative_dose += dose_j_cm2
        if damage_start is not None:
            if t >= damage_start and self.onset is None:
                self.onset = damage_start
        elif self.onset is None and dose_j_cm2 > 0 and self.cumulative_dose >= b.critical_dose * (1 - 1e-9):
            self.onset = t
        start = self.onset if self.onset is not None else 1 << 30
        damaged = t >= start
        speed = b.speed_px * (0.5 ** ((t - start) / b.slowdown_frames) if damaged else 1.0)
        phi = np.zeros((size, size))
        labels = np.zeros((size, size), np.int32)
        born = []
        reach = 80
        for i, c in enumerate(self.cells):
            if damaged and c.dead_at is None:
                c.dead_at = start + b.death_delay + int(rng.integers(0, b.death_spread))
            dead = c.dead_at is not None and t >= c.dead_at
            if dead and c.dead_at == t:
                self.deaths.append(t)
            if not dead and c.rounding < 0:
                c.heading += rng.normal(0, 0.4)
                c.y = float(np.clip(c.y + speed * np.sin(c.heading), 0, size - 1))
                c.x = float(np.clip(c.x + speed * np.cos(c.heading), 0, size - 1))
                c.age += 1
                if c.age >= c.cycle:
                    c.rounding = 0
                    (self.failed_divisions if damaged else self.divisions).append(t)
            elif c.rounding >= 0 and not dead:
                c.rounding += 1
                if c.rounding >= b.rounding_frames and not damaged:
                    angle = rng.uniform(0, np.pi)
                    dy, dx = 7 * np.sin(angle), 7 * np.cos(angle)
                    born.append(
                        _Cell(
                            c.y - dy,
                            c.x - dx,
                            angle + np.pi,
                            int(rng.integers(1 << 30)),
                            0,
                            int(rng.normal(b.cycle_frames, b.cycle_frames / 6)),
                            scale=0.8,
                        )
                    )
                    c.y, c.x, c.heading, c.age, c.rounding, c.scale = c.y + dy, c.x + dx, angle, 0, -1, 0.8
                    c.cycle = int(rng.normal(b.cycle_frames, b.cycle_frames / 6))
            c.scale = min(1.0, c.scale + 0.02)
            y0, x0 = max(0, int(c.y) - reach), max(0, int(c.x) - reach)
            box = (slice(y0, min(size, int(c.y) + reach)), slice(x0, min(size, int(c.x) + reach)))
            cy, cx = c.y - y0, c.x - x0
            shape_rng = np.random.default_rng(c.shape_seed)
            if dead:
                _damaged_cell(phi[box], labels[box], i + 1, cy, cx, c.scale, 0.8, shape_rng)
            elif c.rounding >= 0:
                _mitotic_cell(phi[box], cy, cx, MITOTIC_RADIUS_PX)
                labels[box][_disc(phi[box].shape, cy, cx, MITOTIC_RADIUS_PX) & (labels[box] == 0)] = i + 1
            else:
                _healthy_cell(phi[box], labels[box], i + 1, cy, cx, c.scale, shape_rng)
        self.cells.extend(born)
        self.t += 1
        return phase_contrast(phi, np.random.default_rng((self.seed, t)), 16)


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

    Cumulative dose per frame = irradiance (mW/cm2) x exposure (ms) x 1e-6 J/cm2; fields with zero
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
            ]
        )
        writer.writerows(rows)
    return doses
