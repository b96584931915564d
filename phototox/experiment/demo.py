"""The demo: synthetic phase-contrast fields at five light doses in three dishes, mapped, fitted and tested.

Needs no download and no data: fields come from :mod:`phototox.synth.fields`, the model is the shipped
synthetic one. Each dose is imaged in :data:`DEMO_DISHES` dishes (one field each; the dishes differ
in cell density, a dish-to-dish variation that is not light), so each dose is tested against the
zero-light dishes with the dish as the unit (:mod:`phototox.stats.dose_tests`). The demo also writes the
``doses.csv`` manifest that ``phototox dose-response`` reads, so the same test can be rerun on it.
Used by ``phototox demo``; the command only prints what :func:`run_demo` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phototox.defaults import DEMO_MODEL
from phototox.errors import PhototoxError
from phototox.experiment.doses import DoseResponse, dose_report_paths, fit_dose_response, write_dose_report
from phototox.io.images import write_text_atomic, write_tiff_atomic
from phototox.maps.inference import Predictor
from phototox.maps.settings import MapSettings
from phototox.results.outputs import map_output_paths, summary_rows, write_map_outputs, write_summary
from phototox.results.provenance import provenance
from phototox.stats.dose_tests import DoseTests, judge_doses
from phototox.synth.fields import render_field
from phototox.trust.assess import Assessor

DEMO_DOSES = (0.0, 0.25, 0.5, 0.75, 1.0)
DEMO_DISHES = 3
"""independent dishes per dose: the fewest for which a verdict describes more than these dishes"""
DISH_DENSITY = (0.85, 1.0, 1.15)
"""each dish's cell density relative to the synthetic default (dish-to-dish variation that is not light)"""
__all__ = [
    "DEMO_DISHES",
    "DEMO_DOSES",
    "DEMO_MODEL",
    "DemoResult",
    "default_model_scores",
    "demo_output_paths",
    "run_demo",
]


@dataclass
class DemoResult:
    """What the demo wrote and found: one summary row per dose, the fit (or why there is none)."""

    rows: list[dict]
    fit: DoseResponse | None
    fit_error: str | None = None
    tests: DoseTests | None = None
    """Non-inferiority per dose against the zero-light dishes, dishes as units, in a fixed sequence."""
    images: list[np.ndarray] = field(default_factory=list)  # the first dish's field of each dose


def demo_plan() -> list[tuple[str, float, int]]:
    """(file stem, dose, dish index) of every synthetic field, dose by dose."""
    return [(f"synthetic_dose{dose:g}_dish{k + 1}", dose, k) for dose in DEMO_DOSES for k in range(DEMO_DISHES)]


def demo_stems() -> list[str]:
    """File stems of the synthetic fields."""
    return [stem for stem, _dose, _dish in demo_plan()]


def demo_output_paths(out: Path) -> list[Path]:
    """Every file the demo writes under ``out`` (checked before anything runs)."""
    stems = demo_stems()
    return (
        [out / "inputs" / f"{s}.tif" for s in stems]
        + [p for s in stems for p in map_output_paths(out, s)]
        + [out / "summary.csv", out / "doses.csv", *dose_report_paths(out)]
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

    Through :class:`~phototox.trust.assess.Assessor`, as ``phototox map`` does, so the rows say the pixel
    size used and whether each field is in the model's domain.
    """
    assessor = Assessor(predictor)
    settings = MapSettings(stride=stride, mode=mode, threshold=threshold)
    rows: list[dict] = []
    points: list[dict] = []
    fields = []
    for i, (stem, dose, dish) in enumerate(demo_plan()):
        density = 110.0 * DISH_DENSITY[dish % len(DISH_DENSITY)]
        synthetic = render_field(size, int(size * 1.3125), dose, seed=seed + i, cells_per_megapixel=density)
        image_path = out / "inputs" / f"{stem}.tif"
        write_tiff_atomic(image_path, synthetic.image)
        pixel_size = assessor.pixel_size(None, image_path)
        results = assessor.analyse(synthetic.image[None], settings, pixel_size, str(image_path))
        meta = provenance(predictor.model)
        write_map_outputs(out, stem, synthetic.image[None].astype("float32"), results, provenance=meta)
        image_rows = summary_rows(str(image_path), results, predictor.model.label, meta)
        rows += image_rows
        points.append(
            {
                "path": str(image_path),
                "dose": dose,
                "replicate": f"dish{dish + 1}",
                "mean_sick_probability": float(np.mean([r["mean_sick_probability"] for r in image_rows])),
                "out_of_domain": any(bool(r.trust.out_of_domain) for r in results),  # no verdict rests on it
            }
        )
        if dish == 0:
            fields.append(synthetic)
    write_summary(out / "summary.csv", rows)
    write_text_atomic(
        out / "doses.csv",
        "path,dose,replicate,dish\n"
        + "".join(
            f"inputs/{Path(str(p['path'])).name},{p['dose']:g},{p['replicate']},dose{p['dose']:g}-{p['replicate']}\n"
            for p in points
        ),
    )
    result = DemoResult(rows, None, images=[f.image for f in fields])
    try:
        doses = np.array([p["dose"] for p in points])
        fit = fit_dose_response(doses, np.array([p["mean_sick_probability"] for p in points]), n_boot=200)
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
