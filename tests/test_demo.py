"""`phototox demo` end to end: dishes are the units of its per-dose tests, and its manifest reruns them."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
from hostile_support import run_main

from phototox.defaults import DEMO_MODEL
from phototox.experiment.demo import DEMO_DISHES, DEMO_DOSES
from phototox.stats.compare import HARMLESS

pytestmark = pytest.mark.slow


def test_demo_tests_each_dose_on_dishes_and_its_manifest_reruns_them(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, stderr = run_main(["demo", "--out", out, "--size", "256"], capsys)
    assert code == 0, stderr
    with open(out / "doses.csv", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    per_dose = Counter(float(r["dose"]) for r in manifest)
    assert per_dose == dict.fromkeys(DEMO_DOSES, DEMO_DISHES)
    assert all((out / r["path"]).is_file() for r in manifest)
    assert len({r["replicate"] for r in manifest}) == DEMO_DISHES

    report = json.loads((out / "dose_response.json").read_text())
    tests = report["dose_tests"]
    for verdict in tests["doses"]:
        comparison = verdict["comparison"]
        # the dish is the unit: 3 exposed dishes against 3 zero-light dishes, never 3 fields or 15 images
        assert (comparison["level"], comparison["n_test"], comparison["n_control"]) == ("replicate", 3, 3)
        if verdict["verdict"] == HARMLESS:  # harmless only where the non-inferiority test passed
            ni = verdict["non_inferiority"]
            assert ni["verdict"] == HARMLESS and ni["harm_upper"] < ni["margin_abs"]
    assert "3 vs 3 replicates" in stdout
    # the printed sensitivity line is the JSON's, and without shown sensitivity no dose is harmless
    assert ("sensitivity shown" in stdout) == tests["sensitive"]
    if not tests["sensitive"]:
        assert all(d["verdict"] != HARMLESS for d in tests["doses"])

    # the printed command reruns the same tests on the written manifest
    rerun = tmp_path / "rerun"
    model = ["--model", DEMO_MODEL]
    code, _, stderr = run_main(["dose-response", out / "doses.csv", "--out", rerun, *model], capsys)
    assert code == 0, stderr
    again = json.loads((rerun / "dose_response.json").read_text())["dose_tests"]
    assert [d["verdict"] for d in again["doses"]] == [d["verdict"] for d in tests["doses"]]
