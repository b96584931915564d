"""``phototox timecourse``: per-frame measures of every field, onsets against controls, dose verdicts, reports."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phototox.errors import ImageInputError, PhototoxError
from phototox.io.images import guard_outputs
from phototox.maps.settings import MapSettings
from phototox.timecourse.activity import (
    FLATTEN_UM,
    FLOW_METHODS,
    confluence,
    flow_factor,
    foreground_mask,
    frame_change,
    motion_um_per_min,
)
from phototox.timecourse.dose_verdicts import dose_verdicts
from phototox.timecourse.io import TimeField, parse_doses, pixel_size_from_metadata, read_doses, read_field, split_field
from phototox.timecourse.mitosis import (
    MitosisSettings,
    detect_round_objects,
    events_per_frame,
    hourly_rate,
    link_detections,
    rounding_events,
)
from phototox.timecourse.onset import OnsetSettings, find_onsets
from phototox.trust.pixelsize import PixelSize

MEASURES = {
    "mean_sick_probability": ("mean P(sick)", "DeadNet mean sick probability (dense map)"),
    "sick_area_fraction": ("sick area fraction", "fraction of the field with P(sick) >= threshold"),
    "motion_um_per_min": ("motion (um/min)", "mean optical-flow speed over cell-covered pixels"),
    "frame_change": ("frame change (spread^2)", "squared change between frames over cell-covered pixels"),
    "confluence": ("confluence (fraction)", "fraction of the field covered by cells"),
    "mitotic_events_per_hour": ("mitotic rounding (events/h)", "new rounding events per hour, 1 h window"),
}
CONTROL = "control"
OUTPUT_NAMES = (
    "timecourse.csv",
    "timecourse_by_dose.csv",
    "timecourse.json",
    "timecourse_measures.png",
    "timecourse_onsets.png",
    "timecourse_doses.png",
    "timecourse_report.md",
)
# Rates and areas change multiplicatively ("half as fast"): their onsets are found on a log scale.
LOG_SCALE = {"motion_um_per_min": 1e-3, "frame_change": 1e-3, "confluence": 1e-3}


# The smallest standard deviation assumed for the control fields, on the onset detector's scale:
# one percentage point of P(sick) or area, 5% in speed or confluence (log scale), and one rounding
# event per hour for the rounding rate (the counting noise of about one event in the one-hour window:
# a few control fields often count the same, and their zero spread is no measure of their noise).
NOISE_FLOORS = {
    "mean_sick_probability": 0.01,
    "sick_area_fraction": 0.01,
    "motion_um_per_min": 0.05,
    "frame_change": 0.05,
    "confluence": 0.05,
    "mitotic_events_per_hour": 1.0,
}


# P(sick) measures: their onsets are withheld when more than this share of frames is out of the model's domain
SICKNESS_MEASURES = ("mean_sick_probability", "sick_area_fraction")
MAX_OUT_OF_DOMAIN = 0.5


def onset_scale(measures: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The series the onset detector sees: log(value + floor) for the measures in ``LOG_SCALE``."""
    return {m: np.log(v + LOG_SCALE[m]) if m in LOG_SCALE else v for m, v in measures.items()}


@dataclass
class TimecourseSettings:
    """Everything ``run_timecourse`` needs besides its inputs."""

    interval_min: float | None = None
    pixel_um: float | None = None
    split: tuple[int, int] = (1, 1)
    doses: str | None = None
    model: str | None = "default"  # None: skip DeadNet's P(sick)
    device: str = "auto"
    stride: int = 32
    threshold: float = 0.5
    flow_method: str = "ilk"
    workers: int = 1  # processes measuring the activity of different fields at once
    margin: float = 0.2  # non-inferiority margin, relative to the control mean of a biological readout
    onset: OnsetSettings = dataclasses.field(default_factory=OnsetSettings)
    mitosis: MitosisSettings = dataclasses.field(default_factory=MitosisSettings)

    @property
    def map_settings(self) -> MapSettings:
        """The P(sick) map's settings (dense mode), validated when made."""
        return MapSettings(stride=self.stride, mode="dense", threshold=self.threshold)


@dataclass
class FieldSeries:
    """Per-frame measures of one field."""

    field: TimeField
    values: dict[str, np.ndarray]
    round_objects: np.ndarray
    events_started: np.ndarray
    n_events: int
    n_persistent: int
    detections: list[np.ndarray]
    events: list = dataclasses.field(default_factory=list)
    persistent: list = dataclasses.field(default_factory=list)
    out_of_domain: np.ndarray | None = None  # per frame, when P(sick) was computed with a domain check


