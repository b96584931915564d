"""When does an exposed field depart from the control fields? One field at a time, frame by frame.

Healthy cells change over hours too (confluence rises, focus drifts), so each exposed field is
compared with the **other positions that are controls, at the same frame** -- never with earlier
frames of itself:

1. every field's series is smoothed by a running median of ``smooth_frames`` frames (a one-frame
   focus jump is not a departure) and taken relative to its own first ``baseline_frames`` (fixed
   offsets between fields, e.g. cell density, removed: a difference-in-differences);
2. at each frame after the baseline, :func:`phototox.stats.compare.check_new_field` asks whether the
   exposed field lies outside the control fields' prediction interval for one new field at that
   frame (t interval, k-1 df over the k control fields; the controls' standard deviation taken as
   at least the measure's ``floor``); that is a **departure**;
3. the **onset** is the first frame of the first run of ``persistence`` consecutive departures.

False onsets are bounded family-wise by Bonferroni over every possible run start of every exposed
field of one readout: each frame is tested at ``alpha / (fields x (frames_after_baseline -
persistence + 1))``. A run that starts at frame ``s`` needs a departure at ``s``, so whatever the
autocorrelation of the series, the chance of any false onset in one readout of one experiment is
at most ``alpha`` (given prediction intervals with their nominal coverage: normal, exchangeable
fields). ``persistence`` (default :data:`DEFAULT_PERSISTENCE` frames) was chosen on synthetic null
series only (``benchmarks/bench_onsets.py``, 400 experiments of 4 control + 3 exposed positions with
field drift, autocorrelated noise and focus excursions): the smallest persistence whose false-onset
rate is shown below 5% (Clopper-Pearson upper bound <= 5%): 1 frame gave 3.5% (CP <= 5.8%), 2 frames
0.8% (CP <= 2.2%). It was never tuned on a real recording. At least two control fields are needed; without them no onset is given.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from phototox.stats.compare import UNLIKE, check_new_field, prediction_factor

NO_CONTROLS = "no onset can be given: no control fields (fields with zero light dose)"
TOO_FEW_CONTROLS = "no onset can be given: at least two control fields are needed to measure their spread"
DEFAULT_PERSISTENCE = 2
"""Frames a departure must last; chosen on synthetic null series (benchmarks/README.md)."""


@dataclass
class OnsetSettings:
    """How departures and onsets are found (see the module)."""

    alpha: float = 0.05  # family-wise false-onset rate per readout, over all frames and exposed fields
    persistence: int = DEFAULT_PERSISTENCE
    baseline_frames: int = 3
    smooth_frames: int = 3
    n_boot: int = 0  # resamples of the per-dose comparisons with 5+ fields per arm (0: the engine's default)
    confidence: float = 0.95
    seed: int = 0

    def persistence_frames(self) -> int:
        return self.persistence


def running_median(series: np.ndarray, frames: int) -> np.ndarray:
    """Running median of each row over ``frames`` frames (NaN-aware, edges use shorter windows)."""
    if frames <= 1:
        return series
    half = frames // 2
    padded = np.pad(series.astype(float), ((0, 0), (half, half)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, frames, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN
        return np.nanmedian(windows, axis=-1)


def relative_to_baseline(series: np.ndarray, baseline_frames: int) -> np.ndarray:
    """Subtract each field's mean over its first ``baseline_frames`` (0: unchanged)."""
    if baseline_frames <= 0:
        return series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return series - np.nanmean(series[:, :baseline_frames], axis=1, keepdims=True)


def prepared(series: np.ndarray, settings: OnsetSettings) -> np.ndarray:
    """The series the departures are found on: smoothed, relative to each field's baseline."""
    return relative_to_baseline(running_median(series, settings.smooth_frames), settings.baseline_frames)


def frame_level(n_fields: int, n_frames: int, settings: OnsetSettings) -> float:
    """Per-frame two-sided level: ``alpha`` over every run start of every exposed field (Bonferroni)."""
    starts = max(1, n_frames - settings.baseline_frames - settings.persistence + 1)
    return settings.alpha / (max(1, n_fields) * starts)


