"""Dose response: the fit's bootstrap band is drawn; no dose is called safe by the curve (issue 25)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from phototox.experiment.doses import fit_dose_response, logistic, write_dose_report


def _series(doses, seed=0):
    rng = np.random.default_rng(seed)
    doses = np.repeat(np.asarray(doses, float), 5)
    return doses, np.clip(logistic(doses, 0.05, 0.9, 1.5, 5.0) + rng.normal(0, 0.03, doses.size), 0, 1)


def test_band_surrounds_the_fit():
    doses, scores = _series([0, 1, 2, 3, 4, 5, 6, 8, 10])
    fit = fit_dose_response(doses, scores, n_boot=200)
    band_dose = np.array(fit.band_dose)
    curve = fit.curve(band_dose)
    inside = (np.array(fit.band_low) - 1e-3 <= curve) & (curve <= np.array(fit.band_high) + 1e-3)
    assert inside.mean() > 0.95
    assert np.all(np.array(fit.band_high) - np.array(fit.band_low) >= 0)
    assert fit.n_images == doses.size and fit.n_boot >= 150


def test_the_report_without_controls_judges_no_dose(tmp_path):
    doses, scores = _series([1, 2, 8, 10])  # no dose 0
    fit = fit_dose_response(doses, scores, n_boot=40)
    rows = [
        {"path": f"i{i}", "dose": float(d), "mean_sick_probability": float(s)}
        for i, (d, s) in enumerate(zip(doses, scores))
    ]
    png, js = write_dose_report(rows, fit, tmp_path, "J/cm2", {"model_name": "m"})
    record = json.loads(js.read_text())
    assert "dose_tests" not in record and not any("safe" in key for key in record["fit"])
    assert len(record["fit"]["band_low"]) == len(record["fit"]["band_dose"])
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("n_boot", [0, 10])
def test_without_enough_resamples_no_band_is_invented(n_boot):
    fit = fit_dose_response(np.array([0, 1, 2, 3.0]), np.array([0.02, 0.05, 0.6, 0.9]), n_boot=n_boot)
    assert fit.band_dose is None and fit.n_boot <= n_boot