def load_fields(inputs: list[str | Path], settings: TimecourseSettings) -> tuple[list[TimeField], float]:
    """Read, check and split every input; resolve the pixel size (flag or metadata)."""
    if not inputs:
        raise PhototoxError("timecourse needs at least one stack or folder of frames")
    for p in inputs:
        if not Path(p).exists():
            raise ImageInputError(f"{p}: no such file or folder")
    if settings.doses:
        parse_doses(settings.doses)  # the table's own problems, before any frame is read
    pixel = settings.pixel_um
    if pixel is None:
        found = {pixel_size_from_metadata(p) for p in inputs}
        pixel = found.pop() if len(found) == 1 else None
        if pixel is None:
            raise ImageInputError(f"{inputs[0]}: no (single) pixel size in the metadata; pass --pixel-size UM")
    if not np.isfinite(pixel) or pixel <= 0:
        raise PhototoxError(f"pixel size must be a positive number of micrometres, got {pixel}")
    rows, cols = settings.split
    if rows < 1 or cols < 1:
        raise PhototoxError(f"--split must be ROWSxCOLS with positive numbers, got {rows}x{cols}")
    fields = []
    for p in inputs:
        f = read_field(p, settings.interval_min, min_size=64)
        fields.extend(split_field(f, rows, cols) if (rows, cols) != (1, 1) else [f])
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise PhototoxError("two inputs have the same field name; rename one of them")
    lengths = {len(f.frames) for f in fields}
    intervals = {round(f.interval_min, 6) for f in fields}
    if len(lengths) != 1 or len(intervals) != 1:
        raise ImageInputError(
            f"fields differ in frame count ({sorted(lengths)}) or interval ({sorted(intervals)} min); "
            "onsets compare fields frame by frame"
        )
    if settings.doses:
        doses = read_doses(settings.doses, names, {f.name: len(f.frames) for f in fields})
        for f in fields:
            f.dose = doses[f.name]
    return fields, float(pixel)


@dataclass
class FieldActivity:
    """The model-free measures of one field: per-frame confluence, motion and frame change, round objects."""

    confluence: np.ndarray
    motion_um_per_min: np.ndarray
    frame_change: np.ndarray
    detections: list[np.ndarray]


def activity_of(f: TimeField, pixel_um: float, settings: TimecourseSettings, progress=None) -> FieldActivity:
    """Confluence, motion and round objects of every frame of one field (no model; a worker's job)."""
    n = len(f.frames)
    activity = FieldActivity(np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), [])
    factor = flow_factor(pixel_um)
    previous_mask = None
    for t, frame in enumerate(f.frames):
        mask = foreground_mask(frame, pixel_um)
        activity.confluence[t] = confluence(mask)
        if previous_mask is not None:
            activity.motion_um_per_min[t] = motion_um_per_min(
                f.frames[t - 1], frame, mask | previous_mask, pixel_um, f.interval_min, factor, settings.flow_method
            )
            activity.frame_change[t] = frame_change(f.frames[t - 1], frame, mask | previous_mask, FLATTEN_UM / pixel_um)
        previous_mask = mask
        activity.detections.append(detect_round_objects(frame, pixel_um, settings.mitosis))
        if progress is not None:
            progress(1)
    return activity


def activity_workers(settings: TimecourseSettings, n_fields: int) -> int:
    """Processes that measure activity: ``settings.workers``, at most one per field (1: this process)."""
    if settings.workers < 1:
        raise PhototoxError(f"workers must be >= 1 (1: this process), got {settings.workers}")
    return max(1, min(settings.workers, n_fields))


def _exit_quietly_on_interrupt() -> None:
    """Worker initialiser: Ctrl-C ends a worker without a traceback (the main process reports it)."""
    import os
    import signal

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def measure_activities(
    fields: list[TimeField], pixel_um: float, settings: TimecourseSettings, progress=None
) -> list[FieldActivity]:
    """:func:`activity_of` every field, in field order, in :func:`activity_workers` processes.

    Each worker holds one field's frames at a time; ``progress`` advances by a field's frames when
    that field is done. Worker processes are spawned: a script calling this with ``workers > 1``
    needs the usual ``if __name__ == "__main__":`` guard.
    """
    workers = activity_workers(settings, len(fields))
    if workers == 1:
        return [activity_of(f, pixel_um, settings, progress) for f in fields]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the parent may hold a PyTorch model and its thread pools
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_exit_quietly_on_interrupt) as pool:
        jobs = {pool.submit(activity_of, f, pixel_um, settings): len(f.frames) for f in fields}
        try:
            for job in as_completed(jobs):
                job.result()  # the first failure stops the run
                if progress is not None:
                    progress(jobs[job])
        except BrokenProcessPool:
            raise PhototoxError(
                "a timecourse worker process stopped (interrupted, or out of memory: "
                f"then rerun with fewer --workers than {workers})"
            ) from None
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        return [job.result() for job in jobs]


