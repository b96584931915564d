"""Division, failed division / death and persistent rounding from round objects and what follows them.

Per frame, :func:`frame_objects` finds, on the local contrast of :func:`.mitosis.local_contrast`
(each pixel against its own neighbourhood), the round bright objects of
:func:`.mitosis.detect_round_objects` and every bright blob (a closed halo filled, at least
``PIECE_UM`` across). Round objects are linked over frames into tracks (a rounding episode). The
temporal signature then decides, per track:

- it must last at least ``min_round_frames`` and not start where a round object was seen in the
  ``max_rounding_min`` before (:class:`.mitosis.MitosisSettings`, ``--mitosis-max-minutes``:
  blinking debris, daughters of a division just counted), nor where a compact bright blob of at
  least half its area sat in the ``onset_frames`` before (the spread -> round signature: a static
  bright blob that passes the roundness test only now is no onset);
- ``persistent_round``: round for longer than ``max_rounding_min`` (static bright structures --
  debris, scratches, the well edge -- land here or nowhere: they have no onset and no split);
- ``unresolved``: still round at the last frame, for less than ``max_rounding_min``;
- otherwise the blobs within ``1.5`` round-cell diameters of its last position in the next
  ``outcome_frames`` frames (and on its last round frame) decide: two blobs of at least
  ``daughter_fraction`` of the round cell's area, or one elongated blob of at least half its area
  (a dumbbell) after it, is a ``division``;
  anything else (three or more fragments, a shrinking blob, nothing) is a ``failed_division``
  when there are three or more blobs or the cell was round for at least ``min_loss_frames``;
  otherwise (a two-frame flicker with no split) there is no event.

Tuned on synthetic divisions and deaths (:mod:`phototox.synth.events`) and the two top quadrants
of the Usiigaci T98G sample (Tsai et al., SoftwareX 2019); accepted on its two bottom quadrants
(``benchmarks/bench_events.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from phototox.timecourse.event_truth import Event
from phototox.timecourse.mitosis import MitosisSettings, Track, _round_objects, link_detections, local_contrast

PIECE_UM = 7.0
"""Smallest bright blob counted (diameter, um): a daughter cell or a fragment of a failed division."""


@dataclass
class EventSettings:
    """The temporal signature of a rounding episode (frames are converted from minutes)."""

    min_round_frames: int = 2
    outcome_frames: int = 2
    dumbbell_elongation: float = 1.6
    daughter_fraction: float = 0.2
    min_loss_frames: int = 3
    onset_frames: int = 3


@dataclass
class FrameObjects:
    """Round objects (y, x, diameter um) and bright blobs (y, x, area px, elongation) of one frame."""

    round: np.ndarray
    blobs: np.ndarray


def frame_objects(frame: np.ndarray, pixel_um: float, mitosis: MitosisSettings | None = None) -> FrameObjects:
    """Round objects and bright blobs of one frame, from its local contrast."""
    m = mitosis or MitosisSettings()
    z = local_contrast(frame, pixel_um, m)
    return FrameObjects(_round_objects(z, pixel_um, m), bright_blobs(z, pixel_um, m))


def bright_blobs(z: np.ndarray, pixel_um: float, m: MitosisSettings, piece_um: float = PIECE_UM) -> np.ndarray:
    """(N, 4): centre y, x, area (px) and elongation (major / minor axis) of filled bright blobs."""
    from skimage.measure import regionprops

    filled = ndimage.binary_opening(ndimage.binary_fill_holes(z > m.brightness), iterations=1)
    labels, _ = ndimage.label(filled)
    areas = np.bincount(labels.ravel())
    min_area = np.pi / 4 * (piece_um / pixel_um) ** 2
    max_area = 3 * np.pi / 4 * (m.max_diameter_um / pixel_um) ** 2
    keep = (areas >= min_area) & (areas <= max_area)
    keep[0] = False
    labels[~keep[labels]] = 0
    out = []
    for region in regionprops(labels):
        minor = max(region.minor_axis_length, 1e-6)
        y, x = region.centroid
        out.append((y, x, region.area, region.major_axis_length / minor))
    return np.array(out, dtype=float).reshape(-1, 4)


def _recent_round(track: Track, tracks: list[Track], window: int, limit_px: float) -> bool:
    y, x = track.points[0]
    return any(
        track.start - window <= f < track.start and np.hypot(py - y, px - x) <= limit_px
        for other in tracks
        if other is not track
        for f, (py, px) in zip(other.frames, other.points)
    )


def _compact_before(
    track: Track, diameter_px: float, blobs: list[np.ndarray], frames: int, limit_px: float, elongation: float
) -> bool:
    """Was a compact bright blob of at least half the round cell's area already there before onset?"""
    y, x = track.points[0]
    half = np.pi / 8 * diameter_px**2
    for t in range(max(0, track.start - frames), track.start):
        b = blobs[t]
        if len(b) and np.any(
            (np.hypot(b[:, 0] - y, b[:, 1] - x) <= limit_px) & (b[:, 2] >= half) & (b[:, 3] < elongation)
        ):
            return True
    return False


