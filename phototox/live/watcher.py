"""Watch a Micro-Manager acquisition (pymmcore-plus MDA) as it runs: per position and frame, the
time-course readouts, the dose the core delivered, and warnings when a position departs from the
controls (:mod:`phototox.live.onsets`). Warnings only: phototox never changes the acquisition.

The camera thread only records the frame's light (:mod:`phototox.live.dose`) and hands the frame to
a bounded queue; one analysis thread measures it. When the analysis cannot keep up, the queue is full
and the frame's **analysis** is skipped (recorded, and missing for the onset rule); the acquisition
is never slowed and no acquired frame is dropped (phototox stores none: saving frames stays with the
acquisition's own writer).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from psygnal import Signal

from phototox.errors import PhototoxError
from phototox.live.dose import Calibration, DoseLedger
from phototox.live.onsets import LiveOnsets, LiveWarning
from phototox.live.outputs import write_final, write_position
from phototox.maps.settings import MapSettings
from phototox.timecourse.activity import confluence, flow_factor, foreground_mask, motion_um_per_min
from phototox.timecourse.onset import OnsetSettings
from phototox.timecourse.pipeline import NOISE_FLOORS, onset_scale
from phototox.trust.pixelsize import PixelSize

ACTIVITY = ("confluence", "motion_um_per_min")
SICKNESS = ("mean_sick_probability", "sick_area_fraction")


@dataclass
class LiveSettings:
    """What :func:`attach` needs besides the core."""

    controls: tuple[str, ...] = ()  # names of the control positions (no excitation light)
    light: tuple[tuple[str, str], ...] = ()  # (device, property) whose value is the excitation setting
    analysis_channel: str | None = None  # channel config of the analysed (phase) frames; None: the first
    calibration: str | None = None  # CSV device,property,value,mW_per_cm2 (else doses in own units)
    model: str | None = None  # None: no P(sick) (the activity readouts only); "default": DeadNet
    device: str = "cpu"
    stride: int = 32
    threshold: float = 0.5
    interval_min: float | None = None  # the frame interval (None: the sequence's time plan)
    pixel_um: float | None = None  # None: the core's pixel-size configuration
    out_dir: str | None = None  # incremental outputs and the final report (None: none)
    queue_size: int = 8  # analysis frames waiting at most; beyond, analysis frames are skipped
    flow_method: str = "ilk"
    onset: OnsetSettings = dataclasses.field(default_factory=OnsetSettings)


def position_names(sequence) -> list[str]:
    """A name per stage position of a ``useq.MDASequence`` (its own, else ``p<i>``)."""
    names = [p.name or f"p{i}" for i, p in enumerate(sequence.stage_positions)] or ["p0"]
    if len(set(names)) != len(names):
        raise PhototoxError("two stage positions have the same name; name each position once")
    return names


def check_sequence(core, sequence, settings: LiveSettings) -> None:
    """Refuse a sequence whose controls are unknown, too few, or would receive excitation light."""
    names = position_names(sequence)
    unknown = [c for c in settings.controls if c not in names]
    if unknown:
        raise PhototoxError(f"control position {unknown[0]!r} is not in the sequence (positions: {', '.join(names)})")
    if len(settings.controls) < 3:
        raise PhototoxError(
            "at least three control positions are needed (--control NAME, once per control): each control is "
            "checked against the others, and their spread is measured"
        )
    if not settings.light:
        raise PhototoxError("name the excitation light's setting: --light DEVICE.PROPERTY")
    group = core.getChannelGroup()
    for event in sequence:
        p = event.index.get("p", 0)
        if names[p] not in settings.controls or event.channel is None:
            continue
        config = core.getConfigData(event.channel.group or group, event.channel.config)
        for item in config:
            device, prop, value = item
            if (device, prop) in settings.light and _number(value) != 0:
                raise PhototoxError(
                    f"control position {names[p]} would receive excitation: channel {event.channel.config} sets "
                    f"{device}.{prop} = {value}; give controls a sub-sequence without excitation channels"
                )


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass
class _Position:
    rows: list[dict] = dataclasses.field(default_factory=list)
    previous: tuple[int, np.ndarray, np.ndarray] | None = None  # frame, image, mask
    maps: list[np.ndarray] = dataclasses.field(default_factory=list)
    done: set[int] = dataclasses.field(default_factory=set)  # analysed or skipped frames


class Watcher:
    """Attached to one core's MDA; see :func:`attach`."""

    warned = Signal(object)  # a LiveWarning, from the analysis thread
    """Emitted once per position and readout when it departs from the controls."""

    def __init__(self, core, settings: LiveSettings, callback: Callable[[LiveWarning], None] | None = None):
        self.core, self.settings = core, settings
        self.calibration = Calibration.read(settings.calibration) if settings.calibration else None
        self.ledger = DoseLedger(tuple(settings.light), self.calibration)
        self.readouts = list(ACTIVITY) + (list(SICKNESS) if settings.model else [])
        self.assessor = None
        if settings.model:
            from phototox.maps.inference import Predictor
            from phototox.trust.assess import Assessor

            self.assessor = Assessor(Predictor.from_spec(settings.model, settings.device), warn=lambda _line: None)
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, settings.queue_size))
        self.lock = threading.Lock()
        self.skipped: list[tuple[str, int]] = []
        self.latency_s: list[float] = []
        self.analysis_s: list[float] = []
        self.errors: list[str] = []
        self.onsets: LiveOnsets = None  # type: ignore[assignment]  # made when the sequence starts
        self.truth: Callable[[str], int | None] | None = None  # the simulator's known onsets, for reports
        self._thread: threading.Thread | None = None
        self.failed = ""
        if callback is not None:
            self.warned.connect(callback)
        events = core.mda.events
        events.sequenceStarted.connect(self._started)
        events.frameReady.connect(self._frame)
        events.sequenceFinished.connect(self._finished)

    # --- acquisition thread -------------------------------------------------------------------------
    def _started(self, sequence, *_meta) -> None:
        try:
            self._start(sequence)
        except PhototoxError as error:  # raised on the acquisition thread: stop the MDA and say why
            self.errors.append(str(error))
            self.failed = str(error)
            self.core.mda.cancel()

    def _start(self, sequence) -> None:
        s = self.settings
        check_sequence(self.core, sequence, s)
        self.names = position_names(sequence)
        self.n_frames = int(sequence.sizes.get("t", 0) or 1)
        plan = sequence.time_plan
        planned = plan.interval.total_seconds() / 60 if plan is not None and hasattr(plan, "interval") else 0.0
        self.interval_min = s.interval_min or planned
        if not self.interval_min or self.interval_min <= 0:
            raise PhototoxError("the time plan has no interval: give the frame interval (--interval MIN)")
        self.channel = s.analysis_channel or (sequence.channels[0].config if sequence.channels else "")
        self.pixel_um = s.pixel_um or float(self.core.getPixelSizeUm())
        if not self.pixel_um or self.pixel_um <= 0:
            raise PhototoxError("the core has no pixel size: define a pixel-size configuration or pass --pixel-size UM")
        self.factor = flow_factor(self.pixel_um)
        if self.assessor is not None:
            window = self.assessor.predictor.window
            height, width = int(self.core.getImageHeight()), int(self.core.getImageWidth())
            if min(height, width) < window:
                raise PhototoxError(
                    f"the camera's {width}x{height} px frames are smaller than the model's {window} px window; "
                    "use a larger ROI, or watch without --model"
                )
        self.positions = {n: _Position() for n in self.names}
        self.onsets = LiveOnsets(
            self.names,
            list(s.controls),
            self.readouts,
            self.n_frames,
            s.onset,
            NOISE_FLOORS,
            self.interval_min,
        )
        self._thread = threading.Thread(target=self._work, name="phototox-live", daemon=True)
        self._thread.start()
        if s.out_dir:
            Path(s.out_dir).mkdir(parents=True, exist_ok=True)

    def _frame(self, image, event, meta=None) -> None:
        if self._thread is None:
            return
        arrived = time.perf_counter()
        meta = meta or {}
        p, t = int(event.index.get("p", 0)), int(event.index.get("t", 0))
        name = self.names[p]
        channel = event.channel.config if event.channel is not None else ""
        exposure = float(meta.get("exposure_ms") or event.exposure or self.core.getExposure())
        given = {(v["dev"], v["prop"]): v["val"] for v in meta.get("property_values", ()) if isinstance(v, dict)}
        settings = {}
        for device, prop in self.settings.light:
            value = given.get((device, prop))
            settings[f"{device}.{prop}"] = _number(self.core.getProperty(device, prop) if value is None else value)
        light_on = bool(self.core.getAutoShutter() or self.core.getShutterOpen())
        with self.lock:
            dose = self.ledger.record(name, t, channel, exposure, settings, light_on)
            total = self.ledger.total(name)
        if name in self.settings.controls and dose.dose_units > 0:
            self.errors.append(f"control position {name} received excitation at frame {t} ({channel})")
        if channel != self.channel:
            return
        try:
            self.queue.put_nowait((p, t, np.array(image, copy=True), arrived, total))
        except queue.Full:
            with self.lock:
                self.skipped.append((name, t))
                self.positions[name].done.add(t)

    def _finished(self, *_args) -> None:
        if self._thread is None:
            return
        self.queue.put(None)  # after every queued frame
        self._thread.join()
        self._thread = None

    # --- analysis thread ----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            p, t, image, arrived, total = item
            name = self.names[p]
            try:
                self._analyse(name, p, t, image, total)
            except Exception as error:
                self.errors.append(f"{name} frame {t}: analysis failed: {error}")
            with self.lock:
                self.positions[name].done.add(t)
            self.latency_s.append(time.perf_counter() - arrived)
            for warning in self.onsets.advance(self._complete()):
                self.warned.emit(warning)
            self._write_outputs(name)
        for warning in self.onsets.advance(self.n_frames, final=True):
            self.warned.emit(warning)
        self._write_report()

    def _complete(self) -> int:
        """Frames that have arrived (analysed or skipped) at every position."""
        with self.lock:
            counts = []
            for pos in self.positions.values():
                k = 0
                while k in pos.done:
                    k += 1
                counts.append(k)
        return min(counts)

    def measure(self, name: str, t: int, image: np.ndarray) -> dict[str, float]:
        """The readouts of one frame (raw scale); keeps the frame for the next frame's motion."""
        start = time.perf_counter()
        frame = image.astype(np.float32)
        pos = self.positions[name]
        mask = foreground_mask(frame, self.pixel_um)
        # no cell found (empty field, focus lost): missing, as motion is, not log(0) on the onset scale
        values = {"confluence": confluence(mask) if mask.any() else float("nan"), "motion_um_per_min": float("nan")}
        if pos.previous is not None:
            t0, previous, previous_mask = pos.previous
            values["motion_um_per_min"] = motion_um_per_min(
                previous,
                frame,
                mask | previous_mask,
                self.pixel_um,
                (t - t0) * self.interval_min,
                self.factor,
                self.settings.flow_method,
            )
        pos.previous = (t, frame, mask)
        if self.assessor is not None:
            if min(frame.shape) < self.assessor.predictor.window:
                raise PhototoxError(f"frames are smaller than the model's {self.assessor.predictor.window} px window")
            map_settings = MapSettings(stride=self.settings.stride, mode="dense", threshold=self.settings.threshold)
            result = self.assessor.analyse(frame, map_settings, PixelSize(self.pixel_um, "core"), name)[0]
            values["mean_sick_probability"] = result.mean_sick_probability
            values["sick_area_fraction"] = result.sick_area_fraction
            pos.maps.append(np.asarray(result.sick_map, dtype=np.float32))
        else:
            pos.maps.append(block_reduce_mask(mask))
        self.analysis_s.append(time.perf_counter() - start)
        return values

    def _analyse(self, name: str, p: int, t: int, image: np.ndarray, total: float) -> None:
        values = self.measure(name, t, image)
        scaled = onset_scale({k: np.array([v]) for k, v in values.items()})
        self.onsets.set(p, t, {k: float(v[0]) for k, v in scaled.items()})
        row = {"frame": t, "time_min": t * self.interval_min, **values, "dose_cumulative": total}
        self.positions[name].rows.append(row)

    def _write_outputs(self, name: str) -> None:
        if self.settings.out_dir:
            write_position(self, name)

    def _write_report(self) -> None:
        if self.settings.out_dir:
            write_final(self)


def block_reduce_mask(mask: np.ndarray, factor: int = 8) -> np.ndarray:
    """The cell mask as cover fractions in ``factor`` x ``factor`` blocks (a small map per frame)."""
    h, w = (mask.shape[0] // factor) * factor, (mask.shape[1] // factor) * factor
    return mask[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3)).astype(np.float32)


def attach(
    core,
    settings: LiveSettings | None = None,
    controls: list[str] | tuple[str, ...] | None = None,
    callback: Callable[[LiveWarning], None] | None = None,
) -> Watcher:
    """Watch every MDA this ``CMMCorePlus``/``UniMMCore`` runs from now on; return the watcher.

    ``controls``: the control positions' names (overrides ``settings.controls``). ``callback`` (or
    ``watcher.warned.connect``) receives each :class:`~phototox.live.onsets.LiveWarning`, on the
    analysis thread. The sequence is checked when it starts (controls known and without excitation).
    """
    settings = dataclasses.replace(settings or LiveSettings())
    if controls is not None:
        settings.controls = tuple(controls)
    return Watcher(core, settings, callback)


__all__ = ["LiveSettings", "Watcher", "attach", "check_sequence"]
