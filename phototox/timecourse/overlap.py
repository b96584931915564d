"""Activity and P(sick) of a time-lapse in one pool of worker processes, overlapped (issue 30).

Without this, the activity workers ran first and P(sick) afterwards, frame by frame, in the main
process. Here both are jobs of one pool: each field's activity (:func:`~.field_activity.activity_of`)
and its P(sick) in batches of :data:`SICK_BATCH` frames, so no core waits for the other kind of
work. Each worker loads the model once (the first P(sick) job it gets) and runs one torch thread.
The numbers equal the sequential run's: the same functions on the same frames.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from phototox.errors import PhototoxError
from phototox.timecourse.field_activity import activity_of, exit_quietly_on_interrupt
from phototox.timecourse.io import TimeField
from phototox.trust.pixelsize import PixelSize

SICK_BATCH = 8
"""Frames per P(sick) job: enough to amortise a job's overhead, few enough to balance the workers."""


@dataclass
class Sickness:
    """Per-frame P(sick) measures of one field (arrays of its frame count)."""

    mean_sick_probability: np.ndarray
    sick_area_fraction: np.ndarray
    out_of_domain: np.ndarray | None


_ASSESSOR: dict = {}
"""This worker's assessor, keyed by (model, device): loaded once, by the first P(sick) job."""


def _assessor(model: str, device: str):
    key = (model, device)
    if key not in _ASSESSOR:
        import torch

        from phototox.maps.inference import Predictor
        from phototox.trust.assess import Assessor

        torch.set_num_threads(1)  # one torch (and ONNX Runtime) thread per worker process
        _ASSESSOR.clear()
        _ASSESSOR[key] = Assessor(Predictor.from_spec(model, device), warn=lambda _line: None)
    return _ASSESSOR[key]


def sickness_of_frames(
    frames: np.ndarray, name: str, pixel_um: float, model: str, device: str, settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mean P(sick), sick area fraction and out-of-domain flag of each frame (a worker's job)."""
    assessor = _assessor(model, device)
    results = assessor.analyse(frames, settings.map_settings, PixelSize(pixel_um, "timecourse"), name)
    domain = assessor.domain is not None
    return (
        np.array([r.mean_sick_probability for r in results], float),
        np.array([r.sick_area_fraction for r in results], float),
        np.array([bool(r.trust.out_of_domain) for r in results]) if domain else None,
    )


def measure_overlapped(
    fields: list[TimeField], pixel_um: float, settings, workers: int, progress: Callable[[int], None] | None = None
) -> tuple[list, list[Sickness]]:
    """Every field's activity and P(sick), in field order, from ``workers`` spawned processes.

    ``progress`` advances by a job's frames when it finishes (activity and P(sick): two per frame).
    """

    context = multiprocessing.get_context("spawn")  # the parent may hold a model and its thread pools
    activity_jobs: dict = {}
    sick_jobs: dict = {}
    with ProcessPoolExecutor(workers, mp_context=context, initializer=exit_quietly_on_interrupt) as pool:
        for i, f in enumerate(fields):  # P(sick) first: the longer jobs start early, activity fills the gaps
            for t0 in range(0, len(f.frames), SICK_BATCH):
                chunk = f.frames[t0 : t0 + SICK_BATCH]
                job = pool.submit(
                    sickness_of_frames, chunk, f.name, pixel_um, settings.model, settings.device, settings
                )
                sick_jobs[job] = (i, t0, len(chunk))
        for i, f in enumerate(fields):
            activity_jobs[pool.submit(activity_of, f, pixel_um, settings)] = (i, len(f.frames))
        try:
            for job in as_completed([*sick_jobs, *activity_jobs]):
                job.result()  # the first failure stops the run
                if progress is not None:
                    progress(sick_jobs[job][2] if job in sick_jobs else activity_jobs[job][1])
        except BrokenProcessPool:
            raise PhototoxError(
                "a timecourse worker process stopped (interrupted, or out of memory: "
                f"then rerun with fewer --workers than {workers})"
            ) from None
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    activities = [None] * len(fields)
    for job, (i, _n) in activity_jobs.items():
        activities[i] = job.result()
    sickness = [Sickness(np.full(len(f.frames), np.nan), np.full(len(f.frames), np.nan), None) for f in fields]
    for job, (i, t0, n) in sick_jobs.items():
        mean, area, out = job.result()
        s = sickness[i]
        s.mean_sick_probability[t0 : t0 + n] = mean
        s.sick_area_fraction[t0 : t0 + n] = area
        if out is not None:
            if s.out_of_domain is None:
                s.out_of_domain = np.zeros(len(fields[i].frames), dtype=bool)
            s.out_of_domain[t0 : t0 + n] = out
    return activities, sickness
