"""The model-free measures of each field (confluence, motion, frame change, round objects, cells),
one field per worker process: the part of ``phototox timecourse`` that needs no model.

``settings`` is a :class:`phototox.timecourse.pipeline.TimecourseSettings` (``workers``,
``flow_method``, ``mitosis``).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from phototox.errors import PhototoxError
from phototox.timecourse.activity import (
    FLATTEN_UM,
    confluence,
    flow_factor,
    foreground_mask,
    frame_change,
    motion_um_per_min,
)
from phototox.timecourse.cells import frame_cells
from phototox.timecourse.events import frame_objects
from phototox.timecourse.io import TimeField


@dataclass
class FieldActivity:
    """The model-free measures of one field: per-frame confluence, motion and frame change, round objects."""

    confluence: np.ndarray
    motion_um_per_min: np.ndarray
    frame_change: np.ndarray
    detections: list[np.ndarray]
    cell_count: np.ndarray | None = None
    median_cell_area_um2: np.ndarray | None = None
    cell_confluence: np.ndarray | None = None
    blobs: list[np.ndarray] = dataclasses.field(default_factory=list)  # bright blobs per frame (events)


def activity_of(f: TimeField, pixel_um: float, settings, progress=None) -> FieldActivity:
    """Confluence, motion and round objects of every frame of one field (no model; a worker's job)."""
    n = len(f.frames)
    activity = FieldActivity(np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), [])
    activity.cell_count, activity.median_cell_area_um2, activity.cell_confluence = (
        np.full(n, np.nan) for _ in range(3)
    )
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
        objects = frame_objects(frame, pixel_um, settings.mitosis)
        activity.detections.append(objects.round)
        activity.blobs.append(objects.blobs)
        cells = frame_cells(frame, pixel_um)
        activity.cell_count[t] = cells.count
        activity.median_cell_area_um2[t] = cells.median_area_um2
        activity.cell_confluence[t] = cells.confluence
        if progress is not None:
            progress(1)
    return activity


def activity_workers(settings, n_fields: int) -> int:
    """Processes that measure activity: ``settings.workers``, at most one per field (1: this process)."""
    if settings.workers < 1:
        raise PhototoxError(f"workers must be >= 1 (1: this process), got {settings.workers}")
    return max(1, min(settings.workers, n_fields))


def exit_quietly_on_interrupt() -> None:
    """Worker initialiser: Ctrl-C ends a worker without a traceback (the main process reports it)."""

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def measure_activities(fields: list[TimeField], pixel_um: float, settings, progress=None) -> list[FieldActivity]:
    """:func:`activity_of` every field, in field order, in :func:`activity_workers` processes.

    Each worker holds one field's frames at a time; ``progress`` advances by a field's frames when
    that field is done. Worker processes are spawned: a script calling this with ``workers > 1``
    needs the usual ``if __name__ == "__main__":`` guard.
    """
    workers = activity_workers(settings, len(fields))
    if workers == 1:
        return [activity_of(f, pixel_um, settings, progress) for f in fields]

    # spawn, not fork: the parent may hold a PyTorch model and its thread pools
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=exit_quietly_on_interrupt) as pool:
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
