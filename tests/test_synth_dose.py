"""The synthetic time-lapse's dose model is recovered from its pixels (issue 31: known truth).

Fields of :mod:`phototox.synth.timelapse` at three doses; the event detector and the cell count see
only the pixels. Synthetic cells test the machinery, not the biology.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from phototox.synth.timelapse import TimelapseBiology, onset_frame

IRRADIANCES = (0.0, 100.0, 300.0)  # mW/cm2 at 50 ms per frame: onsets at frames 19 and 6
CYCLE_FRAMES = 20  # a fast cycle: enough mitoses in two fields per dose to judge a failure fraction
FIELDS_PER_DOSE = 2
FRAMES = 36


def test_the_dose_model_is_monotone_and_inert_before_the_onset():
    b = TimelapseBiology()
    doses = np.linspace(0, 3 * b.fail_dose, 11)
    p_fail = [b.p_fail(d) for d in doses]
    pace = [b.pace(d) for d in doses]
    assert p_fail[0] == 0 and pace[0] == 1  # no dose since onset: healthy cycle, no failure
    assert all(np.diff(p_fail) > 0) and all(np.diff(pace) < 0)
    assert b.p_fail(b.fail_dose) == pytest.approx(1 - math.exp(-1))
    assert b.pace(b.delay_dose) == pytest.approx(0.5)
    assert onset_frame(0.0) is None and onset_frame(b.critical_dose) == 0


@pytest.fixture(scope="module")
def recovered():
    from phototox.synth.timelapse import INTERVAL_MIN, PIXEL_UM, render_dose_series
    from phototox.timecourse.dose_recovery import pool_by_dose, recover_field

    b = TimelapseBiology(cycle_frames=CYCLE_FRAMES)
    fields = []
    for k, irradiance in enumerate(IRRADIANCES):
        per_frame = irradiance * 50.0 * 1e-6
        for j in range(FIELDS_PER_DOSE):
            stack, truth = render_dose_series(FRAMES, 256, per_frame, seed=7000 + 10 * k + j, biology=b)
            fields.append(recover_field(stack, truth, per_frame * FRAMES, INTERVAL_MIN, PIXEL_UM, b.rounding_frames, 6))
    return fields, pool_by_dose(fields)


@pytest.mark.slow
def test_detected_failure_fraction_rises_with_dose_and_matches_the_truth(recovered):
    _, doses = recovered
    detected = [d.failure("detected") for d in doses]
    true = [d.failure("true") for d in doses]
    assert [f for f, *_ in detected] == sorted(f for f, *_ in detected)  # rises with dose
    assert detected[0][0] < detected[-1][0]
    for (found, *_, n), (_, low, high, n_true) in zip(detected, true, strict=True):
        assert n >= 5 and n_true >= 5, "too few mitoses to judge the failure fraction"
        assert low <= found <= high, (
            f"detected failure fraction {found:.2f} outside the true one's {low:.2f}-{high:.2f}"
        )


@pytest.mark.slow
def test_detected_division_rate_falls_with_dose_and_is_positive_in_controls(recovered):
    _, doses = recovered
    rates = [d.division_rate("detected") for d in doses]
    assert rates[0] > 0, "the controls must show divisions"
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0]
    delays = [d.mean_delay_frames for d in doses]
    assert np.isnan(delays[0]) and 0 < delays[1] < delays[2], (
        "the dose model delays mitotic entry more at a higher dose"
    )


@pytest.mark.slow
def test_healthy_controls_have_a_sensible_cell_count(recovered):
    fields, _ = recovered
    controls = [f for f in fields if f.dose_j_cm2 == 0]
    for f in controls:
        assert f.detected_cell_hours > 0
        ratio = f.detected_cell_hours / f.true_cell_hours
        assert 0.4 <= ratio <= 1.5, f"estimated cells {ratio:.2f} x the true live cells"


def test_doses_csv_keeps_its_columns_and_adds_the_truth(tmp_path):
    import csv

    from phototox.synth.timelapse import write_dose_series

    doses = write_dose_series(tmp_path, irradiances=(0.0, 400.0), n_frames=3, size=96, seed=2)
    rows = list(csv.DictReader(doses.open()))
    old = ["field", "irradiance_mW_per_cm2", "exposure_ms", "frames", "wavelength_nm", "true_onset_frame"]
    assert list(rows[0])[: len(old) + 1] == [*old, "true_divisions"]
    assert {"true_failed_divisions", "true_deaths", "true_mean_mitosis_delay_frames"} <= set(rows[0])
    assert rows[0]["true_onset_frame"] == "" and rows[1]["true_onset_frame"] == "4"
