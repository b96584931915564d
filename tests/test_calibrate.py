"""``phototox calibrate`` on control fields: new threshold, recorded, used by predict; controls as reference."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile

from phototox.apps.cli import main
from phototox.controls import ControlReference
from phototox.models.registry import read_registry
from phototox.models.weights import load_weights, sha256_of
from phototox.synth import render_field


@pytest.fixture(scope="module")
def controls(tmp_path_factory):
    """Four control fields (synthetic, undamaged: out of the shipped model's domain) and a damaged one."""
    folder = tmp_path_factory.mktemp("controls")
    paths = []
    for i in range(4):
        path = folder / f"control{i}.tif"
        tifffile.imwrite(path, render_field(240, 300, 0.0, seed=10 + i).image)
        paths.append(path)
    exposed = folder / "exposed.tif"
    tifffile.imwrite(exposed, render_field(240, 300, 1.0, seed=99).image)
    return paths, exposed


@pytest.mark.slow
def test_calibrate_changes_threshold_and_records_it(tmp_path, controls, capsys):
    paths, exposed = controls
    registry = read_registry()
    shipped, checksum = registry.path(), registry.entry().sha256
    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", *map(str, paths), "--out", str(out), "--pixel-size", "0.434"]) == 0
    assert sha256_of(shipped) == checksum  # the input model is untouched
    before, after = load_weights(shipped).meta, load_weights(out).meta
    record = after["calibration"]
    assert after["domain"]["threshold"] != before["domain"]["threshold"]
    assert record["previous_domain_threshold"] == before["domain"]["threshold"]
    assert record["controls"] == [p.name for p in paths] and len(record["control_p_sick"]) == 4
    assert record["probability_refit"] is False
    assert "user control fields" in after["domain"]["fitted_on"]
    # fine detail: refitted above the controls with room for damaged cells' finer detail
    fine = after["domain"]["fine_detail"]
    assert record["previous_fine_detail_limit"] == before["domain"]["fine_detail"]["limit"]
    assert (
        record["fine_detail_limit"] == fine["limit"] > fine["range"][1] + before["domain"]["fine_detail"]["range_used"]
    )
    # the controls' look is now in domain; with the shipped model it was not
    table = tmp_path / "r.csv"
    for model, expect in (("default", "True"), (str(out), "False")):
        assert (
            main(
                [
                    "predict",
                    str(exposed),
                    "--model",
                    model,
                    "--pixel-size",
                    "0.434",
                    "--stride",
                    "32",
                    "--out",
                    str(table),
                ]
            )
            == 0
        )
        row = next(csv.DictReader(table.open()))
        assert row["out_of_domain"] == expect, model
    assert row["vs_controls"] != "" and float(row["vs_controls_low"]) <= float(row["vs_controls"])
    assert "your controls by" in capsys.readouterr().out


@pytest.mark.slow
def test_calibrating_a_model_without_fine_detail_range_sets_no_fine_detail_limit(tmp_path, controls, capsys):
    """v2 records no fine-detail range: healthy controls alone must not bound it (damage raises it)."""
    import json

    paths, exposed = controls
    out = tmp_path / "v2-calibrated.pt"
    base = ["--model", "shipped:deadnet-gap-celldeath-v2", "--pixel-size", "0.434"]
    assert main(["calibrate", *map(str, paths), "--out", str(out), *base]) == 0
    fine = load_weights(out).meta["domain"]["fine_detail"]
    assert fine["limit"] is None and "no limit" in fine["rule"]
    capsys.readouterr()
    assert main(["predict", str(exposed), "--model", str(out), "--pixel-size", "0.434", "--json"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out)[0]
    assert row["fine_detail_limit"] is None and row["out_of_domain"] is False
    assert "OUT OF DOMAIN" not in captured.err


def test_calibrate_refuses_bad_requests(tmp_path, controls, capsys):
    paths, _ = controls
    assert main(["calibrate", *map(str, paths[:2]), "--out", str(tmp_path / "m.pt")]) == 1
    assert "at least 3" in capsys.readouterr().err
    assert main(["calibrate", *map(str, paths), "--out", str(tmp_path / "m.txt")]) == 1
    assert (
        main(["calibrate", str(paths[0]), str(paths[1]), str(tmp_path / "nope.tif"), "--out", str(tmp_path / "m.pt")])
        == 1
    )
    assert "nope.tif" in capsys.readouterr().err
    assert not list(tmp_path.glob("m.*"))


def test_control_reference_interval():
    ref = ControlReference(np.array([0.10, 0.12, 0.08, 0.11, 0.09]), "test")
    same = ref.compare(0.10)
    assert same["vs_controls_low"] < 0 < same["vs_controls_high"]
    sicker = ref.compare(0.5)
    assert sicker["vs_controls"] == pytest.approx(0.4) and sicker["vs_controls_low"] > 0.35
    wide = ControlReference(np.array([0.0, 0.4, 0.1, 0.5]), "test").compare(0.5)
    assert wide["vs_controls_high"] - wide["vs_controls_low"] > sicker["vs_controls_high"] - sicker["vs_controls_low"]
    with pytest.raises(Exception, match="at least 2"):
        ControlReference(np.array([0.1]), "one")
