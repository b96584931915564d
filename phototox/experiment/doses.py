"""Choosing imaging settings that do not hurt the cells: sickness against light dose.

Image a dose series (e.g. the same cells under increasing exposure, or wells imaged with
different light settings), list the images with their ``dose`` in a manifest, and phototox
scores every image, fits a logistic dose-response curve

    P(sick | dose) = bottom + (top - bottom) / (1 + exp(-slope * (dose - d50)))

as a description (bottom, top, half-effect dose, a 95% bootstrap band over images). Which doses
are harmless is NOT read off this curve: ``phototox dose-response`` tests every dose for
non-inferiority against the dose-0 controls (:mod:`phototox.stats.dose_tests`, issue 25); the curve
has no "safe dose" (a fitted value within some distance of baseline is an absence of evidence).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

from phototox.errors import PhototoxError
from phototox.io.images import read_frames, write_text_atomic
from phototox.io.manifest import Sample
from phototox.maps.inference import Predictor
from phototox.maps.settings import MapSettings
from phototox.results.plots import plot_dose_response
from phototox.trust.pixelsize import manifest_pixel_size


def logistic(dose: np.ndarray, bottom: float, top: float, slope: float, d50: float) -> np.ndarray:
    return bottom + (top - bottom) / (1.0 + np.exp(-slope * (dose - d50)))


@dataclass
class DoseResponse:
    bottom: float
    top: float
    slope: float
    d50: float
    baseline: float
    n_images: int = 0
    n_boot: int = 0
    """Bootstrap resamples that could be fitted (the band needs at least 20)."""
    band_dose: list[float] | None = None
    band_low: list[float] | None = None
    band_high: list[float] | None = None

    def curve(self, doses: np.ndarray) -> np.ndarray:
        return logistic(doses, self.bottom, self.top, self.slope, self.d50)


def _fit(doses: np.ndarray, scores: np.ndarray) -> tuple[float, float, float, float]:
    span = float(doses.max() - doses.min()) or 1.0
    guess = (float(scores.min()), float(scores.max()), 4.0 / span, float(np.median(doses)))
    bounds = ([0.0, 0.0, 1e-6 / span, doses.min() - span], [1.0, 1.0, 1e3 / span, doses.max() + span])
    params, _ = curve_fit(logistic, doses, scores, p0=guess, bounds=bounds, maxfev=20000)
    bottom, top, slope, d50 = (float(p) for p in params)
    return bottom, top, slope, d50


MIN_BOOT = 20
"""Fewer successful bootstrap fits than this give no band."""


def fit_dose_response(doses: np.ndarray, scores: np.ndarray, n_boot: int = 500, seed: int = 0) -> DoseResponse:
    """Fit the logistic curve (a description) with a percentile bootstrap band over images."""
    doses, scores = np.asarray(doses, float), np.asarray(scores, float)
    if len(np.unique(doses)) < 3:
        raise PhototoxError("a dose-response fit needs images at three or more different doses")
    params = _fit(doses, scores)
    controls = scores[doses == 0]
    baseline = float(controls.mean()) if controls.size else params[0]
    rng = np.random.default_rng(seed)
    curves = []
    band_dose = np.linspace(0.0, float(doses.max()), 101)
    for _ in range(n_boot):
        idx = rng.integers(0, len(doses), len(doses))
        if len(np.unique(doses[idx])) < 3:
            continue
        try:
            p = _fit(doses[idx], scores[idx])
        except (RuntimeError, ValueError):
            continue
        curves.append(logistic(band_dose, *p))
    fit = DoseResponse(*params, baseline, n_images=len(doses), n_boot=len(curves))
    if len(curves) >= MIN_BOOT:
        band = np.percentile(np.array(curves), [2.5, 97.5], axis=0)
        fit.band_dose, fit.band_low, fit.band_high = band_dose.tolist(), band[0].tolist(), band[1].tolist()
    return fit


def score_samples(
    predictor: Predictor,
    samples: list[Sample],
    stride: int = 32,
    mode: str = "dense",
    progress: bool = False,
    assessor=None,
    pixel_size_um: float | None = None,
    settings: MapSettings | None = None,
) -> list[dict]:
    """Mean sick probability of every sample's frames (its frame window, or all frames).

    ``settings`` (:class:`phototox.maps.settings.MapSettings`), when given, replaces ``stride`` and
    ``mode`` and adds the threshold, normalisation and colour rule.

    With an ``assessor`` (phototox.trust.assess) frames are analysed at the model's pixel size (from
    ``pixel_size_um``, the manifest's ``pixel_size_um`` column, else the file) and each row
    carries the pixel size used and whether any frame was out of the model's domain.
    """
    from tqdm import tqdm

    from phototox.trust.assess import Assessor

    settings = settings or MapSettings(stride=stride, mode=mode)
    with_trust = assessor is not None  # rows carry pixel size and domain only when the caller asked for them
    if assessor is None:  # the front door without trust checks
        assessor = Assessor(predictor, warn=lambda _line: None, domain_check=False)
    rows = []
    for sample in tqdm(samples, disable=not progress, desc="scoring", unit="image"):
        if sample.dose is None:
            raise PhototoxError(f"{sample.path}: no dose in the manifest (add a 'dose' column)")
        frames = read_frames(sample.path, colour=settings.colour, min_size=predictor.window)
        if sample.frames is not None:
            frames = frames[sample.frames[0] : sample.frames[1] + 1]
        row_um = manifest_pixel_size(sample.extra, str(sample.path))
        size = assessor.pixel_size(pixel_size_um if pixel_size_um is not None else row_um, sample.path)
        results = assessor.analyse(frames, settings, size, str(sample.path))
        trust = {
            "pixel_size_um": size.um,
            "pixel_size_source": size.source,
            "out_of_domain": any(bool(r.trust.out_of_domain) for r in results),
        }
        rows.append(
            {
                "path": str(sample.path),
                "dose": sample.dose,
                "group": sample.group,
                "replicate": sample.replicate,  # "" when the manifest names none
                "field": sample.group,  # the manifest's group/field/position, else the file
                "mean_sick_probability": float(np.mean([r.mean_sick_probability for r in results])),
                **(trust if with_trust else {}),
            }
        )
    return rows


def dose_report_paths(out_dir: str | Path) -> list[Path]:
    """The files :func:`write_dose_report` writes."""
    return [Path(out_dir) / "dose_response.png", Path(out_dir) / "dose_response.json"]


def write_dose_report(
    rows: list[dict],
    fit: DoseResponse,
    out_dir: str | Path,
    unit: str = "",
    provenance: dict | None = None,
    tests=None,
) -> list[Path]:
    """dose_response.png and dose_response.json (with ``provenance``: phototox version, model name, checksum).

    With ``tests`` (:class:`phototox.stats.dose_tests.DoseTests`) the report carries the per-dose
    non-inferiority verdicts and the plot draws each dose's interval and the margin.
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doses = np.array([r["dose"] for r in rows])
    scores = np.array([r["mean_sick_probability"] for r in rows])
    grid = np.linspace(0, doses.max(), 200)
    png, report = dose_report_paths(out)
    model = (provenance or {}).get("model_name")
    plot_dose_response(
        doses,
        scores,
        grid,
        fit.curve(grid),
        png,
        unit,
        band=(fit.band_dose, fit.band_low, fit.band_high) if fit.band_dose else None,
        baseline=fit.baseline,
        title=f"{len(rows)} images" + (f", model {model}" if model else ""),
        dose_tests=tests,
    )
    record = {
        "fit": asdict(fit),
        **({"dose_tests": tests.as_dict()} if tests is not None else {}),
        "unit": unit,
        "images": rows,
        **({"provenance": provenance} if provenance else {}),
    }
    write_text_atomic(report, json.dumps(record, indent=2))
    return [png, report]


