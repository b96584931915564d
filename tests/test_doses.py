"""Dose response: the fit recovers a known curve; the command writes its report."""

import json

import numpy as np
import pytest

from phototox.apps.cli import main
from phototox.errors import PhototoxError
from phototox.experiment.doses import fit_dose_response, logistic


def test_fit_recovers_a_known_curve():
    rng = np.random.default_rng(0)
    doses = np.repeat([0, 1, 2, 3, 4, 5, 6, 8, 10], 6).astype(float)
    truth = (0.05, 0.9, 1.5, 5.0)
    scores = np.clip(logistic(doses, *truth) + rng.normal(0, 0.02, doses.size), 0, 1)
    fit = fit_dose_response(doses, scores, n_boot=200)
    assert fit.d50 == pytest.approx(5.0, abs=0.3) and fit.top == pytest.approx(0.9, abs=0.05)
    assert fit.bottom == pytest.approx(0.05, abs=0.05)
    assert fit.baseline == pytest.approx(scores[doses == 0].mean())


def test_sharp_onset_is_fitted_between_the_doses():
    doses = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3, 4.0])
    scores = np.array([0.05, 0.06, 0.04, 0.9, 0.92, 0.95, 0.94, 0.97, 0.96, 0.98])
    fit = fit_dose_response(doses, scores, n_boot=50)
    assert fit.baseline == pytest.approx(0.05)
    assert 0.0 < fit.d50 < 1.0


def test_needs_three_doses():
    with pytest.raises(PhototoxError, match="three or more"):
        fit_dose_response(np.array([0, 0, 1, 1.0]), np.array([0.1, 0.1, 0.5, 0.6]))


@pytest.mark.slow  # 500 bootstrap fits of a flat response (20-80 s on a busy 2-core machine)
def test_dose_response_command(tmp_path, synth_dataset, tiny_model_path, capsys):
    assert (
        main(
            [
                "dose-response",
                str(synth_dataset),
                "--model",
                str(tiny_model_path),
                "--out",
                str(tmp_path / "d"),
                "--device",
                "cpu",
                "--quiet",
                "--unit",
                "a.u.",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "d" / "dose_response.json").read_text())
    assert len(report["images"]) == 8 and report["unit"] == "a.u."
    assert (tmp_path / "d" / "dose_response.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "baseline P(sick)" in out
    # doses judged by non-inferiority against the dose-0 images, never by a "largest safe dose"
    assert "non-inferiority against the zero-light controls" in out and "largest safe dose" not in out
    assert "describes these dishes, not the biology" in out
    judged = report["dose_tests"]
    assert judged["margin"] == 0.2 and "safe_dose" not in report["fit"]
    assert [d["dose"] for d in judged["doses"]] == [0.2, 0.8, 1.0]
    assert all(d["verdict"] != "harmless (non-inferior)" or judged["sensitive"] for d in judged["doses"])
    # the manifest's two dose-0 images are the controls: every image is reported against them
    assert "each image against your controls (the 2 unexposed (dose 0) images" in out
    rows = report["images"]
    control = [r["mean_sick_probability"] for r in rows if r["dose"] == 0]
    for r in rows:
        if r["dose"] == 0:  # a control is compared with the OTHER control, never itself: one left, no test
            other = control[1] if r["mean_sick_probability"] == control[0] else control[0]
            assert r["vs_controls"] == pytest.approx(r["mean_sick_probability"] - other, abs=1e-4)
            assert r["vs_controls_low"] is None and r["vs_controls_verdict"].startswith("cannot test")
            continue
        assert r["vs_controls"] == pytest.approx(r["mean_sick_probability"] - sum(control) / 2, abs=1e-4)
        assert r["vs_controls_low"] <= r["vs_controls"] <= r["vs_controls_high"]
    # --controls FILES: the same dose-0 fields given as files give the same comparison
    controls = [r["path"] for r in rows if r["dose"] == 0]
    common = ["--model", str(tiny_model_path), "--device", "cpu", "--quiet"]
    assert (
        main(["dose-response", str(synth_dataset), "--out", str(tmp_path / "b"), "--controls", *controls, *common]) == 0
    )
    given = json.loads((tmp_path / "b" / "dose_response.json").read_text())["images"]
    assert [r["vs_controls"] for r in given] == pytest.approx([r["vs_controls"] for r in rows], abs=1e-4)
    assert "each image against your controls (2 control files" in capsys.readouterr().out
