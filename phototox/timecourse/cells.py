"""Nuclei-free cells per frame: count, area distribution and halo-free confluence from phase contrast.

Everything is local and in micrometres (so it follows the pixel size); nothing is scaled by the
whole field's spread, so a bright band or a crowd of cells elsewhere cannot change a cell's result.

1. **Local contrast and texture.** ``background``: the median of the frame over ``background_um``
   (on ~``block_um`` blocks, interpolated back); contrast = frame - background; texture = its
   standard deviation over ``texture_um``. Both are divided by the local *texture floor*: the
   ``noise_percentile`` (5th) percentile of the texture over ``noise_um`` around each pixel, i.e.
   the texture of the empty background nearby. No whole-field statistic enters: the same cell
   gives the same values whatever lies more than ``noise_um`` away, and a gain or offset change of
   the camera cancels.
2. **Cell bodies.** Pixels textured above ``texture`` floors, minus broad bright structures (the
   contrast smoothed over ``band_um`` above ``bright`` floors: the T98G well-edge band); holes
   filled; then eroded by ``erode_um``, which removes the phase halo (the thin bright ring around
   each cell, textured but outside the cell) and the fringe the texture window adds, and opened
   with a disc of ``open_um`` diameter; specks under ``min_area_um2`` dropped. Confluence is the
   fraction of the frame covered.
3. **Count.** Seeds: maxima of the distance transform of the body mask (smoothed over
   ``smooth_um``) at least ``seed_um`` apart and ``h_um`` above their saddle (h-maxima), then a
   watershed on the distance transform within the mask; each region of at least ``min_area_um2``
   is one cell. Areas (um^2) are those regions' areas.

It is an estimate for per-cell rates (their denominator), not a segmentation: touching cells may
merge or a long cell split. Checked against the Usiigaci T98G masks (Tsai et al., SoftwareX 9,
2019; Mask R-CNN output, so agreement, not accuracy): see ``benchmarks/bench_cells.py``.
CellProfiler users can replace the count with their own objects (:func:`read_cell_counts`).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from phototox.errors import PhototoxError

MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class CellSettings:
    """Parameters of the cell estimate; lengths in micrometres, areas in um^2, contrasts in units of
    the local background texture (``noise_percentile`` of the texture over ``noise_um``)."""

    block_um: float = 4.0
    background_um: float = 60.0
    detail_um: float = 1.0
    texture_um: float = 6.0
    noise_um: float = 200.0
    noise_percentile: float = 5.0
    texture: float = 1.5
    band_um: float = 8.0
    bright: float = 64.0
    erode_um: float = 5.0
    halo_um: float = 3.0
    halo_bright: float = 30.0
    open_um: float = 4.0
    min_area_um2: float = 150.0
    smooth_um: float = 1.0
    seed_um: float = 20.0
    h_um: float = 1.5


@dataclass
class FrameCells:
    """One frame's cells: body mask, labelled regions, and the readouts."""

    mask: np.ndarray
    labels: np.ndarray
    count: int
    areas_um2: np.ndarray
    confluence: float

    @property
    def median_area_um2(self) -> float:
        return float(np.median(self.areas_um2)) if self.areas_um2.size else math.nan

    @property
    def area_iqr_um2(self) -> tuple[float, float]:
        if not self.areas_um2.size:
            return math.nan, math.nan
        q1, q3 = np.percentile(self.areas_um2, [25, 75])
        return float(q1), float(q3)


def _px(um: float, pixel_um: float) -> float:
    return um / pixel_um


