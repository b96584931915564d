"""Doses judged by non-inferiority against the zero-light controls, never by a curve's "safe dose"."""

from __future__ import annotations

import json

import numpy as np
import pytest

from phototox.errors import PhototoxError
from phototox.stats.compare import HARMLESS
from phototox.stats.dose_tests import INSENSITIVE, OUT_OF_DOMAIN, format_dose_tests, judge_doses


def rows_for(harms: dict[float, float], fields=4, sd=0.002, seed=0, replicate=None) -> list[dict]:
    """Rows of ``fields`` images per dose at P(sick) 0.2 x (1 + harm) plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for dose, harm in {0.0: 0.0, **harms}.items():
        for f in range(fields):
            row = {
                "path": f"d{dose}_f{f}.tif",
                "dose": dose,
                "mean_sick_probability": 0.2 * (1 + harm) + rng.normal(0, sd),
            }
            if replicate is not None:
                row["replicate"] = replicate
            rows.append(row)
    return rows


HARMS = {1.0: 0.02, 2.0: 0.10, 3.0: 0.30, 4.0: 1.0}


@pytest.mark.parametrize(("margin", "noel"), [(0.05, 1.0), (0.2, 2.0), (0.5, 3.0)])
def test_margin_changes_the_no_observed_effect_dose(margin, noel):
    tests = judge_doses(rows_for(HARMS), margin)
    json.dumps(tests.as_dict())  # plain types: dose_response.json carries it
    assert tests.sensitive and tests.no_observed_effect_dose == noel
    assert [d.dose for d in tests.doses if d.verdict == HARMLESS] == [d for d in HARMS if d <= noel]


def test_without_a_sensitive_highest_dose_no_dose_is_harmless():
    tests = judge_doses(rows_for({1.0: 0.0, 2.0: 0.01, 3.0: 0.05}), 0.2)
    assert not tests.sensitive and tests.no_observed_effect_dose is None
    assert not any(d.verdict == HARMLESS for d in tests.doses)
    assert all(d.non_inferiority.verdict == HARMLESS for d in tests.doses)  # they would have passed
    text = "\n".join(format_dose_tests(tests))
    assert INSENSITIVE in text and "no dose is shown harmless" in text


def test_fixed_sequence_stops_at_the_first_dose_not_shown_harmless():
    tests = judge_doses(rows_for({1.0: 0.0, 2.0: 0.5, 3.0: 0.0, 4.0: 1.0}), 0.2)
    verdicts = [d.verdict for d in tests.doses]
    assert verdicts[0] == HARMLESS and verdicts[1] == "not shown harmless"
    assert verdicts[2] == "not tested: the fixed sequence stopped at dose 2"
    assert tests.doses[2].non_inferiority.verdict == HARMLESS and tests.no_observed_effect_dose == 1.0


def test_no_dose_is_called_harmless_unless_its_test_and_all_lower_ones_passed():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        harms = {float(d): float(h) for d, h in zip(range(1, 5), np.sort(rng.uniform(0, 1.2, 4)), strict=True)}
        tests = judge_doses(rows_for(harms, fields=3, sd=0.02, seed=seed), 0.2, seed=seed)
        passed = True
        for d in tests.doses:
            passed = passed and d.non_inferiority is not None and d.non_inferiority.verdict == HARMLESS
            assert (d.verdict == HARMLESS) == (passed and tests.sensitive)


def test_one_replicate_per_dose_says_so_and_calls_nothing_harmless():
    tests = judge_doses(rows_for(HARMS, replicate="day1"), 0.2)
    assert all(d.verdict == "cannot test: one replicate per arm" for d in tests.doses)
    assert any("describes these dishes, not the biology" in line for line in format_dose_tests(tests))


def test_fields_without_replicates_say_they_describe_these_dishes():
    text = "\n".join(format_dose_tests(judge_doses(rows_for(HARMS), 0.2)))
    assert "no replicate labels: this describes these dishes, not the biology" in text


def test_out_of_domain_doses_are_not_judged():
    rows = rows_for(HARMS)
    for r in rows:
        if r["dose"] == 1.0:
            r["out_of_domain"] = True
    tests = judge_doses(rows, 0.2)
    assert tests.doses[0].verdict == OUT_OF_DOMAIN and tests.no_observed_effect_dose is None


def test_bad_requests():
    with pytest.raises(PhototoxError, match="no zero-light controls"):
        judge_doses([r for r in rows_for(HARMS) if r["dose"] != 0], 0.2)
    with pytest.raises(PhototoxError, match="margin"):
        judge_doses(rows_for(HARMS), 0.0)


@pytest.mark.slow  # scores 8 images and fits the descriptive curve (500 bootstrap fits)
def test_a_manifest_with_one_replicate_per_dose_prints_the_warning(tmp_path, synth_dataset, tiny_model_path, capsys):
    import csv

    from phototox.apps.cli import main

    with synth_dataset.open() as fh:  # the manifest
        rows = list(csv.DictReader(fh))
    manifest = tmp_path / "one_replicate.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "path": str(synth_dataset.parent / row["path"]), "replicate": "day1"})
    common = ["--model", str(tiny_model_path), "--device", "cpu", "--quiet", "--out", str(tmp_path / "d")]
    assert main(["dose-response", str(manifest), *common]) == 0
    out = capsys.readouterr().out
    assert "cannot test: one replicate per arm" in out
    assert "1 replicate(s) in an arm: this describes these dishes, not the biology" in out
    assert "harmless (non-inferior)" not in out.replace("dose is shown harmless", "")


def test_the_dose_plot_colours_each_dose_by_its_verdict(tmp_path):
    """Green only for a dose whose non-inferiority test passed; the margin and intervals are drawn."""
    import matplotlib.image as mpimg

    from phototox.timecourse.plots import plot_dose_tests

    def green_pixels(effects):
        rng = np.random.default_rng(0)
        rows = [
            {"dose": dose, "value": 1.0 + eff + rng.normal(0, 0.05), "path": f"{dose}-{f}"}
            for dose, eff in effects
            for f in range(3)
        ]
        tests = judge_doses(rows, 0.2, key="value", higher_is_harm=False, readout="division rate")
        path = tmp_path / "doses.png"
        assert plot_dose_tests({"division": tests}, path)
        rgb = mpimg.imread(path)[..., :3]
        return int(((rgb[..., 1] > 0.5) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.3)).sum()), tests

    green, tests = green_pixels([(0, 0), (1, 0), (2, -0.5)])
    assert tests.doses[0].verdict == HARMLESS and green > 50
    green, tests = green_pixels([(0, 0), (1, -0.5), (2, -0.6)])
    assert all(d.verdict != HARMLESS for d in tests.doses) and green == 0
