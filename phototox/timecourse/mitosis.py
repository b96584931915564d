"""Mitotic-rounding events: round, phase-bright objects that appear and resolve within about an hour.

A cell entering mitosis retracts and rounds up; in positive phase contrast the sphere is ringed by
a bright halo. Detector, per frame:

1. local contrast (:func:`local_contrast`): subtract a Gaussian background of ``background_um``
   and divide by the local median absolute deviation over about ``scale_um`` -- each object is
   judged against its own neighbourhood, never against the spread of the whole field (which
   depends on density, on what else is in the field and on how the field is cut);
2. bright pixels: above ``brightness`` local spreads (the halo and bright body of a rounded cell);
3. fill the holes of each bright component (a closed halo becomes the whole round cell), open the
   result with a disc of diameter half ``min_diameter_um`` (cuts off the thin bright edges of
   neighbouring spread cells that touch the halo) and keep components whose equivalent diameter
   lies in ``[min_diameter_um, max_diameter_um]``, whose circularity (4 pi area / perimeter^2) is
   at least ``min_circularity`` and whose solidity is at least ``min_solidity``, that do not touch
   the image border, and whose rim (pixels within a third of the equivalent radius of its edge) is
   phase-bright on average (``rim_brightness`` local spreads)
   -- spread cells, their bright edges, and dark debris or dead cells inside a halo fail these tests.

Over frames, detections closer than ``link_um`` to a track's last position (greedy nearest first;
a track may miss up to ``max_gap_frames`` frames, as a detector flickers) form tracks;
:mod:`phototox.timecourse.events` decides what each track was (division, failed division,
persistent round object). :func:`rounding_events` and :func:`events_per_frame` are the rule before
that (a track that starts after the first frame and lasts at most ``max_rounding_min``), kept as
the baseline of ``benchmarks/bench_events.py --old`` and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage


@dataclass
class MitosisSettings:
    brightness: float = 3.0
    min_diameter_um: float = 18.0
    max_diameter_um: float = 60.0
    min_circularity: float = 0.7
    min_solidity: float = 0.9
    rim_brightness: float = 3.0
    background_um: float = 25.0
    scale_um: float = 60.0
    link_um: float = 12.0
    max_gap_frames: int = 2
    max_rounding_min: float = 90.0


@dataclass
class Track:
    frames: list[int] = field(default_factory=list)
    points: list[tuple[float, float]] = field(default_factory=list)  # (y, x) px

    @property
    def start(self) -> int:
        return self.frames[0]

    @property
    def end(self) -> int:
        return self.frames[-1]


def local_contrast(frame: np.ndarray, pixel_um: float, settings: MitosisSettings | None = None) -> np.ndarray:
    """Brightness of each pixel against its own neighbourhood, in local spreads.

    ``(smoothed - local background) / local spread``: the background is a Gaussian mean over
    ``background_um``; the spread is a local median of the absolute deviations (medians of
    ``BLOCK_UM`` blocks, then the median over about ``scale_um`` of blocks, times 1.4826: a standard
    deviation for Gaussian noise), robust to the bright halo of the object itself and to its
    neighbours' edges. Both are local, so a bright band or a crowd of cells elsewhere in the field
    does not rescale an object here, and cutting the field into tiles changes values only within
    about ``scale_um`` of a cut. Invariant to an affine change of brightness and contrast.
    """
    s = settings or MitosisSettings()
    smooth = ndimage.gaussian_filter(frame.astype(np.float32), 1.0)
    flat = smooth - ndimage.gaussian_filter(smooth, s.background_um / pixel_um)
    return flat / local_spread(np.abs(flat), pixel_um, s.scale_um)


BLOCK_UM = 14.0


def local_spread(deviation: np.ndarray, pixel_um: float, scale_um: float) -> np.ndarray:
    """1.4826 x the local median of ``deviation`` (absolute deviations) over about ``scale_um``."""
    h, w = deviation.shape
    block = max(2, round(BLOCK_UM / pixel_um))
    ny, nx = -(-h // block), -(-w // block)
    padded = np.pad(deviation, ((0, ny * block - h), (0, nx * block - w)), mode="edge")
    blocks = np.median(padded.reshape(ny, block, nx, block).transpose(0, 2, 1, 3).reshape(ny, nx, -1), axis=2)
    size = max(1, round(scale_um / (block * pixel_um))) | 1
    grid = ndimage.median_filter(blocks, size=size, mode="nearest")
    rows = (np.arange(h) + 0.5) / block - 0.5
    cols = (np.arange(w) + 0.5) / block - 0.5
    yy, xx = np.meshgrid(np.clip(rows, 0, ny - 1), np.clip(cols, 0, nx - 1), indexing="ij")
    spread = 1.4826 * ndimage.map_coordinates(grid, [yy, xx], order=1, mode="nearest")
    floor = 1e-6 * max(float(deviation.max()), 1e-12)
    return np.maximum(spread, floor).astype(np.float32)


def detect_round_objects(frame: np.ndarray, pixel_um: float, settings: MitosisSettings | None = None) -> np.ndarray:
    """(N, 3) array of round bright objects: centre y, centre x (px) and equivalent diameter (um)."""
    return _round_objects(local_contrast(frame, pixel_um, settings), pixel_um, settings)


def _round_objects(z: np.ndarray, pixel_um: float, settings: MitosisSettings | None = None) -> np.ndarray:
    from skimage.measure import regionprops
    from skimage.morphology import disk

    s = settings or MitosisSettings()
    filled = ndimage.binary_fill_holes(z > s.brightness)
    filled = ndimage.binary_opening(filled, structure=disk(max(1, round(s.min_diameter_um / 4 / pixel_um))))
    labels, _ = ndimage.label(filled)
    min_area = np.pi / 4 * (s.min_diameter_um / pixel_um) ** 2
    max_area = np.pi / 4 * (s.max_diameter_um / pixel_um) ** 2
    areas = np.bincount(labels.ravel())
    keep = (areas >= min_area) & (areas <= max_area)
    keep[0] = False
    labels[~keep[labels]] = 0
    depth = ndimage.distance_transform_edt(labels > 0)
    h, w = z.shape
    out = []
    for region in regionprops(labels):
        if region.perimeter == 0:
            continue
        y0, x0, y1, x1 = region.bbox
        if y0 == 0 or x0 == 0 or y1 == h or x1 == w:
            continue
        circularity = 4 * np.pi * region.area / region.perimeter**2
        if circularity < s.min_circularity or region.solidity < s.min_solidity:
            continue
        inside = labels[y0:y1, x0:x1] == region.label
        rim = inside & (depth[y0:y1, x0:x1] <= region.equivalent_diameter_area / 6)
        if not rim.any() or z[y0:y1, x0:x1][rim].mean() < s.rim_brightness:
            continue
        y, x = region.centroid
        out.append((y, x, region.equivalent_diameter_area * pixel_um))
    return np.array(out, dtype=float).reshape(-1, 3)


def link_detections(
    detections: list[np.ndarray], pixel_um: float, link_um: float, max_gap_frames: int = 2
) -> list[Track]:
    """Greedy nearest-neighbour linking of detections into tracks, bridging gaps of up to ``max_gap_frames``."""
    tracks: list[Track] = []
    limit = link_um / pixel_um
    for t, points in enumerate(detections):
        open_tracks = [tr for tr in tracks if t - tr.end <= max_gap_frames + 1]
        pairs = sorted(
            (float(np.hypot(*(np.array(tr.points[-1]) - p[:2]))), t - tr.end, i, j)
            for i, tr in enumerate(open_tracks)
            for j, p in enumerate(points)
        )
        linked: set[int] = set()
        taken: set[int] = set()
        for dist, _, i, j in pairs:
            if dist > limit or i in linked or j in taken:
                continue
            open_tracks[i].frames.append(t)
            open_tracks[i].points.append((float(points[j][0]), float(points[j][1])))
            linked.add(i)
            taken.add(j)
        tracks.extend(Track([t], [(float(p[0]), float(p[1]))]) for j, p in enumerate(points) if j not in taken)
    return tracks


def rounding_events(
    tracks: list[Track], interval_min: float, max_rounding_min: float, pixel_um: float = 1.0, nearby_um: float = 0.0
) -> tuple[list[Track], list[Track]]:
    """Split tracks into mitotic-rounding events and persistent round objects.

    An event starts after the first frame, lasts at most ``max_rounding_min``, and does not start
    within ``nearby_um`` of a round object seen in the ``max_rounding_min`` before it (a blinking
    detection of debris, a persistent object, or the daughters of a division just counted).
    """
    max_frames = max(1, int(np.floor(max_rounding_min / interval_min)) + 1)
    persistent = [t for t in tracks if t.end - t.start + 1 > max_frames]
    events = []
    limit = nearby_um / pixel_um
    for track in tracks:
        if track.start == 0 or track.end - track.start + 1 > max_frames:
            continue
        y, x = track.points[0]
        recent = any(
            track.start - max_frames <= f < track.start and np.hypot(py - y, px - x) <= limit
            for other in tracks
            if other is not track
            for f, (py, px) in zip(other.frames, other.points)
        )
        if not recent:
            events.append(track)
    return events, persistent


def events_per_frame(events: list[Track], n_frames: int) -> np.ndarray:
    """Number of rounding events starting at each frame."""
    counts = np.zeros(n_frames, dtype=int)
    for track in events:
        counts[track.start] += 1
    return counts


def hourly_rate(counts: np.ndarray, interval_min: float, window_min: float = 60.0) -> np.ndarray:
    """Events per hour in a centred window of ``window_min`` minutes around each frame."""
    half = max(0, round(window_min / interval_min / 2))
    padded = np.concatenate([np.full(half, np.nan), counts.astype(float), np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    n = np.sum(~np.isnan(windows), axis=1)
    return np.nansum(windows, axis=1) / (n * interval_min / 60.0)
