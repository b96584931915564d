"""``phototox compare``: any results table against its controls through the one comparison engine."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from phototox.errors import ManifestError
from phototox.stats.compare import HARMLESS, SICKER, cannot_test
from phototox.stats.compare_table import TableSpec, compare_table
from phototox.stats.dose_tests import OUT_OF_DOMAIN

VALUE = "Phototoxicity_MeanSickProbability_Phase"
CP_SPEC = TableSpec(VALUE, "Metadata_Dose", "0", "Metadata_Plate", "Metadata_Site", "Metadata_T")


def _table(path: Path, effects: dict[str, float], seed: int, dishes: int = 3, fields: int = 3, frames: int = 2) -> Path:
    """A CellProfiler-style Image.csv: dishes x fields x frames per condition, dish SD 0.005, field SD 0.02."""
    rng = np.random.default_rng(seed)
    rows = []
    for condition, effect in effects.items():
        for dish in range(dishes):
            dish_offset = rng.normal(0, 0.005)
            for site in range(fields):
                field_offset = rng.normal(0, 0.02)
                for t in range(frames):
                    rows.append(
                        {
                            "Metadata_Dose": condition,
                            "Metadata_Plate": f"{condition}-dish{dish}",
                            "Metadata_Site": f"s{site}",
                            "Metadata_T": t,
                            VALUE: 0.2 + effect + dish_offset + field_offset + rng.normal(0, 0.005),
                            "Phototoxicity_OutOfDomain_Phase": 0,
                        }
                    )
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_no_effect_tables_claim_sicker_at_most_the_nominal_rate(tmp_path):
    """200 tables without effect: false 'sicker' (two-sided 95%) at most about 2.5% plus noise."""
    sicker = 0
    for seed in range(200):
        result = compare_table(_table(tmp_path / "t.csv", {"0": 0.0, "1": 0.0}, seed), CP_SPEC)
        sicker += result.conditions[0].comparison.verdict == SICKER
    assert sicker <= 12  # binomial(200, 0.025): P(X > 12) < 0.01


def test_replicates_are_the_unit_and_frames_are_not(tmp_path):
    result = compare_table(_table(tmp_path / "t.csv", {"0": 0.0, "1": 0.0, "2": 0.1}, seed=3), CP_SPEC)
    assert {(r.comparison.level, r.comparison.n_test, r.comparison.n_control) for r in result.conditions} == {
        ("replicate", 3, 3)
    }
    frames_only = TableSpec(VALUE, "Metadata_Dose", "0", frame="Metadata_T")
    one_field = compare_table(tmp_path / "t.csv", frames_only)
    assert all(r.verdict == cannot_test("field") for r in one_field.conditions)


def test_the_margin_moves_the_no_observed_effect_dose(tmp_path):
    path = _table(tmp_path / "t.csv", {"0": 0.0, "1": 0.0, "2": 0.03, "4": 0.15}, seed=5)
    wide = compare_table(path, TableSpec(**{**CP_SPEC.__dict__, "margin": 0.5}))
    narrow = compare_table(path, TableSpec(**{**CP_SPEC.__dict__, "margin": 0.05}))
    assert wide.doses is not None and narrow.doses is not None
    assert wide.doses.no_observed_effect_dose == 2.0
    assert narrow.doses.no_observed_effect_dose is None
    assert all(r.verdict != HARMLESS for r in narrow.conditions)


def test_out_of_domain_rows_carry_no_verdict(tmp_path):
    path = _table(tmp_path / "t.csv", {"0": 0.0, "1": 0.0, "2": 0.15}, seed=7)
    text = path.read_text().splitlines()
    header = text[0].split(",")
    column = header.index("Phototoxicity_OutOfDomain_Phase")
    patched = [text[0]]
    for line in text[1:]:
        cells = line.split(",")
        if cells[0] == "1":
            cells[column] = "1"
        patched.append(",".join(cells))
    path.write_text("\n".join(patched) + "\n")
    result = compare_table(path, CP_SPEC)
    verdicts = {r.condition: r.verdict for r in result.conditions}
    assert verdicts["1"] == OUT_OF_DOMAIN
    assert result.out_of_domain == 18


def test_treatments_are_compared_one_by_one_with_the_lower_is_harm_direction(tmp_path):
    path = _table(tmp_path / "t.csv", {"none": 0.0, "blue": -0.15, "red": 0.0}, seed=11)
    spec = TableSpec(VALUE, "Metadata_Dose", "none", "Metadata_Plate", "Metadata_Site", higher_is_harm=False)
    verdicts = {r.condition: r for r in compare_table(path, spec).conditions}
    assert verdicts["blue"].comparison.verdict == SICKER  # the readout fell: harm when lower is harm
    assert verdicts["red"].comparison.verdict != SICKER


def test_bad_values_name_the_line(tmp_path):
    path = _table(tmp_path / "t.csv", {"0": 0.0, "1": 0.0}, seed=1)
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(lines[4].split(",")[4], "lots")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"line 5: .* 'lots' is not a number"):
        compare_table(path, CP_SPEC)


def test_the_command_writes_json_and_never_over_its_input(tmp_path):
    path = _table(tmp_path / "t.csv", {"0": 0.0, "1": 0.0, "2": 0.15}, seed=2)
    args = ["--value", VALUE, "--by", "Metadata_Dose", "--replicate", "Metadata_Plate", "--field", "Metadata_Site"]
    out = tmp_path / "result.json"
    run = subprocess.run(
        [sys.executable, "-m", "phototox", "compare", str(path), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "no-observed-effect dose" in run.stdout
    doc = json.loads(out.read_text())
    assert [c["condition"] for c in doc["conditions"]] == ["1", "2"]
    assert doc["doses"]["sensitive"] is True
    before = path.read_bytes()
    run = subprocess.run(
        [sys.executable, "-m", "phototox", "compare", str(path), *args, "--out", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0 and len(run.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == before
