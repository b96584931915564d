"""Reading time-lapse fields: frame order, the frame interval, pseudo-fields, the doses file.

A field is a multi-frame TIFF or a folder of single-frame images. Frames of a folder are sorted by
the numbers in their names (``t2`` before ``t10``), not alphabetically. The frame interval comes
from ``--interval`` (minutes) or the file's metadata (ImageJ ``finterval``, OME-XML
``TimeIncrement``); a run never guesses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phototox.errors import ImageInputError, ManifestError
from phototox.io.imagemeta import read_metadata
from phototox.io.images import FRAME_SUFFIXES, as_grey_frames, frame_files, read_raw
from phototox.io.tables import read_csv


@dataclass
class TimeField:
    """One field of view over time."""

    name: str
    frames: np.ndarray  # (T, H, W) float32
    interval_min: float
    source: str
    dose: FieldDose | None = None

    @property
    def times_min(self) -> np.ndarray:
        return np.arange(len(self.frames)) * self.interval_min


@dataclass
class FieldDose:
    """The light a field received, from its physical parts."""

    irradiance_mw_cm2: float
    exposure_ms: float
    frames: int
    wavelength_nm: float
    extra: dict = field(default_factory=dict)

    @property
    def per_frame_j_cm2(self) -> float:
        """mW/cm2 x ms = uJ/cm2 per frame, stated in J/cm2."""
        return self.irradiance_mw_cm2 * self.exposure_ms * 1e-6

    @property
    def total_j_cm2(self) -> float:
        return self.per_frame_j_cm2 * self.frames

    def cumulative_j_cm2(self, n_frames: int) -> np.ndarray:
        """Dose received up to and including each frame (exposure stops after ``frames`` frames)."""
        return self.per_frame_j_cm2 * np.minimum(np.arange(1, n_frames + 1), self.frames)

    @property
    def is_control(self) -> bool:
        return self.total_j_cm2 == 0.0


def interval_from_metadata(path: Path) -> float | None:
    """Frame interval in minutes from the file's metadata (:func:`phototox.io.imagemeta.read_metadata`), or None."""
    return read_metadata(path).interval_min


INTERVAL_RANGE_MIN = (0.001, 10080.0)
"""Frame intervals accepted (minutes): 60 ms to one week, from ``--interval`` or the file's metadata."""


def read_field(path: str | Path, interval_min: float | None = None, min_size: int = 64) -> TimeField:
    """Read a stack file or a folder of frames as one field; refuse single frames and mixed sizes."""
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        if not files:
            raise ImageInputError(f"{path}: folder holds no image files ({', '.join(sorted(FRAME_SUFFIXES))})")
        frames: list[np.ndarray] = []
        for f in files:
            frame = as_grey_frames(read_raw(f), str(f), min_size=min_size)
            if frames and frame.shape[1:] != frames[0].shape[1:]:
                raise ImageInputError(
                    f"{f}: frame is {frame.shape[2]}x{frame.shape[1]} px but {files[0].name} is "
                    f"{frames[0].shape[2]}x{frames[0].shape[1]} px; all frames of a field "
                    "must have one size"
                )
            frames.append(frame)
        stack = np.concatenate(frames)
        meta_from = files[0]
    else:
        stack = as_grey_frames(read_raw(path), str(path), min_size=min_size)
        meta_from = path
    if len(stack) < 2:
        raise ImageInputError(f"{path}: a time-lapse needs at least two frames, found {len(stack)}")
    given = interval_min is not None
    if interval_min is None:
        interval_min = interval_from_metadata(meta_from)
        if interval_min is None:
            raise ImageInputError(f"{path}: no frame interval in the file's metadata; pass --interval MINUTES")
    low, high = INTERVAL_RANGE_MIN
    if not low <= interval_min <= high:  # NaN fails both comparisons
        raise ImageInputError(
            f"{path}: frame interval must be {low:g}-{high:g} minutes between frames, got {interval_min:g}"
            + ("" if given else " (from the file's metadata; pass --interval MINUTES)")
        )
    name = path.name if path.is_dir() else path.stem
    return TimeField(name, stack, float(interval_min), str(path))


MIN_SPLIT_SIDE = 64
"""Smallest side of a ``--split`` pseudo-field, px (as of any frame :func:`read_field` accepts)."""


