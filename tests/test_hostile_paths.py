"""Hostile inputs, round two (issue 23, part A): outputs, paths and tables.

Each reproduction is generated in ``tmp_path``: one line naming the file or field, a non-zero
exit, nothing created outside ``--out`` and no input changed (``expect_refusal`` compares the
whole tree before and after).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hostile_support import (
    SYNTH_MODEL,
    expect_refusal,
    run_main,
    small_dataset,
    snapshot,
    write_field,
    write_manifest,
)

from phototox.errors import OutputError, PhototoxError
from phototox.io.planned import check_outputs, is_within, resolved, safe_name, unique_names

NOT_UTF8 = b"\xff\xfe\x00garbage \xe9\n"
"""Bytes that are no UTF-8 text (a UTF-16 mark, then Latin-1)."""


def _model_file(path: Path) -> Path:
    from phototox.models.registry import shipped_dir

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((shipped_dir() / "deadnet-gap-synthetic-v2.pt").read_bytes())
    return path


def _layout(path: Path, rows: list[str], header: str = "path,well,time") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# --- data loss: no output replaces an input, however its path is spelled ----------------------


def test_predict_out_through_a_missing_folder_and_dotdot_is_the_input(tmp_path, capsys):
    write_field(tmp_path / "x.tif")
    line = expect_refusal(
        ["predict", "x.tif", "--out", "nothere/../x.tif"], tmp_path, capsys, ("x.tif",), "overwrite an input", tmp_path
    )
    assert "nothere" in line and not (tmp_path / "nothere").exists()


def test_predict_out_through_a_link_and_dotdot_is_the_input(tmp_path, capsys):
    write_field(tmp_path / "data" / "x.tif")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "data" / "sub").mkdir()
    os.symlink(tmp_path / "data" / "sub", tmp_path / "deep" / "link")
    # deep/link/../x.tif is data/x.tif for the kernel, deep/x.tif lexically
    expect_refusal(
        ["predict", tmp_path / "data" / "x.tif", "--out", tmp_path / "deep" / "link" / ".." / "x.tif"],
        tmp_path,
        capsys,
        ("x.tif",),
        "overwrite an input",
    )


def test_calibrate_out_through_dotdot_is_its_model(tmp_path, capsys):
    model = _model_file(tmp_path / "m.pt")
    for i in range(3):
        write_field(tmp_path / f"c{i}.tif", seed=i)
    expect_refusal(
        ["calibrate", "c0.tif", "c1.tif", "c2.tif", "--model", "m.pt", "--out", "new/../m.pt", "--device", "cpu"],
        tmp_path,
        capsys,
        (str(model.name),),
        "overwrite an input",
        tmp_path,
    )


def test_predict_out_through_a_missing_folder_creates_no_folder(tmp_path, capsys):
    write_field(tmp_path / "x.tif")
    code, _, err = run_main(["predict", "x.tif", "--out", "nothere/../y.csv", "--model", SYNTH_MODEL], capsys, tmp_path)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tif", "y.csv"]


def test_train_refuses_a_manifest_named_like_its_model_card(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "model_card.md", small_dataset(tmp_path))
    expect_refusal(
        ["train", manifest, "--out", tmp_path, "--iterations", "1", "--quiet"],
        tmp_path,
        capsys,
        ("model_card.md",),
        "overwrite an input",
    )


def _annotation_db(path: Path, image: Path):
    from phototox.apps.annotate.db import AnnotationDB

    db = AnnotationDB(path)
    db.add_items([(str(image), 0, 0, 0, 0, 64, "g", 0)])
    annotator, _ = db.create_annotator("ann")
    db.add_vote(db.items()[0].id, annotator.id, "sick")
    return db


def test_annotate_report_refuses_a_database_named_like_it(tmp_path, capsys):
    write_field(tmp_path / "a.tif")
    _annotation_db(tmp_path / "annotation_report.json", tmp_path / "a.tif")
    expect_refusal(
        ["annotate", "report", "--db", "annotation_report.json", "--out", "."],
        tmp_path,
        capsys,
        ("annotation_report.json",),
        "overwrite an input",
        tmp_path,
    )


def test_annotate_export_refuses_a_crop_over_an_item_image(tmp_path, capsys):
    image = tmp_path / "out" / "crops" / "item000001.tif"
    write_field(image)
    _annotation_db(tmp_path / "a.db", image)
    expect_refusal(
        ["annotate", "export", "--db", "a.db", "--out", "out"],
        tmp_path,
        capsys,
        ("item000001.tif",),
        "overwrite an input",
        tmp_path,
    )


def test_calibrate_refuses_a_control_named_like_the_checksum_sidecar(tmp_path, capsys):
    for i in range(2):
        write_field(tmp_path / f"c{i}.tif", seed=i)
    write_field(tmp_path / "cal.pt.sha256.png", seed=3)
    os.rename(tmp_path / "cal.pt.sha256.png", tmp_path / "cal.pt.sha256")
    expect_refusal(
        ["calibrate", "c0.tif", "c1.tif", "cal.pt.sha256", "--out", "cal.pt", "--device", "cpu"],
        tmp_path,
        capsys,
        ("cal.pt.sha256",),
        "overwrite an input",
        tmp_path,
    )


@pytest.mark.parametrize("name", ["audit.json", "audit.md"])
def test_audit_refuses_to_write_over_its_manifest(tmp_path, capsys, name):
    manifest = write_manifest(tmp_path / name, small_dataset(tmp_path))
    expect_refusal(["audit", manifest, "--out", tmp_path], tmp_path, capsys, (name,), "overwrite an input")


def test_audit_refuses_to_write_over_an_image(tmp_path, capsys):
    rows = small_dataset(tmp_path)
    write_field(tmp_path / "audit.png", seed=9)
    manifest = write_manifest(tmp_path / "m.csv", [*rows, ["audit.png", "healthy", "g9", 0.0]])
    expect_refusal(["audit", manifest, "--out", tmp_path], tmp_path, capsys, ("audit.png",), "overwrite an input")


def test_plate_refuses_a_heat_map_over_an_input_named_like_it(tmp_path, capsys, monkeypatch):
    import phototox.apps.scale_commands as commands

    monkeypatch.setattr(commands, "_run", lambda *a, **k: pytest.fail("images read before the outputs were checked"))
    write_field(tmp_path / "plate_plate_heatmap.png")
    write_field(tmp_path / "b.tif", seed=2)
    layout = _layout(tmp_path / "layout.csv", ["plate_plate_heatmap.png,B03,", "b.tif,B04,"])
    expect_refusal(
        ["plate", layout, "--out", tmp_path, "--model", SYNTH_MODEL, "--device", "cpu", "--quiet"],
        tmp_path,
        capsys,
        ("plate_plate_heatmap.png",),
        "overwrite an input",
    )


def test_plate_refuses_a_layout_named_like_a_table(tmp_path, capsys):
    write_field(tmp_path / "a.tif")
    layout = _layout(tmp_path / "per_well.csv", ["a.tif,B03,"])
    expect_refusal(
        ["plate", layout, "--out", tmp_path, "--model", SYNTH_MODEL, "--quiet"],
        tmp_path,
        capsys,
        ("per_well.csv",),
        "overwrite an input",
    )


def test_crossval_refuses_a_manifest_among_its_outputs(tmp_path, capsys):
    rows = [[*r[:3], "r1" if i % 2 else "r2"] for i, r in enumerate(small_dataset(tmp_path))]
    manifest = write_manifest(tmp_path / "crossval.json", rows, ("path", "label", "group", "replicate"))
    expect_refusal(
        ["crossval", manifest, "--split-by", "replicate", "--out", tmp_path, "--iterations", "1", "--quiet"],
        tmp_path,
        capsys,
        ("crossval.json",),
        "overwrite an input",
    )


def test_plan_resolves_without_creating_and_checks_containment(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"x")
    assert resolved(tmp_path / "a" / ".." / "x.tif") == resolved(tmp_path / "x.tif")
    assert is_within(tmp_path / "out" / "a.png", tmp_path / "out")
    assert not is_within(tmp_path / "out" / "t.." / ".." / ".." / "e.png", tmp_path / "out")
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path, tmp_path / "out" / "link")
    assert not is_within(tmp_path / "out" / "link" / "x", tmp_path / "out")  # lexically in, really out
    with pytest.raises(OutputError, match="outside"):
        check_outputs([tmp_path / "out" / "plate_t.." / ".." / ".." / "e.png"], [], root=tmp_path / "out")
    with pytest.raises(OutputError, match="overwrite an input"):
        check_outputs([tmp_path / "out" / "link" / "x.tif"], [tmp_path / "x.tif"], root=tmp_path / "out")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["link", "out", "x.tif"]


# --- path traversal: names from user data stay names ------------------------------------------


def test_names_from_user_data_are_safe_and_injective():
    values = ["x y", "x/y", "x_y", "../../../escaped", "..", ".", "", "A" * 61 + "1", "A" * 61 + "2", "B03", "b03"]
    names = unique_names(values, "value")
    assert len(set(n.lower() for n in names.values())) == len(values)
    for name in names.values():
        assert name and "/" not in name and "\\" not in name and not name.startswith(".")
        assert len(name) <= 70
    assert names["x_y"] == "x_y" and names["B03"] == "B03"  # safe values keep their names
    assert safe_name("x y") != safe_name("x/y")


def test_plate_time_cannot_leave_out(tmp_path):
    from phototox.screens.plates import Placement, write_plate_report

    write_field(tmp_path / "in" / "a.tif")
    placements = [Placement(str(tmp_path / "in" / "a.tif"), "plate", "B03", 1, 2, "", "../../../escaped")]
    rows = [
        {
            "path": placements[0].path,
            "frame": 0,
            "mean_sick_probability": 0.2,
            "sick_area_fraction": 0.1,
            "threshold": 0.5,
            "model": "m",
        }
    ]
    out = tmp_path / "sub" / "out"
    before = snapshot(tmp_path / "in")
    written = write_plate_report(placements, rows, out)
    assert all(is_within(p, out) for p in written)
    assert {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()} == {
        Path("in/a.tif"),
        *(p.relative_to(tmp_path) for p in written),
    }
    assert snapshot(tmp_path / "in") == before
    assert "escaped" in written[-1].name and written[-1].parent == out


def test_plate_heat_map_named_by_a_stack_frame_is_checked_before_writing(tmp_path):
    from phototox.screens.plates import Placement, write_plate_report

    image = tmp_path / "plate_plate_t1_heatmap.png"  # the heat map of frame 1, known only after reading
    write_field(image)
    placements = [Placement(str(image), "plate", "B03", 1, 2)]
    row = {"path": str(image), "mean_sick_probability": 0.2, "sick_area_fraction": 0.1, "threshold": 0.5, "model": "m"}
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="plate_plate_t1_heatmap.png.*overwrite an input"):
        write_plate_report(placements, [{**row, "frame": 0}, {**row, "frame": 1}], tmp_path)
    assert snapshot(tmp_path) == before


# --- silent wrong answers ---------------------------------------------------------------------


def test_crossval_folds_of_colliding_values_get_distinct_folders(tmp_path):
    from phototox.training.crossval import Fold, fold_dirs

    values = ["x y", "x/y", "x_y", "p" * 60 + "-one", "p" * 60 + "-two"]
    dirs = fold_dirs([Fold(v, (), ()) for v in values], tmp_path)
    assert len(set(dirs.values())) == len(values)
    assert all(d.parent == tmp_path for d in dirs.values())


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (["a.tif,B03,", "a.tif,C04,"], "two wells"),
        (["a.tif,B03,", "b.tif,B04,", "a.tif,B03,"], "listed twice"),
        (["a.tif,B03,", "./a.tif,B03,"], "listed twice"),
    ],
)
def test_plate_layout_places_each_image_once(tmp_path, capsys, rows, problem):
    write_field(tmp_path / "a.tif")
    write_field(tmp_path / "b.tif", seed=2)
    layout = _layout(tmp_path / "layout.csv", rows)
    line = expect_refusal(
        ["plate", layout, "--out", tmp_path / "out", "--model", SYNTH_MODEL, "--quiet"],
        tmp_path,
        capsys,
        ("layout.csv", "line 2"),
        problem,
    )
    assert f"line {len(rows) + 1}" in line


def test_plate_layout_refuses_a_hard_link_in_a_second_well(tmp_path, capsys):
    write_field(tmp_path / "a.tif")
    os.link(tmp_path / "a.tif", tmp_path / "a2.tif")
    layout = _layout(tmp_path / "layout.csv", ["a.tif,B03,", "a2.tif,C04,"])
    expect_refusal(
        ["plate", layout, "--out", tmp_path / "out", "--quiet"], tmp_path, capsys, ("layout.csv",), "two wells"
    )


@pytest.mark.parametrize(
    ("rows", "extra", "names", "problem"),
    [
        (["missing.tif,B03,"], [], ("layout.csv", "line 2", "missing.tif"), "no such file"),
        (["a.tif,Z99,"], [], ("layout.csv", "line 2", "row 26, column 99"), "outside a 1536-well plate"),
        (["a.tif,B3x,"], [], ("layout.csv", "line 2", "B3x"), "not like B03"),
        (["a.tif,P24,"], ["--plate-format", "96"], ("layout.csv", "P24"), "does not fit a 96-well plate"),
        ([",B03,"], [], ("layout.csv", "line 2"), "empty path"),
    ],
)
def test_plate_layout_errors_come_before_any_image_is_read(tmp_path, capsys, monkeypatch, rows, extra, names, problem):
    import phototox.apps.scale_commands as commands

    write_field(tmp_path / "a.tif")
    layout = _layout(tmp_path / "layout.csv", rows)
    monkeypatch.setattr(commands, "_run", lambda *a, **k: pytest.fail("images read before the layout was checked"))
    expect_refusal(["plate", layout, "--out", tmp_path / "out", *extra, "--quiet"], tmp_path, capsys, names, problem)


def test_plate_layout_row_column_without_numbers_is_one_line(tmp_path, capsys):
    write_field(tmp_path / "a.tif")
    layout = _layout(tmp_path / "layout.csv", ["a.tif,,", "a.tif,99999999999,2"], "path,row,column")
    expect_refusal(["plate", layout, "--out", tmp_path / "out"], tmp_path, capsys, ("line 2",), "whole numbers")


@pytest.mark.parametrize("spelling", ["same", "symlink", "hardlink", "dotted"])
def test_calibrate_refuses_a_control_given_twice(tmp_path, capsys, spelling):
    for i in range(2):
        write_field(tmp_path / f"c{i}.tif", seed=i)
    twin = {"same": "c0.tif", "dotted": "./c0.tif", "symlink": "l.tif", "hardlink": "h.tif"}[spelling]
    if spelling == "symlink":
        os.symlink(tmp_path / "c0.tif", tmp_path / "l.tif")
    elif spelling == "hardlink":
        os.link(tmp_path / "c0.tif", tmp_path / "h.tif")
    expect_refusal(
        ["calibrate", "c0.tif", "c1.tif", twin, "--out", "cal.pt", "--device", "cpu"],
        tmp_path,
        capsys,
        (str(Path(twin)),),
        "list each image once",
        tmp_path,
    )


def _timecourse_inputs(root: Path, doses: str) -> list:
    import tifffile

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        tifffile.imwrite(
            root / f"{name}.tif", rng.integers(0, 4000, (4, 80, 80), dtype=np.uint16), photometric="minisblack"
        )
    (root / "doses.csv").write_bytes(doses.encode("utf-8") if isinstance(doses, str) else doses)
    return ["timecourse", "a.tif", "b.tif", "--doses", "doses.csv", "--out", "out", "--interval", "10"]


def test_doses_frames_beyond_the_series_are_refused(tmp_path, capsys):
    doses = (
        "field,irradiance_mW_per_cm2,exposure_ms,wavelength_nm,frames\na,0,50,488,\nb,100,50,488,1000000000000000000\n"
    )
    args = _timecourse_inputs(tmp_path, doses)
    expect_refusal(
        [*args, "--pixel-size", "1", "--no-sickness", "--quiet"],
        tmp_path,
        capsys,
        ("doses.csv", "line 3", "frames 1000000000000000000"),
        "more than the 4 frames",
        tmp_path,
    )


# --- tables validated before work ---------------------------------------------------------------


def test_doses_file_not_utf8_is_refused_before_any_frame_is_read(tmp_path, capsys, monkeypatch):
    import phototox.timecourse.pipeline as pipeline

    args = _timecourse_inputs(tmp_path, b"field,irradiance_mW_per_cm2,exposure_ms,wavelength_nm\n" + NOT_UTF8)
    monkeypatch.setattr(pipeline, "read_field", lambda *a, **k: pytest.fail("frames read before the doses"))
    expect_refusal(
        [*args, "--pixel-size", "1", "--no-sickness", "--quiet"],
        tmp_path,
        capsys,
        ("doses.csv", "line 2"),
        "not UTF-8",
        tmp_path,
    )


def test_layout_not_utf8_is_one_line(tmp_path, capsys):
    (tmp_path / "layout.csv").write_bytes(b"path,well\n" + NOT_UTF8)
    expect_refusal(
        ["plate", "layout.csv", "--out", "out"], tmp_path, capsys, ("layout.csv", "line 2"), "not UTF-8", tmp_path
    )


def test_manifest_not_utf8_is_one_line(tmp_path, capsys):
    (tmp_path / "m.csv").write_bytes(b"path,label\na.tif,sick\n" + NOT_UTF8)
    expect_refusal(["audit", "m.csv"], tmp_path, capsys, ("m.csv", "line 3"), "not UTF-8", tmp_path)


@pytest.mark.parametrize(
    "content",
    [NOT_UTF8, b'{"settings": {}}\n', b"[1, 2]\n", b'"text"\n', b"null\n"],
    ids=["binary", "other-settings", "list", "string", "null"],
)
def test_foreign_ledger_is_one_line(tmp_path, content):
    from phototox.screens.ledger import Ledger

    (tmp_path / "l.jsonl").write_bytes(content)
    with pytest.raises(PhototoxError, match=r"l\.jsonl: ") as info:
        Ledger(tmp_path / "l.jsonl", {"model": "m"})
    assert "\n" not in str(info.value)


def test_ledger_skips_lines_that_are_no_records(tmp_path):
    from phototox.screens.ledger import Ledger

    fingerprint = {"model": "m"}
    path = tmp_path / "l.jsonl"
    Ledger(path, fingerprint).record("k1", [{"a": 1}])
    with path.open("a") as handle:
        handle.write('[1]\n{"key": 5, "rows": []}\n{"key": "k2", "rows": [3]}\n{"key": "k3"}\n')
    assert Ledger(path, fingerprint).done == {"k1": [{"a": 1}]}


@pytest.mark.parametrize(
    ("option", "value"),
    [("--mitosis-min-diameter", "-5"), ("--mitosis-max-diameter", "nan"), ("--mitosis-max-minutes", "0")],
)
def test_mitosis_settings_must_be_positive(tmp_path, capsys, option, value):
    write_field(tmp_path / "a.tif")
    expect_refusal(
        ["timecourse", "a.tif", "--out", "out", option, value], tmp_path, capsys, (option,), "positive", tmp_path
    )


def test_mitosis_min_diameter_below_max(tmp_path, capsys):
    expect_refusal(
        ["timecourse", "a.tif", "--out", "out", "--mitosis-min-diameter", "80"],
        tmp_path,
        capsys,
        ("--mitosis-min-diameter", "--mitosis-max-diameter"),
        "below",
        tmp_path,
    )


def test_two_channel_image_is_described_as_two_channels(tmp_path, capsys):
    import tifffile

    image = np.random.default_rng(0).integers(0, 4000, (280, 300, 2), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "yxc.tif", image, photometric="minisblack", planarconfig="contig")
    line = expect_refusal(["predict", "yxc.tif"], tmp_path, capsys, ("yxc.tif", "300x280 px"), "2 channels", tmp_path)
    assert "2x" not in line


def test_one_channel_yxc_image_is_grey():
    from phototox.io.images import as_grey_frames

    image = np.random.default_rng(0).integers(0, 4000, (240, 250, 1), dtype=np.uint16)
    assert as_grey_frames(image).shape == (1, 240, 250)


@pytest.mark.parametrize("twin", ["bob", " Bob ", "B\u043eb", "\uff22\uff4f\uff42", "Bo\u200bb", "B0b"])
def test_look_alike_annotator_names_are_refused(tmp_path, twin):
    import sqlite3

    from phototox.apps.annotate.db import AnnotationDB, LookalikeNameError

    db = AnnotationDB(tmp_path / "a.db")
    db.create_annotator("Bob")
    with pytest.raises(LookalikeNameError, match="looks like the existing name 'Bob'") as info:
        db.create_annotator(twin)
    assert isinstance(info.value, sqlite3.IntegrityError)  # the server's "name taken" answer
    assert [a.name for a in db.annotators()] == ["Bob"]
    db.create_annotator("Rob")
