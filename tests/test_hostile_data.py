"""Hostile image data (issue 14): no silent wrong answers, bounded overlay memory, outputs with
the user's umask."""

from __future__ import annotations

import csv
import os
import stat
import zipfile

import numpy as np
import pytest
import tifffile
from hostile_support import (
    SYNTH_MODEL,
    expect_refusal,
    run_cli_subprocess,
    run_main,
    write_field,
)

FAST = ["--model", SYNTH_MODEL, "--mode", "exact", "--stride", "32", "--quiet"]


def _predict(path, capsys, *extra) -> list[dict]:
    code, out, err = run_main(["predict", path, *FAST, "--json", *extra], capsys)
    assert code == 0, err
    import json

    return json.loads(out)


# --- float images near float32's limit ----------------------------------------------------------


@pytest.mark.parametrize(("dtype", "peak"), [(np.float32, 2.5e38), (np.float32, 3.0e38), (np.float64, 1e300)])
def test_huge_finite_floats_give_the_same_answer_as_the_image_scaled_down(tmp_path, capsys, dtype, peak):
    image = write_field(tmp_path / "x.tif", dose=0.7).astype(np.float64)
    tifffile.imwrite(tmp_path / "unit.tif", (image / image.max()).astype(dtype))
    tifffile.imwrite(tmp_path / "huge.tif", (image / image.max() * peak).astype(dtype))
    assert np.isfinite(tifffile.imread(tmp_path / "huge.tif")).all()
    unit, huge = _predict(tmp_path / "unit.tif", capsys), _predict(tmp_path / "huge.tif", capsys)
    assert np.isfinite(huge[0]["mean_sick_probability"])
    assert huge[0]["mean_sick_probability"] == pytest.approx(unit[0]["mean_sick_probability"], abs=1e-4)
    assert huge[0]["label"] == unit[0]["label"]


def test_a_nan_result_is_an_error_never_a_class(tmp_path, capsys, monkeypatch):
    """With the rescaling switched off the model's NaN must be refused, not reported as healthy."""
    import phototox.io.images

    monkeypatch.setattr(phototox.io.images, "SAFE_MAGNITUDE", float("inf"))
    image = write_field(tmp_path / "x.tif").astype(np.float64)
    tifffile.imwrite(tmp_path / "huge.tif", (image / image.max() * 2.5e38).astype(np.float32))
    # exact mode only: dense mode now conditions tiles in float64 and stays finite even unscaled
    for mode in ("exact",):
        expect_refusal(
            ["predict", tmp_path / "huge.tif", "--model", SYNTH_MODEL, "--mode", mode, "--quiet"],
            tmp_path,
            capsys,
            names=("huge.tif",),
            problem="NaN",
        )


def test_check_finite_refuses_nan():
    from phototox.maps.inference import NotANumberError, check_finite

    assert check_finite(np.array([0.2, 0.9]), "m").tolist() == [0.2, 0.9]
    with pytest.raises(NotANumberError, match="1 of 2"):
        check_finite(np.array([0.2, np.nan]), "m")


# --- TIFF layouts ---------------------------------------------------------------------------------


