"""Synthetic phase-contrast fields with known divisions, failed divisions and static bright structures.

Sibling of :mod:`phototox.synth.timelapse` (same cell shapes and optics, :mod:`phototox.synth.fields`),
made to test the event detector (:mod:`phototox.timecourse.events`) against exact truth. Cells sit
on a jittered grid and wobble a little; a scheduled cell rounds up (a phase-bright sphere) for
``rounding_frames`` frames, then either

- divides: two bright daughters separate (two frames) and spread again, or
- fails: the sphere bursts into three to five small bright fragments that fade over three frames,
  leaving a dark damaged remnant (mitotic catastrophe / death).

Optional distractors with no temporal signature: a round bright bead present in every frame (a
``persistent_round``), and a bright textured band (a scratch or well edge). These fields test
the machinery; they are not real cells and are no validation of the biology.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phototox.synth.fields import _damaged_cell, _healthy_cell, phase_contrast
from phototox.synth.timelapse import MITOTIC_RADIUS_PX, PIXEL_UM, _mitotic_cell

__all__ = ["PIXEL_UM", "EventField", "SynthEvent", "add_band", "render_event_field"]


@dataclass
class SynthEvent:
    """Truth of one event: 0-based first round frame, centre (px) and outcome."""

    frame: int
    y: float
    x: float
    outcome: str  # "division" or "failed_division"


@dataclass
class EventField:
    """A rendered (T, H, W) uint16 stack and its events."""

    stack: np.ndarray
    events: list[SynthEvent] = field(default_factory=list)
    bead: tuple[float, float] | None = None


def render_event_field(
    n_frames: int = 16,
    size: int = 256,
    schedule: list[tuple[int, str]] | None = None,
    seed: int = 0,
    rounding_frames: int = 4,
    bead: bool = False,
    spacing: int = 80,
) -> EventField:
    """Cells on a grid ``spacing`` px apart; ``schedule[k] = (start frame, outcome)`` for cell k.

    Cells beyond the schedule never divide. ``bead``: a static round bright object in the last grid
    position (replacing that cell).
    """
    rng = np.random.default_rng(seed)
    schedule = list(schedule or [])
    n = max(1, size // spacing)
    centres = [
        (spacing * (i + 0.5) + rng.uniform(-8, 8), spacing * (j + 0.5) + rng.uniform(-8, 8))
        for i in range(n)
        for j in range(n)
    ]
    if len(schedule) > len(centres) - int(bead):
        raise ValueError(f"{len(schedule)} scheduled events do not fit {len(centres) - int(bead)} cells")
    shape_seeds = rng.integers(1 << 30, size=len(centres))
    angles = rng.uniform(0, np.pi, len(centres))
    bursts = [rng.uniform(-16, 16, (int(rng.integers(3, 6)), 2)) for _ in centres]
    events = [SynthEvent(start, *centres[k], outcome) for k, (start, outcome) in enumerate(schedule)]
    frames = []
    for t in range(n_frames):
        phi = np.zeros((size, size))
        labels = np.zeros((size, size), np.int32)
        for k, (cy, cx) in enumerate(centres):
            wobble = np.random.default_rng((seed, k, t)).normal(0, 1.0, 2)
            y, x = cy + wobble[0], cx + wobble[1]
            if bead and k == len(centres) - 1:
                _mitotic_cell(phi, cy, cx, MITOTIC_RADIUS_PX)
                continue
            shape = np.random.default_rng(int(shape_seeds[k]))
            if k >= len(schedule) or t < schedule[k][0]:
                _healthy_cell(phi, labels, k + 1, y, x, 1.0, shape)
                continue
            since = t - schedule[k][0]
            if since < rounding_frames:
                _mitotic_cell(phi, y, x, MITOTIC_RADIUS_PX)
            elif schedule[k][1] == "division":
                after = since - rounding_frames
                dy, dx = np.sin(angles[k]), np.cos(angles[k])
                if after < 2:
                    gap = 10 + 4 * after
                    for sign in (-1, 1):
                        _mitotic_cell(phi, y + sign * gap * dy, x + sign * gap * dx, 9.5 - after)
                else:
                    for sign in (-1, 1):
                        _healthy_cell(phi, labels, k + 1, y + sign * 16 * dy, x + sign * 16 * dx, 0.7, shape)
            else:
                after = since - rounding_frames
                if after < 3:
                    for oy, ox in bursts[k]:
                        _mitotic_cell(phi, y + oy, x + ox, 4.5 - after)
                else:
                    _damaged_cell(phi, labels, k + 1, y, x, 0.6, 0.9, shape)
        frames.append(phase_contrast(phi, np.random.default_rng((seed, 1000 + t))))
    return EventField(np.stack(frames), events, centres[-1] if bead else None)


def add_band(stack: np.ndarray, x0: int, x1: int, seed: int = 0, strength: float = 0.5) -> np.ndarray:
    """A static bright textured band (a scratch or well edge) over columns ``[x0, x1)`` of every frame."""
    rng = np.random.default_rng(seed)
    out = stack.astype(np.float64)
    h = stack.shape[1]
    texture = 1 + strength * (0.6 + 0.4 * np.sin(np.arange(h) / 3.0)[:, None]) * rng.uniform(0.5, 1.5, (h, x1 - x0))
    out[:, :, x0:x1] *= texture
    return np.clip(out, 0, 65535).astype(stack.dtype)
