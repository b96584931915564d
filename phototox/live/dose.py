"""The light dose as the microscope delivered it, frame by frame, from what the core did.

Each frame's excitation is the exposure (ms) times the setting of the light source's property
(vendor-specific units, e.g. % power) while the light reached the sample (auto-shutter, or the
shutter open). Without a calibration that product is reported in its own units ("ms x setting"),
never as J/cm2. A calibration table measured with a power meter at the sample turns settings into
irradiance: CSV columns ``device,property,value,mW_per_cm2``; between measured values the
irradiance is interpolated linearly, outside them it is refused (no extrapolation).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phototox.errors import PhototoxError

CALIBRATION_COLUMNS = ("device", "property", "value", "mW_per_cm2")


@dataclass
class Calibration:
    """Irradiance at the sample (mW/cm2) of measured settings of (device, property)."""

    points: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]
    source: str = ""

    @classmethod
    def read(cls, path: str | Path) -> Calibration:
        """Read a calibration CSV; a bad row is refused in one line naming the file and row."""
        p = Path(path)
        if not p.is_file():
            raise PhototoxError(f"{p}: no such calibration table")
        with p.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or any(c not in rows[0] for c in CALIBRATION_COLUMNS):
            raise PhototoxError(f"{p}: a calibration table needs the columns {', '.join(CALIBRATION_COLUMNS)}")
        found: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for n, row in enumerate(rows, start=2):
            try:
                value, irradiance = float(row["value"]), float(row["mW_per_cm2"])
            except (TypeError, ValueError):
                raise PhototoxError(f"{p} line {n}: value and mW_per_cm2 must be numbers") from None
            if not (np.isfinite(value) and np.isfinite(irradiance)) or irradiance < 0:
                raise PhototoxError(f"{p} line {n}: mW_per_cm2 must be a finite number >= 0")
            found.setdefault((row["device"], row["property"]), []).append((value, irradiance))
        points = {}
        for key, pairs in found.items():
            pairs.sort()
            x = np.array([v for v, _ in pairs])
            if np.any(np.diff(x) == 0):
                raise PhototoxError(f"{p}: {key[0]}.{key[1]} has two rows for the same value")
            points[key] = (x, np.array([i for _, i in pairs]))
        return cls(points, str(p))

    def irradiance(self, device: str, prop: str, value: float) -> float:
        """mW/cm2 at the sample for one setting; refused outside the measured range."""
        if (device, prop) not in self.points:
            raise PhototoxError(f"{self.source}: no calibration for {device}.{prop}")
        x, y = self.points[(device, prop)]
        if value < x[0] or value > x[-1]:
            raise PhototoxError(
                f"{self.source}: {device}.{prop} = {value:g} is outside the measured {x[0]:g}..{x[-1]:g}"
            )
        return float(np.interp(value, x, y))


@dataclass
class FrameDose:
    """The light of one frame."""

    position: str
    frame: int
    channel: str
    exposure_ms: float
    settings: dict[str, float]  # "device.property" -> value
    light_on: bool
    dose_units: float  # exposure x setting (ms x setting units), 0 when no light reached the sample
    dose_j_cm2: float | None  # with a calibration only


@dataclass
class DoseLedger:
    """Per position: every frame's light and the running totals."""

    light: tuple[tuple[str, str], ...]
    calibration: Calibration | None = None
    frames: list[FrameDose] = field(default_factory=list)
    totals_units: dict[str, float] = field(default_factory=dict)
    totals_j_cm2: dict[str, float] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        """What the dose numbers mean."""
        if self.calibration is not None:
            return "J/cm2 at the sample (calibration " + self.calibration.source + ")"
        names = ", ".join(f"{d}.{p}" for d, p in self.light)
        return f"exposure (ms) x setting of {names} (own units, not J/cm2: no calibration table)"

    def record(
        self, position: str, frame: int, channel: str, exposure_ms: float, settings: dict[str, float], light_on: bool
    ) -> FrameDose:
        """Add one frame; ``settings`` holds the light source's properties as the core had them."""
        level = sum(settings.values()) if light_on else 0.0
        units = exposure_ms * level
        joules = None
        if self.calibration is not None:
            joules = 0.0
            if light_on:
                for key, value in settings.items():
                    device, prop = key.split(".", 1)
                    joules += self.calibration.irradiance(device, prop, value) * exposure_ms * 1e-6
            self.totals_j_cm2[position] = self.totals_j_cm2.get(position, 0.0) + joules
        self.totals_units[position] = self.totals_units.get(position, 0.0) + units
        dose = FrameDose(position, frame, channel, exposure_ms, dict(settings), light_on, units, joules)
        self.frames.append(dose)
        return dose

    def total(self, position: str) -> float:
        """Cumulative dose of a position in :attr:`unit`."""
        if self.calibration is not None:
            return self.totals_j_cm2.get(position, 0.0)
        return self.totals_units.get(position, 0.0)
