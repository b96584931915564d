"""The user's own control fields as the reference: comparison and ``phototox calibrate``.

Every phototoxicity experiment has unexposed (or minimally exposed) control fields. Two uses:

* :class:`ControlReference` -- one field's P(sick) (a test file: the mean over its frames) against
  the control fields (one value per control file), by a 95% prediction interval for one new control
  field (:func:`phototox.stats.compare.check_new_field`): ``unlike your controls`` only outside it, else
  ``no difference shown``. One test field is one unit, so it can never be called ``sicker``; that
  needs arms of several fields (:func:`phototox.stats.compare.compare`). The old rule (bootstrap of the
  control mean, the test value taken as exact) called 9 of 18 healthy T98G frames "sicker" (issue 25).
* :func:`phototox.trust.calibrate.calibrate_model` -- refits the domain statistics and threshold on the control fields
  (so "in domain" means "like my controls") and records the control P(sick) distribution in the
  new model file's ``meta["calibration"]``. It never refits the probability itself: controls
  carry one class only, and a probability map fitted on confounded data would sharpen a batch
  detector (issue 11); the absolute P(sick) stays the model's raw output.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phototox.errors import PhototoxError
from phototox.io.images import read_frames
from phototox.maps.settings import MapSettings
from phototox.stats.compare import FieldCheck, check_new_field

MIN_CONTROLS = 3


@dataclass
class ControlReference:
    """P(sick) of each control field (one value per control file) and the comparison of a new field with them."""

    values: np.ndarray
    source: str
    paths: tuple[str, ...] = ()
    """the control files (resolved), parallel to ``values``, when known: a control is compared with the others"""

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.size < 2 or not np.isfinite(self.values).all():
            raise PhototoxError(f"{self.source}: need at least 2 control fields with a P(sick), got {self.values.size}")

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    def check(self, p_sick: float) -> FieldCheck:
        """One field's P(sick) against the control fields (prediction interval for a new field)."""
        return check_new_field(p_sick, self.values)

    def compare(self, p_sick: float, path: str | os.PathLike | None = None) -> dict:
        """The ``controls`` result columns of one field with this P(sick).

        When ``path`` is one of the control files, it is compared with the OTHER control fields
        (never with itself); with fewer than 2 others it cannot be tested.
        """
        key = _key(path) if path is not None else None
        if key is not None and key in self.paths:
            others = np.delete(self.values, self.paths.index(key))
            if others.size < 2:
                return {
                    "vs_controls": round(float(p_sick - others.mean()), 4),
                    "vs_controls_low": None,
                    "vs_controls_high": None,
                    "vs_controls_verdict": f"cannot test: one of {self.values.size} control fields, "
                    f"{others.size} other",
                }
            return ControlReference(others, self.source).compare(p_sick)
        result = self.check(p_sick)
        return {
            "vs_controls": round(result.difference, 4),
            "vs_controls_low": round(result.low, 4),
            "vs_controls_high": round(result.high, 4),
            "vs_controls_verdict": result.verdict,
        }

    @classmethod
    def from_meta(cls, meta: dict) -> ControlReference | None:
        cal = meta.get("calibration") or {}
        values = cal.get("control_p_sick")
        return cls(np.asarray(values), "the model's recorded controls") if values else None


def _key(path: str | os.PathLike) -> str:
    return str(Path(path).resolve())


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def read_control_field(path: Path, assessor, pixel_size_um: float | None):
    """A control file's frames and pixel size (the frames of one file are one field)."""

    frames = read_frames(path, min_size=assessor.predictor.window)
    size = assessor.pixel_size(pixel_size_um, path)
    return frames, size


def control_reference(
    paths: list[Path], assessor, settings: MapSettings, pixel_size_um: float | None = None
) -> ControlReference:
    """P(sick) of each control file (mean over its frames), as a reference for other images."""
    values = []
    for path in paths:
        frames, size = read_control_field(path, assessor, pixel_size_um)
        results = assessor.analyse(frames, settings, size, str(path))
        values.append(float(np.mean([r.mean_sick_probability for r in results])))
    return ControlReference(np.asarray(values), f"{len(paths)} control files", tuple(_key(p) for p in paths))


UNUSABLE_CONTROL_FLAGS = ("nearly_empty", "saturated", "out_of_focus")
"""Quality flags that make a frame unusable as a control: calibrating on it would teach the
domain check that blank, clipped, noise-only or blurred fields are normal."""


def check_control_quality(path: Path, verdicts: list) -> None:
    """Refuse (one line) a control file any of whose frames raises an unusable-quality flag."""
    for index, trust in enumerate(verdicts):
        raised = [flag for flag in UNUSABLE_CONTROL_FLAGS if getattr(trust, flag)]
        if raised:
            where = f"{path}" + (f" frame {index}" if len(verdicts) > 1 else "")
            raise PhototoxError(
                f"{where}: not usable as a control ({', '.join(f.replace('_', ' ') for f in raised)}; "
                f"foreground {trust.foreground_fraction:.0%}, focus {trust.focus:.3g}); "
                "controls must be in-focus fields of cells imaged like the exposed ones"
            )


POLARITY_SKEW = 0.5
"""Intensity skew beyond which a field's contrast polarity counts as clear (:func:`intensity_skew`)."""


def check_control_polarity(paths: list[Path], skews: list[float]) -> None:
    """Refuse (one line) a control whose contrast is clearly inverted against the other controls.

    All controls inverted alike are accepted (negative phase contrast exists); the base model's
    domain check flags such images before calibration.
    """
    typical = float(np.median(skews))
    for path, skew in zip(paths, skews):
        if abs(typical) > POLARITY_SKEW and abs(skew) > POLARITY_SKEW and skew * typical < 0:
            raise PhototoxError(
                f"{path}: contrast looks inverted against the other controls (intensity skew {skew:+.2f}, "
                f"the controls' median {typical:+.2f}); image every control the same way"
            )


def distinct_fields(paths: list[Path], warn=None, what: str = "calibrate") -> list[Path]:
    """The control files as fields: the same file twice, a link to it or an identical copy is one field.

    Refuses (one line) a missing file and fewer than :data:`MIN_CONTROLS` distinct fields; warns
    about the files it counts once.
    """

    first: dict[str, Path] = {}
    repeats = []
    for path in paths:
        if not path.is_file():
            raise PhototoxError(f"{path}: no such control file")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in first:
            repeats.append(f"{path} is the same field as {first[digest]}")
        else:
            first[digest] = path
    fields = list(first.values())
    said = f" ({'; '.join(repeats)})" if repeats else ""
    if len(fields) < MIN_CONTROLS:
        raise PhototoxError(
            f"{what} needs at least {MIN_CONTROLS} control fields (files; the frames of one file are one field), "
            f"got {len(fields)}{said}"
        )
    if repeats:
        (warn or _stderr)(f"phototox: warning: counted once{said}")
    return fields