def measure_field(
    f: TimeField,
    activity: FieldActivity,
    pixel_um: float,
    settings: TimecourseSettings,
    assessor=None,
    progress=None,
    domain=None,
    sickness=None,
) -> FieldSeries:
    """All per-frame measures of one field: its ``activity`` (:func:`activity_of`), P(sick) with an
    ``assessor`` (``domain``: the model's domain statistics, to flag frames; ``progress`` advances
    once per frame) or as already measured (``sickness``, :class:`.overlap.Sickness`), and the
    rounding events."""
    n = len(f.frames)
    values = {k: np.full(n, np.nan) for k in MEASURES}
    values["confluence"] = activity.confluence
    values["motion_um_per_min"] = activity.motion_um_per_min
    values["frame_change"] = activity.frame_change
    detections = activity.detections
    out_of_domain = np.zeros(n, dtype=bool) if domain is not None else None
    if sickness is not None:  # measured in the worker processes (overlap.measure_overlapped)
        values["mean_sick_probability"] = sickness.mean_sick_probability
        values["sick_area_fraction"] = sickness.sick_area_fraction
        out_of_domain = sickness.out_of_domain
    elif assessor is not None:  # each frame is analysed at the model's pixel size
        results = assessor.analyse(
            f.frames, settings.map_settings, PixelSize(pixel_um, "timecourse"), f.name, progress=progress
        )
        for t, result in enumerate(results):
            if out_of_domain is not None:
                out_of_domain[t] = bool(result.trust.out_of_domain)
            values["mean_sick_probability"][t] = result.mean_sick_probability
            values["sick_area_fraction"][t] = result.sick_area_fraction
    tracks = link_detections(detections, pixel_um, settings.mitosis.link_um, settings.mitosis.max_gap_frames)
    events, persistent = rounding_events(
        tracks, f.interval_min, settings.mitosis.max_rounding_min, pixel_um, 2 * settings.mitosis.link_um
    )
    started = events_per_frame(events, n)
    values["mitotic_events_per_hour"] = hourly_rate(started, f.interval_min)
    if assessor is None:
        del values["mean_sick_probability"], values["sick_area_fraction"]
    return FieldSeries(
        f,
        values,
        np.array([len(d) for d in detections]),
        started,
        len(events),
        len(persistent),
        detections,
        events,
        persistent,
        out_of_domain,
    )


def dose_groups(fields: list[TimeField]) -> tuple[list[str], str | None, dict[str, float]]:
    """A group label per field (its cumulative dose), the control label, and each label's dose in J/cm2."""
    field_doses = [f.dose for f in fields if f.dose is not None]
    if len(field_doses) != len(fields):
        return [f.name for f in fields], None, {}
    labels: list[str] = []
    doses: dict[str, float] = {}
    for dose in field_doses:
        total = dose.total_j_cm2
        label = CONTROL if dose.is_control else f"{total:.4g} J/cm2"
        labels.append(label)
        doses[label] = total
    return labels, (CONTROL if CONTROL in labels else None), doses


def sickness_withheld(series: list[FieldSeries]) -> str:
    """Why P(sick) onsets are not given (most frames outside the model's domain), or ""."""
    flags = [s.out_of_domain for s in series if s.out_of_domain is not None]
    if not flags:
        return ""
    share = float(np.mean(np.concatenate(flags)))
    if share <= MAX_OUT_OF_DOMAIN:
        return ""
    return (
        f"no P(sick) onset is given: {100 * share:.0f}% of the frames lie outside the model's domain "
        "(its numbers are not comparable there); refit the domain on your control fields with "
        "'phototox calibrate' and pass that model with --model"
    )


def leave_one_out(series: list[FieldSeries], settings: OnsetSettings, exclude: tuple[str, ...] = ()) -> list[dict]:
    """Each field against all the others as controls: healthy fields must show no onset."""
    if len(series) < 3:
        return []
    names = [s.field.name for s in series]
    out: list[dict] = []
    for i, s in enumerate(series):
        groups = [CONTROL if j != i else names[i] for j in range(len(series))]
        measures = onset_scale({m: np.stack([x.values[m] for x in series]) for m in s.values if m not in exclude})
        onsets = find_onsets(measures, groups, CONTROL, s.field.times_min, settings, NOISE_FLOORS, names)
        out.extend(vars(o) for o in onsets)
    return out


