"""Onsets as the frames arrive: the time-course rule (:mod:`phototox.timecourse.onset`), evaluated
on each frame as soon as its value can no longer change.

The time-course compares each field with the control fields at the same frame, after a running
median of ``smooth_frames`` and relative to its first ``baseline_frames``. A smoothed value at frame
``f`` is final once frame ``f + smooth_frames // 2`` has arrived at every position, so each frame's
departure is decided once, ``smooth_frames // 2`` frames later, and never revised: the live onsets
are exactly those of the same rule run on the finished series (:meth:`LiveOnsets.offline`), only
announced as soon as they are known.

Family-wise over positions and readouts: every position is tested -- exposed positions against all
controls, each control against the other controls (leave-one-out: a warning on a control is a false
warning by construction) -- and each frame at ``alpha / (readouts x positions x run starts)`` (the
time-course's Bonferroni, :func:`phototox.timecourse.onset.frame_level`, over the planned frames).
A frame whose analysis was skipped is missing: it is no departure, so a run of departures cannot
cross it (a gap only delays a warning, never makes one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phototox.timecourse.onset import OnsetSettings, departures, first_run, frame_level, prepared


@dataclass
class LiveWarning:
    """A position that departs from the controls: the time-course onset of one readout."""

    position: str
    readout: str
    onset_frame: int
    onset_time_min: float
    warned_frame: int  # the last frame needed to decide (onset + persistence - 1 + smoothing lag)
    direction: str
    value: float  # the position's prepared value at the onset frame
    controls_mean: float
    controls_sd: float
    n_controls: int
    frame_level: float
    is_control: bool
    persistence: int = 2

    def message(self) -> str:
        """One line: position, time, readout, evidence."""
        kind = "CONTROL (a false warning)" if self.is_control else "position"
        return (
            f"phototox live: {kind} {self.position}: {self.readout} {self.direction} from frame "
            f"{self.onset_frame} ({self.onset_time_min:g} min): change from baseline {self.value:+.3g} vs "
            f"controls {self.controls_mean:+.3g} (sd {self.controls_sd:.2g}, {self.n_controls} fields), outside "
            f"their prediction interval at level {self.frame_level:.2g} per frame for {self.persistence} "
            f"consecutive frames (known at frame {self.warned_frame})"
        )


class LiveOnsets:
    """Departures of every position from the controls, decided frame by frame."""

    def __init__(
        self,
        positions: list[str],
        controls: list[str],
        readouts: list[str],
        n_frames: int,
        settings: OnsetSettings,
        floors: dict[str, float] | None = None,
        interval_min: float = 1.0,
    ):
        self.positions, self.readouts, self.n_frames = list(positions), list(readouts), int(n_frames)
        self.controls = [positions.index(c) for c in controls]
        self.settings, self.floors, self.interval_min = settings, floors or {}, interval_min
        self.level = frame_level(len(positions) * len(readouts), n_frames, settings)
        self.values = {r: np.full((len(positions), n_frames), np.nan) for r in readouts}
        self.signs = {r: np.zeros((len(positions), n_frames), dtype=int) for r in readouts}
        self.decided = 0  # frames whose departures are final
        self.warnings: list[LiveWarning] = []
        self._warned: set[tuple[int, str]] = set()

    def reference(self, p: int) -> list[int]:
        """The control rows position ``p`` is compared with (itself left out)."""
        return [c for c in self.controls if c != p]

    def set(self, position: int, frame: int, values: dict[str, float]) -> None:
        """One analysed frame's readouts (on the onset scale)."""
        for r in self.readouts:
            self.values[r][position, frame] = values.get(r, np.nan)

    def advance(self, complete: int, final: bool = False) -> list[LiveWarning]:
        """Decide every frame that is final once frames ``< complete`` have arrived everywhere."""
        s = self.settings
        half = s.smooth_frames // 2 if s.smooth_frames > 1 else 0
        upto = self.n_frames if final else max(0, complete - half)
        if complete < s.baseline_frames + half and not final:
            return []
        new: list[LiveWarning] = []
        known = self.n_frames - 1 if final else complete - 1
        for r in self.readouts:
            data = self.values[r][:, : complete if not final else self.n_frames]
            ready = prepared(data, s)
            for p in range(len(self.positions)):
                ref = self.reference(p)
                if len(ref) < 2:
                    continue
                for f in range(max(self.decided, s.baseline_frames), min(upto, ready.shape[1])):
                    self.signs[r][p, f] = departures(
                        ready[p, f : f + 1], ready[ref, f : f + 1], self.level, self.floors.get(r, 0.0)
                    )[0]
                if (p, r) in self._warned:
                    continue
                start = first_run(self.signs[r][p, : min(upto, ready.shape[1])], s.persistence)
                if start is not None:
                    new.append(self._warning(p, r, start, ready, ref, known))
                    self._warned.add((p, r))
        self.decided = max(self.decided, upto)
        self.warnings.extend(new)
        return new

    def _warning(self, p: int, r: str, start: int, ready: np.ndarray, ref: list[int], known: int) -> LiveWarning:
        c = ready[ref, start]
        c = c[np.isfinite(c)]
        return LiveWarning(
            self.positions[p],
            r,
            start,
            start * self.interval_min,
            known,
            "above controls" if self.signs[r][p, start] > 0 else "below controls",
            float(ready[p, start]),
            float(np.mean(c)),
            float(np.std(c, ddof=1)) if c.size > 1 else float("nan"),
            int(c.size),
            self.level,
            p in self.controls,
            self.settings.persistence,
        )

    def offline(self) -> dict[tuple[str, str], int | None]:
        """The same rule on the finished series at once: (position, readout) -> onset frame."""
        s = self.settings
        out: dict[tuple[str, str], int | None] = {}
        for r in self.readouts:
            ready = prepared(self.values[r], s)
            for p, name in enumerate(self.positions):
                ref = self.reference(p)
                if len(ref) < 2:
                    out[(name, r)] = None
                    continue
                signs = departures(ready[p], ready[ref], self.level, self.floors.get(r, 0.0), s.baseline_frames)
                out[(name, r)] = first_run(signs, s.persistence)
        return out
