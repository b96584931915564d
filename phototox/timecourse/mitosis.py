"""Mitotic-rounding events: round, phase-bright objects that appear and resolve within about an hour.

A cell entering mitosis retracts and rounds up; in positive phase contrast the sphere is ringed by
a bright halo. Detector, per frame:

1. flatten the illumination (subtract a Gaussian background of ``25 um``) and scale by the robust
   spread of the background;
2. bright pixels: above ``brightness`` robust spreads (the halo and bright body of a rounded cell);
3. fill the holes of each bright component (a closed halo becomes the whole round cell) and keep
   components whose equivalent diameter lies in ``[min_diameter_um, max_diameter_um]``, whose
   circularity (4 pi area / perimeter^2) is at least ``min_circularity`` and whose solidity is at
   least ``min_solidity`` -- spread cells, their bright edges and debris fail these tests.

Over frames, detections closer than ``link_um`` in consecutive frames (greedy nearest first) form
tracks. A track that starts after the first frame and lasts at most ``max_rounding_min`` is one
mitotic-rounding event; longer tracks are persistent round objects (arrested, dying or floating
cells, reported separately).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .activity import flatten


@dataclass
class MitosisSettings:
    brightness: float = 4.0
    min_diameter_um: float = 15.0
    max_diameter_um: float = 40.0
    min_circularity: float = 0.75
    min_solidity: float = 0.9
    link_um: float = 12.0
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
    filled = ndimage.binary_fill_holes(bright)
    out = []
    min_area = np.pi / 4 * (s.min_diameter_um / pixel_um) ** 2
    max_area = np.pi / 4 * (s.max_diameter_um / pixel_um) ** 2
    for region in regionprops(label(filled)):
        if not min_area <= region.area <= max_area or region.perimeter == 0:
            continue
        circularity = 4 * np.pi * region.area / region.perimeter**2
        if circularity < s.min_circularity or region.solidity < s.min_solidity:
            continue
        y, x = region.centroid
        out.append((y, x, region.equivalent_diameter_area * pixel_um))
    return np.array(out, dtype=float).reshape(-1, 3)


def link_detections(detections: list[np.ndarray], pixel_um: float, link_um: float) -> list[Track]:
    """Greedy nearest-neighbour linking of detections in consecutive frames into tracks."""
    tracks: list[Track] = []
    open_tracks: list[Track] = []
    limit = link_um / pixel_um
    for t, points in enumerate(detections):
        taken: set[int] = set()
        still_open = []
        pairs = sorted(((float(np.hypot(*(np.array(tr.points[-1]) - p[:2]))), i, j)
                        for i, tr in enumerate(open_tracks) for j, p in enumerate(points)))
        linked_tracks: set[int] = set()
        for dist, i, j in pairs:
            if dist > limit or i in linked_tracks or j in taken:
                continue
            open_tracks[i].frames.append(t)
            open_tracks[i].points.append((float(points[j][0]), float(points[j][1])))
            linked_tracks.add(i)
            taken.add(j)
        still_open = [open_tracks[i] for i in sorted(linked_tracks)]
        for j, p in enumerate(points):
            if j not in taken:
                track = Track([t], [(float(p[0]), float(p[1]))])
                tracks.append(track)
                still_open.append(track)
        open_tracks = still_open
    return tracks


def rounding_events(tracks: list[Track], interval_min: float, max_rounding_min: float) -> tuple[list[Track], list[Track]]:
    """Split tracks into mitotic-rounding events (appear after frame 0, short) and persistent round objects."""
    max_frames = max(1, int(np.floor(max_rounding_min / interval_min)) + 1)
    events = [t for t in tracks if t.start > 0 and len(t.frames) <= max_frames]
    persistent = [t for t in tracks if len(t.frames) > max_frames]
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
