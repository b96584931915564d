"""Dose response: the bootstrap band and safe-dose interval are drawn, and a gap is said."""

from __future__ import annotations

import json

import numpy as np
import pytest

from phototox.doses import (
    fit_dose_response,
    format_fit,
    logistic,
    measured_gap,
    write_dose_report,
)


def _series(doses, seed=0):
    rng = np.random.default_rng(seed)
    doses = np.repeat(np.asarray(doses, float), 5)
    return doses, np.clip(logistic(doses, 0.05, 0.9, 1.5, 5.0) + rng.normal(0, 0.03, doses.size), 0, 1)


def test_measured_gap():
    assert measured_gap([0, 2, 2, 6], 3.1) == (2.0, 6.0)
    assert measured_gap([0, 2, 6], 2.0) is None  # measured there
    assert measured_gap([0, 2, 6], None) is None


def test_band_surrounds_the_fit_and_the_interval_the_safe_dose():
    doses, scores = _series([0, 1, 2, 3, 4, 5, 6, 8, 10])
    fit = fit_dose_response(doses, scores, n_boot=200)
    band_dose = np.array(fit.band_dose)
    curve = fit.curve(band_dose)
    inside = (np.array(fit.band_low) - 1e-3 <= curve) & (curve <= np.array(fit.band_high) + 1e-3)
    assert inside.mean() > 0.95
    assert np.all(np.array(fit.band_high) - np.array(fit.band_low) >= 0)
    assert fit.safe_dose_low <= fit.safe_dose <= fit.safe_dose_high
    assert fit.n_images == doses.size and fit.n_boot >= 150


def test_a_safe_dose_between_measured_doses_is_said(tmp_path):
    doses, scores = _series([0, 1, 8, 10])  # nothing measured between 1 and 8
    fit = fit_dose_response(doses, scores, n_boot=40)
    assert fit.safe_dose is not None and 1 < fit.safe_dose < 8
    assert fit.gap == (1.0, 8.0)
    text = format_fit(fit, "J/cm2")
    assert "gap between the measured doses 1 and 8 J/cm2" in text
    rows = [
        {"path": f"i{i}", "dose": float(d), "mean_sick_probability": float(s)}
        for i, (d, s) in enumerate(zip(doses, scores))
    ]
    png, js = write_dose_report(rows, fit, tmp_path, "J/cm2", {"model_name": "m"})
    record = json.loads(js.read_text())["fit"]
    assert record["gap"] == [1.0, 8.0] and len(record["band_low"]) == len(record["band_dose"])
    assert png.stat().st_size > 1000


def test_without_enough_resamples_no_interval_is_invented():
    fit = fit_dose_response(np.array([0, 1, 2, 3.0]), np.array([0.02, 0.05, 0.6, 0.9]), n_boot=0)
    assert fit.safe_dose_low is None and fit.band_dose is None
    assert "no interval" in format_fit(fit) or fit.safe_dose is None
    assert fit.gap is None or fit.gap[0] < fit.safe_dose < fit.gap[1]


@pytest.mark.parametrize("n_boot", [0, 50])
def test_old_callers_still_work(n_boot):
    doses, scores = _series([0, 2, 4, 6, 8])
    assert fit_dose_response(doses, scores, n_boot=n_boot).safe_dose is not None