def compare_with_controls(rows: list[dict], reference=None):
    """Add each row's P(sick) against the controls' (``vs_controls``, with its 95% interval).

    The reference is ``reference`` (a :class:`phototox.trust.controls.ControlReference`, e.g. from
    ``--controls`` files or a calibrated model), else the manifest's unexposed images (dose 0) when
    there are at least two; returns the reference used, or None when there is none. A control
    image is compared with the other controls, never with itself.
    """
    from phototox.trust.controls import ControlReference

    if reference is None:
        unexposed = [r for r in rows if r["dose"] == 0]
        if len(unexposed) < 2:
            return None
        reference = ControlReference(
            np.asarray([r["mean_sick_probability"] for r in unexposed]),
            f"the {len(unexposed)} unexposed (dose 0) images",
            tuple(str(Path(r["path"]).resolve()) for r in unexposed),
        )
    for row in rows:
        row.update(reference.compare(row["mean_sick_probability"], row["path"]))
    return reference


def format_curve(fit: DoseResponse, unit: str = "") -> str:
    """The fitted curve, described (no dose is judged by it: see :mod:`phototox.stats.dose_tests`)."""
    unit = f" {unit}" if unit else ""
    return (
        f"baseline P(sick) {fit.baseline:.3f}; fitted bottom {fit.bottom:.3f}, top {fit.top:.3f}, "
        f"half-effect dose {fit.d50:.3g}{unit} (a description of the curve; no dose is judged by it)"
    )
