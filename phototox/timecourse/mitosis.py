"""Mitotic-rounding events: round, phase-bright objects that appear and resolve within about an hour.

A cell entering mitosis retracts and rounds up; in positive phase contrast the sphere is ringed by
a bright halo. Detector, per frame:

1. flatten the illumination (subtract a Gaussian background of ``25 um``) and scale by the robust
   spread of the background;
2. bright pixels: above ``brightness`` robust spreads (the halo and bright body of a rounded cell);
3. fill the holes of each bright component (a closed halo becomes the whole round cell), open the
   result with a disc of diameter half ``min_diameter_um`` (cuts off the thin bright edges of
   neighbouring spread cells that touch the halo) and keep components whose equivalent diameter lies in ``[min_diameter_um, max_diameter_um]``, whose
   circularity (4 pi area / perimeter^2) is at least ``min_circularity`` and whose solidity is at
   least ``min_solidity``, that do not touch the image border, and whose body (pixels deeper than a
   third of the equivalent radius) is phase-bright on average (``body_brightness`` robust spreads)
   -- spread cells, their bright edges, and dark debris or dead cells inside a halo fail these tests.

Over frames, detections closer than ``link_um`` to a track's last position (greedy nearest first;
a track may miss up to ``max_gap_frames`` frames, as a detector flickers) form tracks. A track that starts after the first frame, lasts at most ``max_rounding_min`` and does not
start within ``2 * link_um`` of a round object seen in the ``max_rounding_min`` before it is one
mitotic-rounding event; longer tracks are persistent round objects (arrested, dying or floating
cells, reported separately).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from phototox.timecourse.activity import flatten


@dataclass
class MitosisSettings:
    brightness: float = 4.0
    min_diameter_um: float = 18.0
    max_diameter_um: float = 60.0
    min_circularity: float = 0.7
    min_solidity: float = 0.9
    body_brightness: float = 5.0
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


def detect_round_objects(frame: np.ndarray, pixel_um: float, settings: MitosisSettings | None = None) -> np.ndarray:
    """(N, 3) array of round bright objects: centre y, centre x (px) and equivalent diameter (um)."""
    from skimage.measure import label, regionprops

    s = settings or MitosisSettings()
    flat = flatten(ndimage.gaussian_filter(frame.astype(np.float32), 1.0), 25.0 / pixel_um)
    bright = flat > s.brightness
    from skimage.morphology import disk

    filled = ndimage.binary_fill_holes(bright)
    filled = ndimage.binary_opening(filled, structure=disk(max(1, round(s.min_diameter_um / 4 / pixel_um))))
    out = []
    min_area = np.pi / 4 * (s.min_diameter_um / pixel_um) ** 2
    max_area = np.pi / 4 * (s.max_diameter_um / pixel_um) ** 2
    labels = label(filled)
    depth = ndimage.distance_transform_edt(filled)
    h, w = frame.shape
    for region in regionprops(labels):
        if not min_area <= region.area <= max_area or region.perimeter == 0:
            continue
        y0, x0, y1, x1 = region.bbox
        if y0 == 0 or x0 == 0 or y1 == h or x1 == w:
            continue
        circularity = 4 * np.pi * region.area / region.perimeter**2
        if circularity < s.min_circularity or region.solidity < s.min_solidity:
            continue
        inside = labels[y0:y1, x0:x1] == region.label
        body = inside & (depth[y0:y1, x0:x1] > region.equivalent_diameter_area / 6)
        if not body.any() or flat[y0:y1, x0:x1][body].mean() < s.body_brightness:
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