def _rgb(tmp_path) -> np.ndarray:
    grey = write_field(tmp_path / "grey.tif")
    return np.stack([grey, grey // 2, grey // 3 + 1000]).astype(np.uint16)  # channels differ


def test_planar_rgb_tiff_is_colour_not_three_frames(tmp_path, capsys):
    planes = _rgb(tmp_path)
    tifffile.imwrite(tmp_path / "planar.tif", planes, photometric="rgb", planarconfig="separate")
    tifffile.imwrite(tmp_path / "contig.tif", np.moveaxis(planes, 0, -1), photometric="rgb")
    expect_refusal(["predict", tmp_path / "planar.tif"], tmp_path, capsys, names=("planar.tif",), problem="colour")
    planar = _predict(tmp_path / "planar.tif", capsys, "--colour", "luminance")
    contig = _predict(tmp_path / "contig.tif", capsys, "--colour", "luminance")
    assert len(planar) == 1, "a planar RGB image is one frame"
    assert planar[0]["mean_sick_probability"] == pytest.approx(contig[0]["mean_sick_probability"], abs=1e-6)


def test_grey_stack_of_three_frames_stays_three_frames(tmp_path, capsys):
    planes = _rgb(tmp_path)
    tifffile.imwrite(tmp_path / "stack.tif", planes, photometric="minisblack")
    rows = _predict(tmp_path / "stack.tif", capsys)
    assert [r["frame"] for r in rows] == [0, 1, 2]


@pytest.mark.parametrize("second", ["other size", "other dtype"])
def test_multi_page_tiff_of_mixed_pages_is_refused(tmp_path, capsys, second):
    grey = write_field(tmp_path / "grey.tif")
    other = grey[:230, :240] if second == "other size" else grey.astype(np.float32)
    with tifffile.TiffWriter(tmp_path / "mixed.tif") as tif:
        tif.write(grey, photometric="minisblack")
        tif.write(other, photometric="minisblack")
    expect_refusal(
        ["predict", tmp_path / "mixed.tif"],
        tmp_path,
        capsys,
        names=("mixed.tif", "2 images"),
        problem="different sizes or pixel types",
    )


def test_multi_channel_hyperstack_is_refused(tmp_path, capsys):
    grey = write_field(tmp_path / "grey.tif")
    tifffile.imwrite(tmp_path / "channels.tif", np.stack([grey, grey // 2]), imagej=True, metadata={"axes": "CYX"})
    expect_refusal(
        ["predict", tmp_path / "channels.tif"],
        tmp_path,
        capsys,
        names=("channels.tif", "2 channels"),
        problem="one grey",
    )


# --- bounded memory for long images ----------------------------------------------------------------

OVERLAY_RSS_BOUND_MB = 1000
"""Peak RSS allowed for mapping a 12000 x 220 image (child's VmHWM 530 MB, also beside a 2 GB parent; ~2.6 GB before the overlay cap)."""


@pytest.mark.slow
def test_long_thin_map_memory_is_bounded(tmp_path):
    from phototox.synth.fields import render_field

    field = render_field(220, 1500, 0.5, seed=2).image
    tifffile.imwrite(tmp_path / "long.tif", np.tile(field.T, (8, 1))[:12000], photometric="minisblack")
    code, err, peak_kb = run_cli_subprocess(
        ["map", "long.tif", "--out", "o", "--model", SYNTH_MODEL, "--mode", "exact", "--stride", "1000", "--quiet"],
        tmp_path,
    )
    assert code == 0, err
    assert 0 < peak_kb < OVERLAY_RSS_BOUND_MB * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    import imageio.v3 as iio

    overlay = iio.imread(tmp_path / "o" / "long_overlay.png")
    assert overlay.shape[0] * overlay.shape[1] < 4_000_000  # bounded picture, still readable
    assert min(overlay.shape[:2]) > 300


def test_overlay_of_a_long_image_is_bounded_and_says_it_is_stretched(tmp_path):
    from phototox.results.plots import plot_map_overlay

    rng = np.random.default_rng(0)
    frame = rng.random((20000, 220), dtype=np.float32)
    smooth = np.repeat(np.linspace(0, 1, 20000, dtype=np.float32)[:, None], 220, axis=1)
    plot_map_overlay(frame, smooth, tmp_path / "o.png", "t", threshold=0.5)
    import imageio.v3 as iio

    height, width = iio.imread(tmp_path / "o.png").shape[:2]
    assert height < 4000 and width < 1500


# --- permissions: the user's umask ----------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_users_umask(tmp_path, capsys, umask, mode):
    write_field(tmp_path / "x.tif")
    old = os.umask(umask)
    try:
        code, _, err = run_main(["map", tmp_path / "x.tif", "--out", tmp_path / "maps", *FAST], capsys)
        assert code == 0, err
        code, _, err = run_main(
            ["synth", "--out", tmp_path / "synth", "--doses", "0", "1", "--per-dose", "1", "--size", "224"], capsys
        )
        assert code == 0, err
        from phototox.io.images import atomic_path

        with atomic_path(tmp_path / "pkg.zip") as tmp, zipfile.ZipFile(tmp, "w") as archive:
            archive.writestr("a.txt", "a")
    finally:
        os.umask(old)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "x.tif"]
    assert len(written) >= 7
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written}
    assert set(modes.values()) == {oct(mode)}, modes
    assert not [p for p in tmp_path.rglob(".*.tmp")], "temporary files left behind"


def test_umask_is_read_without_changing_it():
    from phototox.io.images import current_umask

    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert current_umask() == 0o027
    finally:
        os.umask(old)


def test_synth_manifest_lists_its_files(tmp_path, capsys):
    code, _, err = run_main(
        ["synth", "--out", tmp_path, "--doses", "0", "1", "--per-dose", "1", "--size", "224"], capsys
    )
    assert code == 0, err
    with (tmp_path / "manifest.csv").open() as handle:
        names = [row["path"] for row in csv.DictReader(handle)]
    assert sorted(names) == sorted(p.name for p in tmp_path.glob("*.tif"))
