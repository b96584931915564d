"""When do exposed fields depart from the controls? Control-referenced change detection.

Healthy cells change over hours too (confluence rises, focus drifts), so each exposed field is
compared with the **control fields at the same time point**, not with its own early frames alone:

1. each field's series is smoothed by a running median of ``smooth_frames`` frames (isolated
   one-frame spikes, e.g. a focus jump, are not departures) and taken relative to its own first ``baseline_frames`` (removing fixed
   offsets between fields, e.g. different cell densities; a difference-in-differences);
2. ``d(t)`` = mean of the exposed fields minus mean of the controls at frame ``t``;
3. the noise of ``d(t)`` is the exposed fields' own frame-to-frame noise (median absolute
   successive difference) plus the controls' spread: their variance between fields, pooled over
   the whole recording (healthy fields drift apart over hours, and a few fields give a poor
   estimate at any one frame; ``noise_window`` > 0 pools a running window instead), times
   ``1/n_exposed + 1/n_controls``, and never below the measure's ``floor`` (the smallest change
   worth reporting, e.g. one percentage point of area); exposed fields may scatter more once
   damaged: that is effect, not noise;
4. the onset is the first frame of the first run of ``persistence`` consecutive frames whose
   ``|d| / noise`` exceeds ``z_threshold`` (a departure in either direction). By default a departure
   must last ``persistence_min`` = 60 minutes of frames (at least 3): on the healthy T98G
   time-lapse (10.2 min/frame, quadrants as mutual controls) 3 frames (31 min) gave false onsets in
   motion, confluence and mitotic rate, 6 frames (61 min) none. That choice was made on the same
   recording it was checked on: a calibration on one sequence, not a validation.

The interval comes from a bootstrap over fields: control fields and the fields of each dose are
resampled with replacement and the onset found again; a resample without onset counts as "after
the end of the recording". At least two control fields are needed; without them no onset is given.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np

NO_CONTROLS = "no onset can be given: no control fields (fields with zero light dose)"
TOO_FEW_CONTROLS = "no onset can be given: at least two control fields are needed to measure their noise"


@dataclass
class OnsetSettings:
    z_threshold: float = 3.0
    persistence: int | None = None  # frames; None: persistence_min at the recording's interval
    persistence_min: float = 60.0
    baseline_frames: int = 3
    noise_window: int = 0
    smooth_frames: int = 3
    n_boot: int = 500
    confidence: float = 0.95
    seed: int = 0

    def persistence_frames(self, interval_min: float | None = None) -> int:
        """Frames a departure must last: ``persistence``, else ``persistence_min`` at ``interval_min`` (at least 3)."""
        if self.persistence is not None:
            return self.persistence
        if interval_min is None or not interval_min > 0:
            raise ValueError("persistence in minutes needs the frame interval")
        return max(3, math.ceil(self.persistence_min / interval_min - 1e-9))

    def for_interval(self, interval_min: float) -> OnsetSettings:
        """These settings with the persistence in frames for a recording at ``interval_min``."""
        return dataclasses.replace(self, persistence=self.persistence_frames(interval_min))


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


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    half = window // 2
    padded = np.pad(values, (half, half), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def departure_z(exposed: np.ndarray, controls: np.ndarray, settings: OnsetSettings, floor: float = 0.0) -> np.ndarray:
    """Standardised departure of the exposed mean from the control mean at every frame."""
    e = relative_to_baseline(running_median(exposed, settings.smooth_frames), settings.baseline_frames)
    c = relative_to_baseline(running_median(controls, settings.smooth_frames), settings.baseline_frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames without a value (e.g. motion at frame 0)
        return _standardised(e, c, settings, floor)


def _standardised(e: np.ndarray, c: np.ndarray, settings: OnsetSettings, floor: float) -> np.ndarray:
    diff = np.nanmean(e, axis=0) - np.nanmean(c, axis=0)
    squares = np.nansum((c - np.nanmean(c, axis=0)) ** 2, axis=0)
    dof = len(c) - 1
    if settings.noise_window > 0:
        variance = _running_mean(squares, settings.noise_window) / max(dof, 1)
    else:
        valid = np.isfinite(diff)
        variance = np.full(diff.shape, np.nansum(squares[valid]) / max(dof * int(valid.sum()), 1))
    noise = np.sqrt(variance * (1.0 / len(e) + 1.0 / len(c)) + _temporal_variance(np.nanmean(e, axis=0)))
    floor = max(floor, 1e-9 + 1e-6 * float(np.nanmax(np.abs(np.concatenate([e.ravel(), c.ravel()])))))
    with np.errstate(invalid="ignore", divide="ignore"):
        return diff / np.maximum(noise, floor)


def _temporal_variance(series: np.ndarray) -> float:
    """Frame-to-frame noise variance of one series (robust: median absolute successive difference)."""
    steps = np.diff(series[np.isfinite(series)])
    if steps.size < 3:
        return 0.0
    return float((1.4826 * np.median(np.abs(steps - np.median(steps)))) ** 2 / 2.0)


def first_persistent(z: np.ndarray, threshold: float, persistence: int) -> int | None:
    """Index of the first run of ``persistence`` consecutive ``|z| > threshold``, or None."""
    above = np.nan_to_num(np.abs(z), nan=0.0) > threshold
    run = 0
    for i, flag in enumerate(above):
        run = run + 1 if flag else 0
        if run >= persistence:
            return i - persistence + 1
    return None


def onset_index(exposed: np.ndarray, controls: np.ndarray, settings: OnsetSettings, floor: float = 0.0) -> int | None:
    """Frame index of the onset of ``exposed`` (n_e, T) against ``controls`` (n_c, T), or None."""
    z = departure_z(exposed, controls, settings, floor)
    return first_persistent(z, settings.z_threshold, settings.persistence_frames())


@dataclass
class Onset:
    """Onset of one measure at one dose."""

    measure: str
    group: str
    time_min: float | None
    low_min: float | None
    high_min: float | None  # None with a point estimate: the interval reaches past the recording
    found_fraction: float
    direction: str
    note: str = ""

    def describe(self, unit: str = "min") -> str:
        if self.note:
            return self.note
        if self.time_min is None:
            tail = f"; {100 * self.found_fraction:.0f}% of resamples find one" if self.found_fraction > 0 else ""
            return f"no onset within the recording{tail}"
        if self.low_min is None:
            return f"{self.time_min:.0f} {unit} ({self.direction}; no interval: bootstrap off)"
        high = "after the end of the recording" if self.high_min is None else f"{self.high_min:.0f}"
        return (
            f"{self.time_min:.0f} {unit} ({self.direction}; 95% interval {self.low_min:.0f} to {high}; "
            f"found in {100 * self.found_fraction:.0f}% of resamples)"
        )


def bootstrap_onsets(
    series: dict[str, np.ndarray],
    groups: list[str],
    control_group: str,
    settings: OnsetSettings,
    floors: dict[str, float] | None = None,
) -> np.ndarray:
    """Onset indices (n_boot, measures, exposed groups) from resampling fields; -1 where none is found."""
    rng = np.random.default_rng(settings.seed)
    groups_arr = np.asarray(groups)
    exposed_groups = [g for g in dict.fromkeys(groups) if g != control_group]
    ctrl = np.flatnonzero(groups_arr == control_group)
    members = {g: np.flatnonzero(groups_arr == g) for g in exposed_groups}
    out = np.full((settings.n_boot, len(series), len(exposed_groups)), -1, dtype=int)
    for b in range(settings.n_boot):
        c_idx = rng.choice(ctrl, len(ctrl))
        if len(np.unique(c_idx)) < 2:
            c_idx = ctrl
        picks = {g: rng.choice(m, len(m)) for g, m in members.items()}
        for i, (measure, values) in enumerate(series.items()):
            floor = (floors or {}).get(measure, 0.0)
            for j, g in enumerate(exposed_groups):
                found = onset_index(values[picks[g]], values[c_idx], settings, floor)
                out[b, i, j] = -1 if found is None else found
    return out


def find_onsets(
    series: dict[str, np.ndarray],
    groups: list[str],
    control_group: str | None,
    times: np.ndarray,
    settings: OnsetSettings,
    floors: dict[str, float] | None = None,
) -> tuple[list[Onset], np.ndarray | None]:
    """Onset of every measure (``series``: name -> (fields, T)) for every exposed group, with intervals.

    ``floors``: per measure, the smallest noise level assumed (the smallest change worth reporting).
    """
    exposed_groups = [g for g in dict.fromkeys(groups) if g != control_group]
    if settings.persistence is None:
        settings = settings.for_interval(float(np.median(np.diff(times))) if len(times) > 1 else 1.0)
    n_controls = sum(1 for g in groups if g == control_group) if control_group is not None else 0
    if control_group is None or n_controls < 2:
        note = NO_CONTROLS if n_controls == 0 else TOO_FEW_CONTROLS
        return [Onset(m, g, None, None, None, 0.0, "", note) for m in series for g in exposed_groups], None
    groups_arr = np.asarray(groups)
    ctrl = groups_arr == control_group
    boot = bootstrap_onsets(series, groups, control_group, settings, floors) if settings.n_boot else None
    alpha = (1 - settings.confidence) / 2
    onsets = []
    for i, (measure, values) in enumerate(series.items()):
        for j, g in enumerate(exposed_groups):
            z = departure_z(values[groups_arr == g], values[ctrl], settings, (floors or {}).get(measure, 0.0))
            index = first_persistent(z, settings.z_threshold, settings.persistence_frames())
            direction = "" if index is None else ("above controls" if z[index] > 0 else "below controls")
            low = high = None
            found = 0.0
            if boot is not None:
                b = boot[:, i, j].astype(float)
                found = float(np.mean(b >= 0))
                b[b < 0] = np.inf
                lo_i, hi_i = np.quantile(b, [alpha, 1 - alpha], method="inverted_cdf")
                low = None if np.isinf(lo_i) else float(times[int(lo_i)])
                high = None if np.isinf(hi_i) else float(times[int(hi_i)])
            onsets.append(
                Onset(measure, g, None if index is None else float(times[index]), low, high, found, direction)
            )
    return onsets, boot


def largest_unaffected_dose(onset_times: dict[float, float | None]) -> float | None:
    """Largest exposed dose whose onset (None = none in the recording) is not earlier than the lowest dose's."""
    if not onset_times:
        return None
    doses = sorted(onset_times)
    never = float("inf")
    onset = {d: never if t is None else t for d, t in onset_times.items()}
    ok = [d for d in doses if onset[d] >= onset[doses[0]]]
    return max(ok)