def outcome_of(track: Track, diameter_px: float, blobs: list[np.ndarray], settings: EventSettings) -> str | None:
    """``division``, ``failed_division`` or None (no decision) from the blobs after the track ends."""
    y, x = track.points[-1]
    radius = 1.5 * diameter_px
    round_area = np.pi / 4 * diameter_px**2
    counts = []
    for t in range(track.end, min(len(blobs), track.end + 1 + settings.outcome_frames)):
        b = blobs[t]
        near = b[np.hypot(b[:, 0] - y, b[:, 1] - x) <= radius] if len(b) else b
        daughters = near[near[:, 2] >= settings.daughter_fraction * round_area]
        dumbbell = (daughters[:, 3] >= settings.dumbbell_elongation) & (daughters[:, 2] >= 0.5 * round_area)
        if len(daughters) == 2 or (t > track.end and len(daughters) == 1 and dumbbell.any()):
            return "division"
        if t > track.end:
            counts.append(len(near))
    if counts and (counts[0] >= 3 or len(track.frames) >= settings.min_loss_frames):
        return "failed_division"
    return None


def classify_tracks(
    tracks: list[Track],
    diameters: dict[int, float],
    blobs: list[np.ndarray],
    interval_min: float,
    pixel_um: float,
    mitosis: MitosisSettings | None = None,
    settings: EventSettings | None = None,
) -> list[Event]:
    """Events (0-based first round frame, position, outcome) of round-object tracks.

    ``diameters``: the mean diameter (px) of each track, keyed by ``id(track)``.
    """
    m, s = mitosis or MitosisSettings(), settings or EventSettings()
    n_frames = len(blobs)
    max_frames = max(1, int(np.floor(m.max_rounding_min / interval_min)) + 1)
    events = []
    for track in tracks:
        length = track.end - track.start + 1
        if length < s.min_round_frames:
            continue
        if _recent_round(track, tracks, max_frames, 2 * m.link_um / pixel_um):
            continue
        if _compact_before(
            track, diameters[id(track)], blobs, s.onset_frames, m.link_um / pixel_um, s.dumbbell_elongation
        ):
            continue
        y, x = track.points[0]
        if length > max_frames:
            outcome: str | None = "persistent_round"
        elif track.end == n_frames - 1:
            outcome = "unresolved"
        else:
            outcome = outcome_of(track, diameters[id(track)], blobs, s)
        if outcome is not None:
            resolved = outcome in ("division", "failed_division")
            events.append(
                Event(track.start, y, x, outcome, outcome_frame=track.end + 1 if resolved else None, track=track)
            )
    return sorted(events, key=lambda e: (e.frame, e.y, e.x))


def detect_events(
    objects: list[FrameObjects],
    interval_min: float,
    pixel_um: float,
    mitosis: MitosisSettings | None = None,
    settings: EventSettings | None = None,
) -> list[Event]:
    """Events of one field from its per-frame :func:`frame_objects`."""
    m = mitosis or MitosisSettings()
    tracks = link_detections([o.round for o in objects], pixel_um, m.link_um, m.max_gap_frames)
    diameters = {}
    for track in tracks:
        ds = [
            objects[f].round[np.argmin(np.hypot(*(objects[f].round[:, :2] - p).T)), 2]
            for f, p in zip(track.frames, track.points)
        ]
        diameters[id(track)] = float(np.mean(ds)) / pixel_um
    return classify_tracks(tracks, diameters, [o.blobs for o in objects], interval_min, pixel_um, m, settings)


def events_in_stack(
    stack: np.ndarray,
    interval_min: float,
    pixel_um: float,
    mitosis: MitosisSettings | None = None,
    settings: EventSettings | None = None,
) -> list[Event]:
    """:func:`detect_events` of a (T, H, W) stack."""
    return detect_events(
        [frame_objects(f, pixel_um, mitosis) for f in stack], interval_min, pixel_um, mitosis, settings
    )


def event_counts(events: list[Event], n_frames: int, outcome: str) -> np.ndarray:
    """Number of events of ``outcome`` whose rounding starts at each frame."""
    counts = np.zeros(n_frames, dtype=int)
    for e in events:
        if e.outcome == outcome:
            counts[e.frame] += 1
    return counts