def run_timecourse(
    inputs: list[str | Path], out_dir: str | Path, settings: TimecourseSettings, progress: bool = False
) -> dict:
    """Measure every field, find onsets against the controls, write CSV, JSON, PNG and Markdown."""
    from tqdm import tqdm

    from phototox.timecourse.report import write_reports

    try:
        import skimage  # noqa: F401
    except ImportError:
        raise PhototoxError(
            "phototox timecourse needs scikit-image, a core dependency: reinstall phototox (pip install -e .)"
        ) from None
    if settings.flow_method not in FLOW_METHODS:
        raise PhototoxError(f"unknown flow method {settings.flow_method!r}; use one of {FLOW_METHODS}")
    activity_workers(settings, 1)  # refuse a bad worker count before reading anything
    out = Path(out_dir)
    if any(Path(p).resolve() == out.resolve() for p in inputs):
        raise PhototoxError(f"{out}: the output folder is an input folder; choose another --out")
    guard_outputs(
        [out / name for name in OUTPUT_NAMES], [*map(Path, inputs), *map(Path, filter(None, [settings.doses]))]
    )
    fields, pixel_um = load_fields(inputs, settings)
    assessor, model_name = None, None
    if settings.model is not None:
        from phototox.maps.inference import Predictor
        from phototox.trust.assess import Assessor

        # frames outside the model's domain are counted, not announced one by one
        settings.map_settings  # noqa: B018 -- bad map settings are refused before the model loads
        assessor = Assessor(Predictor.from_spec(settings.model, settings.device), warn=lambda _line: None)
        model_name = assessor.predictor.model.label
        small = [f.name for f in fields if min(f.frames.shape[1:]) < assessor.predictor.window]
        if small:
            raise ImageInputError(
                f"field {small[0]}: smaller than the model's {assessor.predictor.window} px window; "
                "use a smaller --split or --no-sickness"
            )
    domain = assessor.domain if assessor is not None else None
    start = time.perf_counter()
    total = sum(len(f.frames) for f in fields)
    passes = 1 if assessor is None else 2  # activity, then P(sick) frame by frame
    with tqdm(total=total * passes, desc="timecourse", unit="frame", disable=not progress) as bar:
        if assessor is not None and activity_workers(settings, len(fields)) > 1:  # P(sick) and activity overlapped
            from phototox.timecourse.overlap import measure_overlapped

            workers = activity_workers(settings, total)  # P(sick) jobs split fields: a worker per core, not per field
            activities, sickness = measure_overlapped(fields, pixel_um, settings, workers, bar.update)
            series = [
                measure_field(f, activity, pixel_um, settings, assessor, None, domain, sick)
                for f, activity, sick in zip(fields, activities, sickness)
            ]
        else:
            activities = measure_activities(fields, pixel_um, settings, bar.update)
            series = [
                measure_field(f, activity, pixel_um, settings, assessor, bar.update, domain)
                for f, activity in zip(fields, activities)
            ]
    seconds = time.perf_counter() - start
    groups, control, group_doses = dose_groups(fields)
    measures = {m: np.stack([s.values[m] for s in series]) for m in series[0].values}
    times = fields[0].times_min
    names = [f.name for f in fields]
    onset_settings = settings.onset
    withheld = sickness_withheld(series)
    tested = {m: v for m, v in measures.items() if not (withheld and m in SICKNESS_MEASURES)}
    verdicts: dict = {}
    if control is not None:
        onsets = find_onsets(onset_scale(tested), groups, control, times, onset_settings, NOISE_FLOORS, names)
        consistency = []
        verdicts = dose_verdicts(
            measures,
            groups,
            names,
            group_doses,
            onset_settings.baseline_frames,
            settings.margin,
            onset_settings.seed,
            onset_settings.n_boot,
        )
    else:
        onsets = find_onsets(tested, groups, None, times, onset_settings, names=names) if settings.doses else []
        consistency = leave_one_out(series, onset_settings, exclude=SICKNESS_MEASURES if withheld else ())
    context = {
        "pixel_um": pixel_um,
        "interval_min": fields[0].interval_min,
        "model": model_name,
        "flow_factor": flow_factor(pixel_um),
        "seconds": seconds,
        "frames": total,
        "seconds_per_frame": seconds / total,
        "workers": activity_workers(settings, len(fields)),
        "groups": groups,
        "control": control,
        "group_doses": group_doses,
        "dose_tests": verdicts,
        "consistency": consistency,
        "persistence_frames": onset_settings.persistence_frames(),
        "sickness_withheld": withheld,
    }
    return write_reports(out, series, measures, onsets, context, settings)