def _blocks(image: np.ndarray, factor: int, reduce) -> np.ndarray:
    """``reduce`` over ``factor`` x ``factor`` blocks (edges padded by reflection)."""
    h, w = image.shape
    ph, pw = -h % factor, -w % factor
    padded = np.pad(image, ((0, ph), (0, pw)), mode="reflect") if ph or pw else image
    H, W = padded.shape
    return reduce(padded.reshape(H // factor, factor, W // factor, factor), axis=(1, 3))


def _upsample(small: np.ndarray, factor: int, shape: tuple[int, ...]) -> np.ndarray:
    """Bilinear interpolation of block values back to ``shape`` (block centres at their pixel centres)."""
    if factor == 1:
        return small[: shape[0], : shape[1]]
    rows = (np.arange(shape[0]) + 0.5) / factor - 0.5
    cols = (np.arange(shape[1]) + 0.5) / factor - 0.5
    grid = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(small, grid, order=1, mode="nearest")


def local_contrast(
    frame: np.ndarray, pixel_um: float, settings: CellSettings = CellSettings()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contrast, texture, wide contrast), in units of the local background texture (module docstring, step 1)."""
    from phototox.timecourse.activity import local_std

    image = frame.astype(np.float32)
    factor = max(1, round(_px(settings.block_um, pixel_um)))
    block_px = factor * pixel_um
    size = max(3, round(settings.background_um / block_px) | 1)
    background = _upsample(
        ndimage.median_filter(_blocks(image, factor, np.mean), size, mode="reflect"), factor, image.shape
    )
    contrast = image - background
    detail = contrast - ndimage.gaussian_filter(contrast, _px(settings.detail_um, pixel_um))
    texture = local_std(detail, max(3, round(_px(settings.texture_um, pixel_um)) | 1)).astype(np.float32)
    coarse = 4 * factor  # the floor varies slowly: coarser blocks, the same window in micrometres
    size = max(3, round(settings.noise_um / (coarse * pixel_um)) | 1)
    floor = ndimage.percentile_filter(
        _blocks(texture, coarse, np.mean), settings.noise_percentile, size, mode="reflect"
    )
    floor = _upsample(floor, coarse, image.shape)
    floor = np.maximum(floor, 1e-6 * max(1.0, float(np.abs(image).max())))
    wide = ndimage.median_filter(_blocks(image, coarse, np.mean), size, mode="reflect")
    wide = image - _upsample(wide, coarse, image.shape)
    return contrast / floor, texture / floor, wide / floor


def _disc(radius: float) -> np.ndarray:
    """A disc structuring element of ``radius`` pixels (3x3 below one pixel)."""
    if radius < 1:
        return np.ones((3, 3), bool)
    r = int(np.ceil(radius))
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= radius * radius + 0.25


def body_mask(
    contrast: np.ndarray,
    texture: np.ndarray,
    wide: np.ndarray,
    pixel_um: float,
    settings: CellSettings = CellSettings(),
) -> np.ndarray:
    """Cell bodies without halos or bright bands (module docstring, step 2)."""
    from skimage.morphology import remove_small_objects

    band = ndimage.gaussian_filter(wide, _px(settings.band_um, pixel_um)) > settings.bright
    band = ndimage.binary_dilation(band, structure=_disc(_px(settings.texture_um, pixel_um)))
    mask = ndimage.binary_fill_holes((texture > settings.texture) & ~band)
    depth = ndimage.distance_transform_edt(mask) * pixel_um - settings.erode_um  # erosion by a disc
    mask = depth > 0
    bright = ndimage.gaussian_filter(contrast, _px(settings.detail_um, pixel_um) / 2) > settings.halo_bright
    mask &= ~(bright & (depth <= settings.halo_um))
    mask = ndimage.binary_opening(mask, structure=_disc(_px(settings.open_um, pixel_um) / 2))
    mask = ndimage.binary_fill_holes(mask)
    return remove_small_objects(mask, max(1, int(settings.min_area_um2 / pixel_um**2)))


def split_cells(mask: np.ndarray, pixel_um: float, settings: CellSettings = CellSettings()) -> np.ndarray:
    """Labelled cells: watershed of the mask from h-maxima of its distance transform (step 3)."""
    from skimage.feature import peak_local_max
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = ndimage.gaussian_filter(
        ndimage.distance_transform_edt(mask) * pixel_um, _px(settings.smooth_um, pixel_um)
    )
    distance[~mask] = 0
    peaks = h_maxima(distance, settings.h_um).astype(bool)
    coords = peak_local_max(
        distance, min_distance=max(1, round(_px(settings.seed_um, pixel_um) / 2)), labels=ndimage.label(mask)[0]
    )
    seeds = np.zeros(mask.shape, bool)
    seeds[tuple(coords.T)] = True
    seeds &= ndimage.binary_dilation(peaks, iterations=1)
    markers = ndimage.label(seeds)[0]
    labels = watershed(-distance, markers, mask=mask)
    # regions without a seed (a component with no h-maximum) still count once
    orphans, _ = ndimage.label(mask & (labels == 0))
    labels = np.where(orphans > 0, orphans + labels.max(), labels).astype(np.int32)
    areas = np.bincount(labels.ravel())
    small = np.flatnonzero(areas * pixel_um**2 < settings.min_area_um2)
    labels[np.isin(labels, small[small > 0])] = 0
    return labels


def frame_cells(frame: np.ndarray, pixel_um: float, settings: CellSettings = CellSettings()) -> FrameCells:
    """Count, areas (um^2) and halo-free confluence of one phase-contrast frame."""
    mask = body_mask(*local_contrast(frame, pixel_um, settings), pixel_um, settings)
    labels = split_cells(mask, pixel_um, settings)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    areas = np.bincount(labels.ravel())[ids] * pixel_um**2
    return FrameCells(mask, labels, int(ids.size), areas.astype(float), float(mask.mean()))


def read_cell_counts(path: str | Path, n_frames: int) -> np.ndarray:
    """Cells per frame from a CSV with columns ``frame,count`` (0-based frames: CellProfiler's
    ``ImageNumber`` - 1; e.g. its object counts), as floats with NaN for frames it does not list. One-line error for a bad file."""
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PhototoxError(f"{p}: cannot read the cell counts ({type(error).__name__})") from None
    if not rows or not {"frame", "count"} <= set(rows[0]):
        raise PhototoxError(f"{p}: cell counts need the columns frame,count")
    counts = np.full(n_frames, np.nan)
    for line, row in enumerate(rows, start=2):
        try:
            frame, count = int(row["frame"]), float(row["count"])
        except (TypeError, ValueError):
            raise PhototoxError(f"{p}, line {line}: frame must be an integer and count a number") from None
        if not 0 <= frame < n_frames:
            raise PhototoxError(f"{p}, line {line}: frame {frame} outside 0..{n_frames - 1}")
        if not (math.isfinite(count) and count >= 0):
            raise PhototoxError(f"{p}, line {line}: count must be a non-negative number, got {row['count']!r}")
        if np.isfinite(counts[frame]):
            raise PhototoxError(f"{p}, line {line}: frame {frame} listed twice")
        counts[frame] = count
    return counts


@dataclass
class PerCellRates:
    """Per-cell rates of a field's rounding events, with their denominators."""

    events_per_cell_per_hour: float
    fraction_never_rounding: float
    median_mitosis_min: float
    n_events: int
    mean_cells: float
    cell_hours: float
    denominators: str


def _no_mitosis(outcome: str) -> bool:
    """A death or failed division: its rounding time is no mitosis duration."""
    return "death" in outcome or "failed" in outcome


def per_cell_rates(events, counts, interval_min: float) -> PerCellRates:
    """Events per cell per hour, fraction of cells that never round, median mitosis duration (minutes).

    ``events``: (frame, y, x, outcome, duration_frames) per event (outcomes naming a death or a
    failed division are no mitoses for the duration; all events count for the rate);
    ``counts``: cells per frame (NaN where unknown). Denominators: the rate divides by the
    cell-hours (sum over frames of cells x interval); the never-rounding fraction is
    1 - events / mean cells (each event one cell, a cell rounding twice counted twice, floored at 0);
    the duration is the median over the events with a duration.
    """
    counts = np.asarray(counts, dtype=float)
    finite = counts[np.isfinite(counts)]
    if interval_min <= 0 or not math.isfinite(interval_min):
        raise PhototoxError(f"interval must be a positive number of minutes, got {interval_min}")
    events = list(events)
    cell_hours = float(finite.sum()) * interval_min / 60.0
    mean_cells = float(finite.mean()) if finite.size else math.nan
    rate = len(events) / cell_hours if cell_hours > 0 else math.nan
    never = max(0.0, 1.0 - len(events) / mean_cells) if mean_cells > 0 else math.nan
    mitoses = [float(e[4]) * interval_min for e in events if not _no_mitosis(str(e[3])) and e[4] is not None]
    duration = float(np.median(mitoses)) if mitoses else math.nan
    return PerCellRates(
        rate,
        never,
        duration,
        len(events),
        mean_cells,
        cell_hours,
        f"rate: {len(events)} events / {cell_hours:.4g} cell-hours; never rounding: 1 - events / "
        f"{mean_cells:.4g} mean cells; duration: median of {len(mitoses)} division events",
    )


def field_per_cell_rates(series: Any) -> dict:
    """Per-cell rates of one field's resolved rounding events (denominator: its cell count per frame).

    ``series`` is a time-course field series: ``outcome_events`` (:class:`phototox.timecourse.event_truth.Event`;
    divisions and failed divisions count, failed ones not for the mitosis duration),
    ``values["cell_count"]`` and ``field.interval_min``.
    """
    events = [
        (e.frame, e.y, e.x, e.outcome, e.track.end - e.track.start + 1)
        for e in series.outcome_events
        if e.outcome in ("division", "failed_division")
    ]
    rates = vars(per_cell_rates(events, series.values["cell_count"], series.field.interval_min))
    return {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in rates.items()}
