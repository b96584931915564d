"""Plates: layouts, per-well/per-plate summaries and a heat map with one cell per well (issue 17)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from phototox.errors import ManifestError
from phototox.screens.plates import (
    join_rows,
    layout_from_folder,
    parse_well,
    plate_shape,
    plot_plate_heatmap,
    read_layout,
    summarise_plates,
    summarise_wells,
)

SYNTH_MODEL = "shipped:deadnet-gap-synthetic-v2"
WELLS = {"B02": 0.0, "B03": 1.0, "C05": 0.3, "D11": 0.9, "G12": 0.6}


def _read(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def plate_layout(tmp_path_factory) -> Path:
    """Five wells of a 96-well plate, two fields each, two time points; doses differ by well."""
    import tifffile

    from phototox.synth.fields import render_field

    folder = tmp_path_factory.mktemp("plate")
    rows = []
    for w, (well, dose) in enumerate(WELLS.items()):
        for field in (1, 2):
            for time in (0, 1):
                name = f"img_{well}_s{field}_t{time}.tif"
                image = render_field(240, 240, min(1.0, dose * (0.5 + time)), seed=100 * w + 10 * field + time).image
                tifffile.imwrite(folder / name, image, photometric="minisblack")
                rows.append({"path": name, "plate": "P1", "well": well, "field": field, "time": time})
    with (folder / "layout.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder / "layout.csv"


def test_wells_and_plate_formats():
    assert parse_well("B03", "x") == (1, 2) and parse_well("b3", "x") == (1, 2) and parse_well("AF48", "x") == (31, 47)
    with pytest.raises(ManifestError, match="layout.csv, line 4: well 'Z0'"):
        parse_well("Z0", "layout.csv, line 4")
    from phototox.screens.plates import Placement

    assert plate_shape([Placement("a", "p", "H12", 7, 11)]) == (8, 12)
    assert plate_shape([Placement("a", "p", "I01", 8, 0)]) == (16, 24)
    with pytest.raises(ManifestError, match="does not fit a 96-well plate"):
        plate_shape([Placement("a", "p", "I01", 8, 0)], 96)


def test_folder_names_give_the_layout(tmp_path):
    for name in ("P7/scan_B03_s2_w1.tif", "P7/scan_B03_s1_w1.tif", "P8/r02c05f03p01-ch1sk4.tiff", "P8/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    got = {(p.plate, p.well, p.field, p.time) for p in layout_from_folder(tmp_path)}
    assert got == {("P7", "B03", "2", ""), ("P7", "B03", "1", ""), ("P8", "B05", "3", "4")}


def test_summaries_and_heatmap_one_cell_per_well(tmp_path, rng):
    from phototox.screens.plates import Placement

    placements, rows = [], []
    for well in WELLS:
        r, c = parse_well(well, "")
        for field in range(3):
            path = f"{well}_{field}.tif"
            placements.append(Placement(path, "P1", well, r, c, str(field)))
            rows.append(
                {
                    "path": path,
                    "frame": 0,
                    "mean_sick_probability": float(rng.random()),
                    "sick_area_fraction": 0.1,
                    "threshold": 0.5,
                    "model": "m",
                }
            )
    wells = summarise_wells(join_rows(placements, rows))
    matrix = plot_plate_heatmap(wells, (8, 12), tmp_path / "heat.png", "test")
    assert matrix.shape == (8, 12)
    assert np.isfinite(matrix).sum() == len(WELLS)  # one coloured cell per well, the rest empty
    for w in wells:
        r, c = parse_well(w["well"], "")
        fields = [x["mean_sick_probability"] for x in rows if x["path"].startswith(w["well"])]
        assert matrix[r, c] == pytest.approx(np.mean(fields)) and w["n_images"] == 3
        assert w["sd_sick_probability"] == pytest.approx(np.std(fields, ddof=1))
    plate = summarise_plates(wells)
    assert len(plate) == 1 and plate[0]["n_wells"] == len(WELLS)
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "heat.png").ndim == 3


@pytest.mark.slow
def test_plate_command_end_to_end(plate_layout, tmp_path):
    from phototox.apps.cli import main

    out = tmp_path / "out"
    assert (
        main(["plate", str(plate_layout), "--out", str(out), "--model", SYNTH_MODEL, "--device", "cpu", "--quiet"]) == 0
    )
    per_image, per_well, per_plate = (_read(out / f"per_{n}.csv") for n in ("image", "well", "plate"))
    assert len(per_image) == len(read_layout(plate_layout)) == 20
    assert {(w["well"], w["time"]) for w in per_well} == {(w, t) for w in WELLS for t in ("0", "1")}
    assert all(w["n_images"] == "2" for w in per_well)
    assert [p["time"] for p in per_plate] == ["0", "1"] and all(p["n_wells"] == "5" for p in per_plate)
    well_means = {(w["well"], w["time"]): float(w["mean_sick_probability"]) for w in per_well}
    assert well_means[("B03", "1")] > well_means[("B02", "0")] + 0.2  # dosed wells look sicker
    assert sorted(p.name for p in out.glob("*.png")) == ["plate_P1_t0_heatmap.png", "plate_P1_t1_heatmap.png"]
    assert not list(out.glob(".*"))  # no ledger or temporary files left
    assert {r["checks"] for r in per_image} == {"all"}


def test_plate_command_honours_checks_none(plate_layout, tmp_path):
    """--checks none reaches the screens path: every image row says so and carries no domain verdict."""
    from phototox.apps.cli import main

    out = tmp_path / "out"
    args = ["plate", str(plate_layout), "--out", str(out), "--model", SYNTH_MODEL, "--device", "cpu", "--quiet"]
    assert main([*args, "--checks", "none"]) == 0
    per_image = _read(out / "per_image.csv")
    assert len(per_image) == 20 and {r["checks"] for r in per_image} == {"none"}
    assert {r["out_of_domain"] for r in per_image} == {""} and {r["domain_score"] for r in per_image} == {""}


def _joined(wells_by_condition: dict[str, list[float]], plates: int = 1) -> tuple[list[dict], list]:
    """per_image-style rows and placements: each value one well (two fields with the same value)."""
    from phototox.screens.plates import Placement

    joined, placements = [], []
    n = 0
    for condition, values in wells_by_condition.items():
        for i, value in enumerate(values):
            plate = f"P{i % plates}"
            well = f"{'ABCDEFGH'[n // 12]}{n % 12 + 1:02d}"
            n += 1
            for field in ("1", "2"):
                path = f"{well}_{plate}_{field}.tif"
                placements.append(Placement(path, plate, well, 0, 0, field, "", 0, condition))
                joined.append(
                    {
                        "path": path,
                        "plate": plate,
                        "well": well,
                        "field": field,
                        "time": "",
                        "mean_sick_probability": value,
                    }
                )
    return joined, placements


def test_conditions_compare_wells_as_units_and_plates_as_replicates():
    from phototox.screens.plates import compare_conditions
    from phototox.stats.compare import NO_DIFFERENCE, SICKER

    rng = np.random.default_rng(4)
    base = list(0.2 + rng.normal(0, 0.02, 6))
    joined, placements = _joined({"0": base, "1": list(0.2 + rng.normal(0, 0.02, 6)), "2": [b + 0.3 for b in base]})
    rows = {r["condition"]: r for r in compare_conditions(joined, placements, None)}
    assert rows["2"]["two_sided_verdict"] == SICKER and rows["1"]["two_sided_verdict"] == NO_DIFFERENCE
    assert {r["level"] for r in rows.values()} == {"field"} and rows["1"]["n_test"] == 6  # 12 images, 6 wells
    joined, placements = _joined({"0": base, "2": [b + 0.3 for b in base]}, plates=3)
    (row,) = compare_conditions(joined, placements, "0")
    assert (row["level"], row["n_test"], row["n_control"]) == ("replicate", 3, 3)


def test_conditions_without_effect_claim_sicker_rarely():
    from phototox.screens.plates import compare_conditions
    from phototox.stats.compare import SICKER

    rng = np.random.default_rng(8)
    claims = 0
    for _ in range(200):
        joined, placements = _joined({"0": list(0.2 + rng.normal(0, 0.02, 4)), "1": list(0.2 + rng.normal(0, 0.02, 4))})
        claims += compare_conditions(joined, placements, "0")[0]["two_sided_verdict"] == SICKER
    assert claims <= 12  # nominal 2.5% one side of 200; P(X > 12) < 0.01


def test_plate_command_writes_per_condition_table(plate_layout, tmp_path):
    from phototox.apps.cli import main

    condition = {"B02": "0", "C05": "low", "G12": "low", "B03": "high", "D11": "high"}
    rows = _read(plate_layout)
    layout = plate_layout.parent / "layout_conditions.csv"
    with layout.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], "condition"])
        writer.writeheader()
        writer.writerows({**r, "condition": condition[r["well"]]} for r in rows)
    out = tmp_path / "out"
    args = ["plate", str(layout), "--out", str(out), "--model", SYNTH_MODEL, "--device", "cpu", "--quiet"]
    assert main(args) == 0
    table = _read(out / "per_condition.csv")
    assert {(r["time"], r["condition"]) for r in table} == {(t, c) for t in ("0", "1") for c in ("low", "high")}
    assert {r["verdict"] for r in table} == {"cannot test: one field per arm"}  # one control well