def departures(field: np.ndarray, controls: np.ndarray, level: float, floor: float = 0.0, start: int = 0) -> np.ndarray:
    """Signed departures of one prepared field (T,) from prepared control fields (k, T) at each frame.

    +1 above, -1 below the controls' prediction interval for a new field at ``1 - level``, 0 inside
    or where a value is missing; frames before ``start`` are 0. ``floor`` is the smallest standard
    deviation assumed for the control fields: counts (rounding events) of a few fields are often
    all equal, and a zero spread would make any difference a departure.
    """
    out = np.zeros(field.size, dtype=int)
    for t in range(start, field.size):
        c = controls[:, t]
        c = c[np.isfinite(c)]
        if not np.isfinite(field[t]) or c.size < 2:
            continue
        check = check_new_field(float(field[t]), c, confidence=1 - level)
        least = prediction_factor(c.size, level) * floor
        if check.verdict == UNLIKE and abs(check.difference) > least:
            out[t] = 1 if check.difference > 0 else -1
    return out


def first_run(signs: np.ndarray, persistence: int) -> int | None:
    """Index of the first run of ``persistence`` consecutive departures in one direction, or None."""
    run, previous = 0, 0
    for i, s in enumerate(signs):
        run = run + 1 if s != 0 and s == previous else (1 if s != 0 else 0)
        previous = s
        if run >= persistence:
            return i - persistence + 1
    return None


def field_onsets(
    exposed: np.ndarray, controls: np.ndarray, settings: OnsetSettings, floor: float = 0.0
) -> list[tuple[int | None, int]]:
    """(onset frame or None, direction +1/-1/0) of each exposed field (n_e, T) against controls (k, T)."""
    e, c = prepared(exposed, settings), prepared(controls, settings)
    level = frame_level(len(e), e.shape[1], settings)
    found = []
    for row in e:
        signs = departures(row, c, level, floor, settings.baseline_frames)
        index = first_run(signs, settings.persistence)
        found.append((index, 0 if index is None else int(signs[index])))
    return found


@dataclass
class Onset:
    """Onset of one measure in one exposed field."""

    measure: str
    group: str
    field: str
    time_min: float | None
    direction: str
    frame_level: float = 0.0
    note: str = ""

    def describe(self, unit: str = "min") -> str:
        if self.note:
            return self.note
        if self.time_min is None:
            return "no onset within the recording"
        return f"{self.time_min:.0f} {unit} ({self.direction})"


def find_onsets(
    series: dict[str, np.ndarray],
    groups: list[str],
    control_group: str | None,
    times: np.ndarray,
    settings: OnsetSettings,
    floors: dict[str, float] | None = None,
    names: list[str] | None = None,
) -> list[Onset]:
    """Onset of every measure (``series``: name -> (fields, T)) in every exposed field.

    ``floors``: per measure, the smallest change worth reporting. ``names``: field names.
    """
    names = names or [f"field {i + 1}" for i in range(len(groups))]
    labels = np.asarray(groups)
    exposed = [i for i, g in enumerate(groups) if g != control_group]
    n_controls = int(np.sum(labels == control_group)) if control_group is not None else 0
    if control_group is None or n_controls < 2:
        note = NO_CONTROLS if n_controls == 0 else TOO_FEW_CONTROLS
        return [Onset(m, groups[i], names[i], None, "", 0.0, note) for m in series for i in exposed]
    onsets = []
    for measure, values in series.items():
        floor = (floors or {}).get(measure, 0.0)
        level = frame_level(len(exposed), values.shape[1], settings)
        found = field_onsets(values[exposed], values[labels == control_group], settings, floor)
        for i, (index, sign) in zip(exposed, found):
            direction = "" if index is None else ("above controls" if sign > 0 else "below controls")
            time = None if index is None else float(times[index])
            onsets.append(Onset(measure, groups[i], names[i], time, direction, level))
    return onsets