def split_field(f: TimeField, rows: int, cols: int) -> list[TimeField]:
    """Cut a field into ``rows`` x ``cols`` pseudo-fields (e.g. quadrants acting as controls for one another).

    Each must keep at least :data:`MIN_SPLIT_SIDE` px a side; checked before any is cut."""
    _t, h, w = f.frames.shape
    if rows < 1 or cols < 1 or h // rows < MIN_SPLIT_SIDE or w // cols < MIN_SPLIT_SIDE:
        raise ImageInputError(
            f"{f.source}: --split {rows}x{cols} of a {w}x{h} px field leaves pseudo-fields smaller than "
            f"{MIN_SPLIT_SIDE}x{MIN_SPLIT_SIDE} px"
        )
    ys = np.linspace(0, h, rows + 1).astype(int)
    xs = np.linspace(0, w, cols + 1).astype(int)
    out = []
    for i in range(rows):
        for j in range(cols):
            sub = f.frames[:, ys[i] : ys[i + 1], xs[j] : xs[j + 1]]
            out.append(
                TimeField(
                    f"{f.name}_r{i}c{j}",
                    np.ascontiguousarray(sub),
                    f.interval_min,
                    f"{f.source} [rows {ys[i]}:{ys[i + 1]}, cols {xs[j]}:{xs[j + 1]}]",
                )
            )
    return out


DOSE_COLUMNS = ("field", "irradiance_mW_per_cm2", "exposure_ms", "wavelength_nm")


def parse_doses(path: str | Path) -> list[tuple[int, str, FieldDose, bool]]:
    """Every row of a doses CSV as ``(line, field, dose, frames_given)``, checked on its own.

    Encoding, columns, numbers (finite, non-negative; ``frames`` a whole number) and duplicate
    fields are refused with the file and line named, before any image is read. Without a
    ``frames`` cell the dose's ``frames`` is 0 until :func:`read_doses` knows the series length.
    """

    path = Path(path)
    header, rows = read_csv(path, "doses")
    header = [h.strip() for h in header]
    missing = [c for c in DOSE_COLUMNS if c not in header]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(DOSE_COLUMNS)}, optional frames)"
        )
    out: list[tuple[int, str, FieldDose, bool]] = []
    first: dict[str, int] = {}
    for line, raw in enumerate(rows, start=2):
        row = {k.strip(): v.strip() for k, v in raw.items()}
        name = row["field"]
        if name in first:
            raise ManifestError(f"{path}: lines {first[name]} and {line}: field {name!r} listed twice")
        first[name] = line
        try:
            values = [float(row[c]) for c in DOSE_COLUMNS[1:]]
            frames = int(row["frames"]) if row.get("frames") else 0
        except ValueError as exc:
            raise ManifestError(f"{path}: line {line}: not a number ({exc})") from None
        if any(not np.isfinite(v) or v < 0 for v in values) or frames < 0:
            raise ManifestError(
                f"{path}: line {line}: irradiance, exposure, wavelength and frames must be non-negative numbers"
            )
        extra = {k: v for k, v in row.items() if k not in DOSE_COLUMNS and k != "frames"}
        out.append((line, name, FieldDose(values[0], values[1], frames, values[2], extra), bool(row.get("frames"))))
    return out


def read_doses(path: str | Path, field_names: list[str], frames_default: dict[str, int]) -> dict[str, FieldDose]:
    """Read a doses CSV: field, irradiance_mW_per_cm2, exposure_ms, wavelength_nm and optional frames.

    ``frames`` is the number of exposed frames (default: every frame of the field), at most the
    field's frame count. Controls have irradiance 0. Every field must appear once; unknown fields
    are an error.
    """
    doses: dict[str, FieldDose] = {}
    for line, name, dose, frames_given in parse_doses(path):
        if name not in frames_default:
            raise ManifestError(
                f"{path}: line {line}: field {name!r} is not among the inputs ({', '.join(field_names)})"
            )
        if not frames_given:
            dose.frames = frames_default[name]
        elif dose.frames > frames_default[name]:
            raise ManifestError(
                f"{path}: line {line}: frames {dose.frames} is more than the {frames_default[name]} frames "
                f"of field {name!r}"
            )
        doses[name] = dose
    absent = [n for n in field_names if n not in doses]
    if absent:
        raise ManifestError(f"{path}: no dose for field(s) {', '.join(absent)}")
    return doses


def pixel_size_from_metadata(path: str | Path) -> float | None:
    """Pixel size in micrometres from the file's (or folder's first frame's) metadata, or None.

    The same answer as every other command (:func:`phototox.io.imagemeta.read_metadata`)."""
    return read_metadata(path).pixel_size_um
