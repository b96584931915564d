"""``phototox calibrate`` on control fields: new threshold, recorded, used by predict; controls as reference."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile

from phototox.apps.cli import main
from phototox.models.registry import read_registry
from phototox.models.weights import load_weights, sha256_of
from phototox.synth.fields import render_field
from phototox.trust.controls import ControlReference


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
    # conformal: with 4 fields the 5th of 4 held-out scores is wanted, so the max, reaching 1/5
    held_out = after["domain"]["loo_scores"]
    assert after["domain"]["threshold"] == max(held_out) and record["false_alarm_rate"] == 0.2
    assert record["n_fields"] == 4 and "false-alarm rate reachable with 4 fields: 0.200" in capsys.readouterr().out
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
        # a conformal p-value against the held-out control fields, only for the calibrated model
        assert (row["domain_p_value"] == "") == (model == "default")
    assert row["vs_controls"] != "" and float(row["vs_controls_low"]) <= float(row["vs_controls"])
    assert row["vs_controls_verdict"] in ("unlike your controls", "no difference shown")
    out = capsys.readouterr().out
    assert "prediction interval" in out and "sicker than" not in out


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
    # no fine-detail check: the trunk score alone decides (against the conformal threshold, the max of the 4
    # held-out control fields, which this damaged field may exceed)
    assert row["fine_detail_limit"] is None
    assert row["out_of_domain"] == (row["domain_score"] > row["domain_threshold"])
    assert "fine detail" not in captured.err


def test_calibrate_refuses_bad_requests(tmp_path, controls, capsys):
    paths, _ = controls
    assert main(["calibrate", *map(str, paths[:2]), "--out", str(tmp_path / "m.pt")]) == 1
    assert "at least 3" in capsys.readouterr().err
    # the same file twice, a link to it, or six frames of one file: one field each
    link = tmp_path / "link.tif"
    link.symlink_to(paths[0])
    stack = tmp_path / "six_frames.tif"
    tifffile.imwrite(stack, np.stack([render_field(240, 300, 0.0, seed=40 + i).image for i in range(6)]))
    assert main(["calibrate", *map(str, [paths[0], paths[0], link, paths[1]]), "--out", str(tmp_path / "m.pt")]) == 1
    err = capsys.readouterr().err  # one file listed twice (or through a link) is refused as a mistake
    assert ("given twice" in err or "same file" in err) and len(err.strip().splitlines()) == 1
    copy = tmp_path / "copy.tif"
    copy.write_bytes(paths[0].read_bytes())  # an identical copy is the same field, counted once
    for given in ([paths[0], copy, paths[1]], [stack, paths[1]]):
        assert main(["calibrate", *map(str, given), "--out", str(tmp_path / "m.pt")]) == 1
        err = capsys.readouterr().err
        assert "at least 3 control fields" in err and "got 2" in err and len(err.strip().splitlines()) == 1
        assert "is the same field as" in err or stack.name not in err
    assert main(["calibrate", *map(str, paths), "--out", str(tmp_path / "m.txt")]) == 1
    assert (
        main(["calibrate", str(paths[0]), str(paths[1]), str(tmp_path / "nope.tif"), "--out", str(tmp_path / "m.pt")])
        == 1
    )
    assert "nope.tif" in capsys.readouterr().err
    assert not list(tmp_path.glob("m.*"))


def test_control_reference_interval():
    """A prediction interval for one new control field: 'unlike' only outside it, never 'sicker'."""
    ref = ControlReference(np.array([0.10, 0.12, 0.08, 0.11, 0.09]), "test")
    same = ref.compare(0.10)
    assert same["vs_controls_low"] < 0 < same["vs_controls_high"]
    assert same["vs_controls_verdict"] == "no difference shown"
    sicker = ref.compare(0.5)
    assert sicker["vs_controls"] == pytest.approx(0.4) and sicker["vs_controls_low"] > 0.35
    assert sicker["vs_controls_verdict"] == "unlike your controls"
    wide = ControlReference(np.array([0.0, 0.4, 0.1, 0.5]), "test").compare(0.5)
    assert wide["vs_controls_high"] - wide["vs_controls_low"] > sicker["vs_controls_high"] - sicker["vs_controls_low"]
    assert wide["vs_controls_verdict"] == "no difference shown"
    with pytest.raises(Exception, match="at least 2"):
        ControlReference(np.array([0.1]), "one")


def test_a_control_file_is_compared_with_the_other_controls_not_itself(tmp_path):
    paths = [tmp_path / f"c{i}.tif" for i in range(3)]
    ref = ControlReference(np.array([0.10, 0.20, 0.12]), "test", tuple(str(p.resolve()) for p in paths))
    own = ref.compare(0.20, paths[1])
    assert own == ControlReference(np.array([0.10, 0.12]), "others").compare(0.20)
    assert own["vs_controls"] == pytest.approx(0.09)
    assert ref.compare(0.20)["vs_controls"] == pytest.approx(0.20 - 0.14)  # another file: all three
    two = ControlReference(np.array([0.1, 0.2]), "two", (str(paths[0].resolve()), str(paths[1].resolve())))
    alone = two.compare(0.1, paths[0])
    assert alone["vs_controls_low"] is None and alone["vs_controls_verdict"].startswith("cannot test")


def test_frames_of_a_test_file_are_one_field_against_the_controls(varying_predictor):
    """Every frame of one analysed stack carries the comparison of the stack's mean with the controls."""
    from phototox.maps.settings import MapSettings
    from phototox.trust.assess import Assessor, control_lines

    assessor = Assessor(varying_predictor, warn=lambda line: None, domain_check=False)
    assessor.controls = ControlReference(np.array([0.10, 0.12, 0.08]), "test")
    stack = np.stack([render_field(240, 260, dose, seed=5).image.astype(np.float32) for dose in (0.0, 1.0)])
    results = assessor.analyse(stack, MapSettings(stride=32), assessor.pixel_size(0.434), "stack.tif")
    field = float(np.mean([r.mean_sick_probability for r in results]))
    assert {r.trust.vs_controls for r in results} == {round(field - 0.10, 4)}
    rows = [
        {"path": "stack.tif", "frame": i, "mean_sick_probability": r.mean_sick_probability, **r.trust.as_dict()}
        for i, r in enumerate(results)
    ]
    lines = control_lines(rows)
    assert len(lines) == 2 and "mean of 2 frames" in lines[1] and "never 'sicker'" in lines[0]


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_calibrate_refuses_controls_that_are_not_fields_of_cells(tmp_path, controls, capsys, kind):
    """A blank or noise-only 'control' would teach the domain check that such images are normal (issue #23)."""
    paths, _ = controls
    bad = tmp_path / f"{kind}.tif"
    rng = np.random.default_rng(1)
    pixels = np.full((240, 300), 1000.0) if kind == "blank" else rng.normal(1000, 50, (240, 300))
    tifffile.imwrite(bad, pixels.astype(np.float32))
    out = tmp_path / "m.pt"
    given = [*map(str, paths[:3]), str(bad), "--pixel-size", "0.434"]
    assert main(["calibrate", *given, "--out", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and f"{kind}.tif" in err[0] and "not usable as a control" in err[0] and "nearly empty" in err[0]
    )
    assert not out.exists() and not out.with_name("m.pt.sha256").exists()


def test_calibrate_refuses_a_control_whose_contrast_is_inverted_against_the_others(tmp_path, controls, capsys):
    """One inverted control among normal ones: refused, naming it; all inverted alike is a contrast method."""
    from phototox.trust.quality import intensity_skew

    paths, _ = controls
    frame = tifffile.imread(paths[3]).astype(np.float32)
    inverted = tmp_path / "inverted.tif"
    tifffile.imwrite(inverted, frame.max() + frame.min() - frame)
    assert intensity_skew(frame) * intensity_skew(tifffile.imread(inverted)) < 0  # the fixture's contrast is clear
    out = tmp_path / "m.pt"
    given = [*map(str, paths[:3]), str(inverted), "--pixel-size", "0.434", "--out", str(out), "--device", "cpu"]
    assert main(["calibrate", *given]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "inverted.tif" in err[0] and "inverted against the other controls" in err[0]
    assert not out.exists()


def test_intensity_skew_flips_with_the_contrast():
    rng = np.random.default_rng(0)
    halos = rng.normal(100, 5, (200, 200))
    halos[rng.random((200, 200)) < 0.03] += 80  # sparse bright halos: a bright tail
    from phototox.trust.quality import intensity_skew

    assert intensity_skew(halos) > 0.5 > -0.5 > intensity_skew(-halos)
    assert intensity_skew(np.full((50, 50), 3.0)) == 0.0
