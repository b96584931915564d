"""The Qt-free time course of a napari time-lapse layer: ``phototox timecourse``'s measures, onsets and plot.

Every number comes from :mod:`phototox.timecourse.pipeline` (``activity_of``, ``measure_field``,
the onset rule ``find_onsets`` on ``onset_scale``) and the plot from
:func:`phototox.timecourse.plots.plot_measures`: one implementation, this module only adapts layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phototox.errors import ImageInputError, PhototoxError
from phototox.io.images import as_grey_frames
from phototox.maps.inference import Predictor
from phototox.timecourse.field_activity import activity_of
from phototox.timecourse.io import INTERVAL_RANGE_MIN, TimeField
from phototox.timecourse.onset import Onset, OnsetSettings, find_onsets
from phototox.timecourse.pipeline import (
    CONTROL,
    MEASURES,
    NOISE_FLOORS,
    SICKNESS_MEASURES,
    FieldSeries,
    TimecourseSettings,
    measure_field,
    onset_scale,
    sickness_withheld,
)
from phototox.trust.assess import Assessor

from .run import COLOUR_HINT, PIXEL_SIZE_HINT, _pixel_size, layer_pixel_size

TIME_UNITS_MIN = {"second": 1 / 60, "s": 1 / 60, "minute": 1.0, "min": 1.0, "hour": 60.0, "h": 60.0}
CLI_CALIBRATE = "'phototox calibrate' and pass that model with --model"
WIDGET_CALIBRATE = "'Calibrate on controls' (the widget then uses that model)"
CONTROLS_HINT = "mark 2 or more time-lapse control layers of the same length with 'Selected layers are controls'"


def layer_interval(scale: Sequence[float], units: Sequence[object] | None = None) -> tuple[float | None, str]:
    """Minutes between frames that a (T, H, W) layer's T scale states, and its source (``None``: none).

    With a time unit on the T axis (napari >= 0.6 ``layer.units``) it is converted to minutes;
    without one, a T scale other than 1 is read as minutes; a scale of 1 states nothing.
    """
    t = float(scale[0])
    unit = str(units[0]) if units else "pixel"
    if unit in TIME_UNITS_MIN:
        return t * TIME_UNITS_MIN[unit], f"layer T scale ({unit})"
    if np.isclose(t, 1.0):
        return None, ""
    return t, "layer T scale (read as minutes)"


@dataclass
class LayerTimecourse:
    """The time course of one layer against its control layers."""

    name: str
    series: list[FieldSeries]
    """the layer first, then each control layer (``phototox timecourse``'s per-field series)"""
    onsets: list[Onset]
    interval_min: float
    interval_source: str
    pixel_um: float
    pixel_source: str
    model: str
    stride: int
    withheld: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def values(self) -> dict[str, np.ndarray]:
        """Per-frame measures of the layer (measure -> (T,)), as in ``timecourse.csv``."""
        return self.series[0].values

    @property
    def times_min(self) -> np.ndarray:
        return self.series[0].field.times_min

    @property
    def groups(self) -> list[str]:
        return [self.name] + [CONTROL] * (len(self.series) - 1)

    def lines(self) -> list[str]:
        """What the widget shows: inputs and their sources, each measure's range and onset (or why none)."""
        n = len(self.times_min)
        controls = len(self.series) - 1
        out = [
            f"time course of {self.name}: {n} frames every {self.interval_min:g} min ({self.interval_source}); "
            f"pixel size {self.pixel_um:g} µm/px ({self.pixel_source}); P(sick): model {self.model}, dense, "
            f"stride {self.stride}; {controls} control layer{'s' if controls != 1 else ''}"
        ]
        flags = self.series[0].out_of_domain
        if flags is not None and flags.any():
            out.append(f"{int(flags.sum())} of {n} frames out of the model's domain (P(sick) not trusted there)")
        persistence = OnsetSettings().persistence
        for measure, values in self.values.items():
            label = MEASURES[measure][0]
            finite = values[np.isfinite(values)]
            span = f"{finite[0]:.3g} -> {finite[-1]:.3g}" if finite.size else "no value"
            onset = next((o for o in self.onsets if o.measure == measure), None)
            if self.withheld and measure in SICKNESS_MEASURES:
                verdict = "no onset: most frames out of the model's domain"
            elif onset is None or onset.note:
                verdict = f"no onset: {onset.note if onset else 'not tested'}"
            elif onset.time_min is None:
                verdict = (
                    "no onset: within the controls' 95% prediction interval (never "
                    f"{persistence} frames in a row outside it)"
                )
            else:
                verdict = f"ONSET at {onset.time_min:g} min ({onset.direction})"
            out.append(f"{label}: {span}; {verdict}")
        if controls < 2:
            out.append(CONTROLS_HINT)
        if self.withheld:  # the library says it for the command line
            out.append(self.withheld.replace(CLI_CALIBRATE, WIDGET_CALIBRATE))
        return [*out, *self.warnings]


def _frames(data: np.ndarray, name: str, window: int) -> np.ndarray:
    frames = as_grey_frames(np.asarray(data), name, "refuse", max(64, window), COLOUR_HINT)
    if len(frames) < 2:
        raise ImageInputError(f"{name}: a time course needs a (T, H, W) layer of at least 2 frames")
    return frames


def timecourse_of_layer(
    data: np.ndarray,
    predictor: Predictor,
    name: str = "layer",
    *,
    scale: Sequence[float] = (1.0, 1.0, 1.0),
    units: Sequence[object] | None = None,
    pixel_size_um: float | None = None,
    interval_min: float | None = None,
    controls: Sequence[tuple[str, np.ndarray]] = (),
    stride: int = 32,
    progress: Callable[[int], None] | None = None,
) -> LayerTimecourse:
    """``phototox timecourse``'s per-frame measures of a (T, H, W) layer and its onsets against ``controls``.

    ``interval_min`` (the widget's) wins over the layer's T scale; without either the run is refused.
    The pixel size is the map's: the widget's value, else the layer's scale, else the model's
    (assumed, said). ``controls``: (name, data) of time-lapse layers of the same length, one field
    each. ``progress`` gets 1 per frame and pass (activity, then P(sick)).
    """
    warnings: list[str] = []
    assessor = Assessor(predictor, warn=lambda _line: None, pixel_size_hint=PIXEL_SIZE_HINT)
    frames = _frames(data, name, predictor.window)
    um, source = layer_pixel_size(scale, units)
    size = _pixel_size(assessor, pixel_size_um, um, source)
    if size.um is None:
        raise PhototoxError(f"{name}: no pixel size (the model records none); {PIXEL_SIZE_HINT}")
    if size.source.startswith("assumed"):
        warnings.append(f"pixel size assumed to be the model's {size.um:g} µm/px; {PIXEL_SIZE_HINT}")
    interval_source = "widget"
    if interval_min is None:
        interval_min, interval_source = layer_interval(scale, units)
    if interval_min is None:
        raise PhototoxError(f"{name}: no frame interval; type it in 'Frame interval (min)' or set the layer's T scale")
    low, high = INTERVAL_RANGE_MIN
    if not low <= interval_min <= high:
        raise PhototoxError(
            f"frame interval must be {low:g}-{high:g} minutes, got {interval_min:g} ({interval_source})"
        )
    fields = [TimeField(name, frames, float(interval_min), "napari layer")]
    for c_name, c_data in controls:
        c_frames = _frames(c_data, f"control layer {c_name}", predictor.window)
        if len(c_frames) != len(frames):
            raise ImageInputError(
                f"control layer {c_name}: {len(c_frames)} frames, {name} has {len(frames)}; "
                "onsets compare fields frame by frame"
            )
        fields.append(TimeField(c_name, c_frames, float(interval_min), "napari layer"))
    settings = TimecourseSettings(interval_min=float(interval_min), pixel_um=size.um, stride=stride)
    settings.map_settings.validate()
    series = [
        measure_field(
            f, activity_of(f, size.um, settings, progress), size.um, settings, assessor, progress, assessor.domain
        )
        for f in fields
    ]
    groups = [name] + [CONTROL] * len(controls)
    withheld = sickness_withheld(series)
    measures = {m: np.stack([s.values[m] for s in series]) for m in series[0].values}
    tested = {m: v for m, v in measures.items() if not (withheld and m in SICKNESS_MEASURES)}
    names = [f.name for f in fields]
    onsets = find_onsets(onset_scale(tested), groups, CONTROL, fields[0].times_min, settings.onset, NOISE_FLOORS, names)
    return LayerTimecourse(
        name, series, onsets, float(interval_min), interval_source, size.um, size.source,
        predictor.model.label, stride, withheld, warnings,
    )  # fmt: skip


def plot_timecourse(run: LayerTimecourse, path: str | Path) -> Path:
    """``phototox timecourse``'s measures figure (``timecourse_measures.png``) of this run, written to ``path``."""
    from phototox.timecourse.plots import plot_measures
    from phototox.timecourse.report import group_summary

    measures = {m: np.stack([s.values[m] for s in run.series]) for m in run.values}
    controls = len(run.series) > 1
    context = {
        "groups": run.groups,
        "control": CONTROL if controls else None,
        "pixel_um": run.pixel_um,
        "interval_min": run.interval_min,
        "sickness_withheld": run.withheld,
        "legend_title": "napari layers",
    }
    order = [CONTROL, run.name] if controls else [run.name]
    shown = [o for o in run.onsets if not o.note]
    plot_measures(group_summary(measures, run.groups), order, run.times_min, shown, context, Path(path))
    return Path(path)
