"""End-to-end ``phototox timecourse`` on a synthetic dose series and on the real T98G time-lapse.

The synthetic test checks the machinery (a known onset is recovered, in the right order across
doses); it is not a validation of the biology. The T98G test checks the opposite: quadrants of
one healthy field, each compared with the other three as controls, must show no onset.
"""

from __future__ import annotations

import json

import pytest

from phototox.apps.cli import main

# An onset is found after the true one (a departure must last ``persistence`` frames and the
# synthetic cells slow down gradually, then die from 60 min after the onset at a dose-dependent rate), never before it, and
# at most this much later. Issue 25 made false onsets family-wise 5% over frames and fields (a
# Bonferroni level per frame): the top dose's motion onset is now found 170 min after the true
# start (was within 120 min with the old, uncalibrated z > 3 rule), so the tolerance is 240 min.
EARLY_TOLERANCE_MIN = 10.0
LATE_TOLERANCE_MIN = 240.0


@pytest.mark.slow
def test_synthetic_dose_series_recovers_onset_order(tmp_path):
    from phototox.synth.timelapse import INTERVAL_MIN, write_dose_series

    # six control positions: with the per-frame level at 5% family-wise over fields and frames, three
    # control fields (t with 2 df) leave a prediction interval too wide for any onset
    irradiances = (0.0,) * 6 + (100.0, 100.0, 400.0, 400.0)
    doses = write_dose_series(tmp_path / "series", irradiances=irradiances, n_frames=36, size=256, seed=0)
    out = tmp_path / "out"
    code = main(
        [
            "timecourse",
            *sorted(str(p) for p in (tmp_path / "series").glob("field*.tif")),
            "--doses",
            str(doses),
            "--out",
            str(out),
            "--no-sickness",
            "--bootstrap",
            "100",
            "--workers",
            "2",  # the ten fields in two processes (identical measures: test_timecourse.py)
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads((out / "timecourse.json").read_text())
    truth = {}
    for line in doses.read_text().splitlines()[1:]:
        parts = line.split(",")
        if parts[5]:
            truth[float(parts[1]) * float(parts[2]) * 1e-6 * 36] = int(parts[5]) * INTERVAL_MIN
    earliest = {}
    for o in doc["onsets"]:
        dose = float(o["group"].split()[0])
        if o["time_min"] is not None:
            earliest[dose] = min(earliest.get(dose, float("inf")), o["time_min"])
    assert max(truth) in earliest, "the highest dose must show an onset"
    ordered = [earliest[d] for d in sorted(earliest)]
    assert ordered == sorted(ordered, reverse=True)
    for dose, found_min in earliest.items():
        assert truth[dose] - EARLY_TOLERANCE_MIN <= found_min <= truth[dose] + LATE_TOLERANCE_MIN
    for name in (
        "timecourse.csv",
        "timecourse_by_dose.csv",
        "timecourse_measures.png",
        "timecourse_onsets.png",
        "timecourse_report.md",
    ):
        assert (out / name).stat().st_size > 0
    report = (out / "timecourse_report.md").read_text()
    assert "safe" not in report.lower() and "acceptable" not in report.lower()
    for tests in doc["dose_tests"].values():  # harmless only from a passed non-inferiority test
        for d in tests.get("doses", []):
            ni = d["non_inferiority"]
            assert d["verdict"] != "harmless (non-inferior)" or (
                ni and ni["verdict"] == d["verdict"] and tests["sensitive"]
            )


@pytest.mark.slow
def test_sickness_onsets_are_withheld_out_of_the_models_domain(tmp_path, capsys):
    """Synthetic fields are outside the celldeath model's domain: its P(sick) gets no onset, activity does."""
    from phototox.synth.timelapse import write_dose_series

    doses = write_dose_series(tmp_path / "series", irradiances=(0.0, 0.0, 400.0, 400.0), n_frames=5, size=256, seed=1)
    out = tmp_path / "out"
    fields = sorted(str(p) for p in (tmp_path / "series").glob("field*.tif"))
    assert main(["timecourse", *fields, "--doses", str(doses), "--out", str(out), "--bootstrap", "0", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "design checks (phototox design):" in printed and "missing: replicates:" in printed
    doc = json.loads((out / "timecourse.json").read_text())
    assert doc["sickness_onsets_withheld"].startswith("no P(sick) onset is given")
    assert sum(doc["out_of_domain_frames"].values()) > 0.5 * 5 * len(fields)
    measures = {o["measure"] for o in doc["onsets"]}
    assert "motion_um_per_min" in measures and "mean_sick_probability" not in measures
    assert "no P(sick) onset is given" in (out / "timecourse_report.md").read_text()
    rows = (out / "timecourse.csv").read_text().splitlines()
    assert "mean_sick_probability" in rows[0]  # the values stay in the table, with their domain flag
