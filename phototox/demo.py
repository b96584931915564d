"""The demo: synthetic phase-contrast fields at five light doses, mapped and fitted end to end.

Needs no download and no data: fields come from :mod:`phototox.synth`, the model is the shipped
synthetic one. Used by ``phototox demo``; the command only prints what :func:`run_demo` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .assess import Assessor
from .defaults import DEMO_MODEL
from .dose_tests import DoseTests, judge_doses
from .doses import DoseResponse, dose_report_paths, fit_dose_response, write_dose_report
from .errors import PhototoxError
from .images import write_tiff_atomic
from .inference import Predictor
from .outputs import map_output_paths, summary_rows, write_map_outputs, write_summary
from .provenance import provenance
from .settings import MapSettings
from .synth import render_field

DEMO_DOSES = (0.0, 0.25, 0.5, 0.75, 1.0)
__all__ = ["DEMO_DOSES", "DEMO_MODEL", "DemoResult", "default_model_scores", "demo_output_paths", "run_demo"]


@dataclass
class DemoResult:
    """What the demo wrote and found: one summary row per dose, the fit (or why there is none)."""

    rows: list[dict]
    fit: DoseResponse | None
    fit_error: str | None = None
    tests: DoseTests | None = None
    """Non-inferiority per dose: one field per dose, so every dose is 'cannot test' (said, not hidden)."""
    images: list[np.ndarray] = field(default_factory=list)  # the synthetic fields, one per dose


def demo_stems() -> list[str]:
    """File stems of the synthetic fields, one per dose."""
    return [f"synthetic_dose{dose:g}" for dose in DEMO_DOSES]


def demo_output_paths(out: Path) -> list[Path]:
    """Every file the demo writes under ``out`` (checked before anything runs)."""
    stems = demo_stems()
    return (
        [out / "inputs" / f"{s}.tif" for s in stems]
        + [p for s in stems for p in map_output_paths(out, s)]
        + [out / "summary.csv", *dose_report_paths(out)]
    )


def run_demo(
    predictor: Predictor,
    out: Path,
    size: int,
    seed: int,
    stride: int,
    mode: str,
    threshold: float,
) -> DemoResult:
    """Render, map and fit the dose series into ``out``.

    Through :class:`~phototox.assess.Assessor`, as ``phototox map`` does, so the rows say the pixel
    size used and whether each field is in the model's domain.
    """
    assessor = Assessor(predictor)
    settings = MapSettings(stride=stride, mode=mode, threshold=threshold)
    rows, fields = [], []
    for i, (stem, dose) in enumerate(zip(demo_stems(), DEMO_DOSES)):
        synthetic = render_field(size, int(size * 1.3125), dose, seed=seed + i)
        image_path = out / "inputs" / f"{stem}.tif"
        write_tiff_atomic(image_path, synthetic.image)
        pixel_size = assessor.pixel_size(None, image_path)
        results = assessor.analyse(synthetic.image[None], settings, pixel_size, str(image_path))
        meta = provenance(predictor.model)
        write_map_outputs(out, stem, synthetic.image[None].astype("float32"), results, provenance=meta)
        rows += summary_rows(str(image_path), results, predictor.model.label, meta)
        fields.append(synthetic)
    write_summary(out / "summary.csv", rows)
    result = DemoResult(rows, None, images=[f.image for f in fields])
    scores = [r["mean_sick_probability"] for r in rows]
    try:
        fit = fit_dose_response(np.asarray(DEMO_DOSES), np.asarray(scores), n_boot=200)
        points = [
            {"path": r["path"], "dose": d, "mean_sick_probability": r["mean_sick_probability"]}
            for r, d in zip(rows, DEMO_DOSES)
        ]
        result.tests = judge_doses(points)
        write_dose_report(points, fit, out, "(synthetic dose)", provenance(predictor.model), result.tests)
        result.fit = fit
    except (RuntimeError, PhototoxError) as exc:  # a flat response has no curve to fit
        result.fit_error = str(exc)
    return result


def default_model_scores(images: list[np.ndarray], device: str, stride: int, mode: str) -> list[float]:
    """Mean P(sick) of the default (real-data) model on the demo fields: it sees them as out of its domain."""
    real = Assessor(Predictor.from_spec("default", device), warn=lambda _line: None)
    settings = MapSettings(stride=stride, mode=mode)
    size = real.pixel_size(None)  # the demo fields carry no pixel size: the model's, as for the demo model
    return [real.analyse(image, settings, size)[0].mean_sick_probability for image in images]
