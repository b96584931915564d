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
from phototox.timecourse.activity import FLOW_METHODS, flow_factor
from phototox.timecourse.cells import read_cell_counts
from phototox.timecourse.dose_verdicts import dose_verdicts
from phototox.timecourse.events import EventSettings, FrameObjects, detect_events, event_counts, frame_objects
from phototox.timecourse.field_activity import FieldActivity, activity_workers, measure_activities
from phototox.timecourse.io import TimeField, parse_doses, pixel_size_from_metadata, read_doses, read_field, split_field
from phototox.timecourse.measures import MEASURES, SICKNESS_MEASURES
from phototox.timecourse.mitosis import MitosisSettings, hourly_rate
from phototox.timecourse.onset import OnsetSettings, find_onsets
from phototox.trust.pixelsize import PixelSize

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
LOG_SCALE = {
    "motion_um_per_min": 1e-3,
    "frame_change": 1e-3,
    "confluence": 1e-3,
    "cell_count": 1.0,
    "median_cell_area_um2": 1.0,
    "cell_confluence": 1e-3,
}


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
    "division_events_per_hour": 1.0,
    "cell_count": 0.05,
    "median_cell_area_um2": 0.05,
    "cell_confluence": 0.05,
}


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
    cell_counts: str | None = None  # CSV frame,count replacing the cell-count estimate (one field)
    events: EventSettings = dataclasses.field(default_factory=EventSettings)

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
    divisions: np.ndarray | None = None  # per frame: division events whose rounding starts there
    failed_divisions: np.ndarray | None = None  # per frame: failed division / death events starting there
    outcome_events: list = dataclasses.field(default_factory=list)  # events.Event of every outcome


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
    for m in ("cell_count", "median_cell_area_um2", "cell_confluence"):
        values[m] = getattr(activity, m)
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
    if len(activity.blobs) == n:
        objects = [FrameObjects(d, b) for d, b in zip(detections, activity.blobs)]
    else:
        objects = [frame_objects(frame, pixel_um, settings.mitosis) for frame in f.frames]
    found = detect_events(objects, f.interval_min, pixel_um, settings.mitosis, settings.events)
    divisions = event_counts(found, n, "division")
    failed = event_counts(found, n, "failed_division")
    started = divisions + failed
    values["mitotic_events_per_hour"] = hourly_rate(started, f.interval_min)
    values["division_events_per_hour"] = hourly_rate(divisions, f.interval_min)
    events = [e.track for e in found if e.outcome in ("division", "failed_division")]
    persistent = [e.track for e in found if e.outcome == "persistent_round"]
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
        divisions,
        failed,
        found,
    )


CELL_COUNT_SOURCE = (
    "nuclei-free estimate (phototox.timecourse.cells); on 5 Usiigaci T98G frames within 6% (the 3 held-out "
    "frames: 4%) of the objects of a Mask R-CNN model (agreement, not accuracy; benchmarks/bench_cells.py)"
)


def given_cell_counts(fields: list[TimeField], path: str | None) -> np.ndarray | None:
    """``--cell-counts``: the user's cells per frame of the one field (None without the option)."""
    if path is None:
        return None
    if len(fields) != 1:
        raise PhototoxError(f"{path}: --cell-counts gives one field's counts; this run has {len(fields)} fields")
    return read_cell_counts(path, len(fields[0].frames))


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
        [out / name for name in OUTPUT_NAMES],
        [*map(Path, inputs), *map(Path, filter(None, [settings.doses, settings.cell_counts]))],
    )
    fields, pixel_um = load_fields(inputs, settings)
    given_counts = given_cell_counts(fields, settings.cell_counts)
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
    if given_counts is not None:
        series[0].values["cell_count"] = given_counts
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
        "cell_counts": f"from {settings.cell_counts}" if given_counts is not None else CELL_COUNT_SOURCE,
    }
    return write_reports(out, series, measures, onsets, context, settings)
