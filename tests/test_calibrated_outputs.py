"""Map TIFFs carry the pixel size (TIFF, ImageJ and what ImageJ reads); overlays are drawn to scale."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile

from phototox.apps.cli import main
from phototox.results.outputs import map_tiff_tags
from phototox.results.plots import plot_map_overlay, scale_bar_um

IJ_JAR = Path("/usr/share/java/ij.jar")


@pytest.fixture(scope="module")
def calibrated_map(tiny_model_path, tmp_path_factory) -> Path:
    """``phototox map --pixel-size 0.65`` on a synthetic field; the map TIFF it wrote."""
    from phototox.synth.fields import render_field

    work = tmp_path_factory.mktemp("calibrated")
    image = work / "field.tif"
    tifffile.imwrite(image, render_field(260, 300, 0.7, seed=8).image)
    args = ["map", str(image), "--model", str(tiny_model_path), "--out", str(work / "out"), "--device", "cpu"]
    assert main([*args, "--pixel-size", "0.65", "--stride", "16", "--quiet"]) == 0
    return work / "out" / "field_map.tif"


def test_map_tiff_carries_the_pixel_size_in_tiff_and_imagej_tags(calibrated_map):
    with tifffile.TiffFile(calibrated_map) as tif:
        page = tif.pages[0]
        assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        for tag in ("XResolution", "YResolution"):
            numerator, denominator = page.tags[tag].value
            assert numerator / denominator == pytest.approx(1e4 / 0.65, rel=1e-6)  # pixels per cm
        ij = tif.imagej_metadata
        assert ij is not None and ij["unit"] == "um"
        info = json.loads(ij["Info"])
        assert info["pixel_size_um"] == "0.65" and info["pixel_size_source"] == "user"
        assert info["model_sha256"] and info["phototox_version"]
        assert ij["Properties"]["phototox_pixel_size_source"] == "user"
        assert page.asarray().dtype == np.float32


def test_map_tiff_without_a_pixel_size_is_uncalibrated_and_says_so():
    tags = map_tiff_tags(False, None, None, {"model_name": "m"})
    assert "resolution" not in tags and "unit" not in tags["metadata"]
    assert json.loads(tags["metadata"]["Info"])["pixel_size_um"] == "unknown"


@pytest.mark.skipif(
    not IJ_JAR.is_file() or shutil.which("xvfb-run") is None, reason="ImageJ (libij-java) or xvfb-run missing"
)
def test_imagej_reads_the_map_tiff_in_microns(calibrated_map, tmp_path):
    """The real ImageJ 1.x opens the map and ``getPixelSize`` reports 0.65 µm."""
    macro = tmp_path / "px.ijm"
    macro.write_text(
        f'open("{calibrated_map}");\ngetPixelSize(unit, pw, ph);\n'
        'print("PX " + unit + " " + d2s(pw, 6) + " " + d2s(ph, 6) + " " + bitDepth());\n'
    )
    command = ["xvfb-run", "-a", "java", "-cp", str(IJ_JAR), "ij.ImageJ", "-batch", str(macro)]  # open() needs X
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "PX µm 0.650000 0.650000 32" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_scale_bar_length_is_round_and_a_tenth_to_a_quarter_of_the_field():
    assert scale_bar_um(1280 * 0.434) == 100
    assert scale_bar_um(300 * 0.65) == 20  # 195 µm field: 20 µm (10%) is nearer 15% than 50 µm (26%)
    for width in (3.0, 47.0, 555.0, 891.0, 12345.0):
        length = scale_bar_um(width)
        mantissa = length / 10 ** np.floor(np.log10(length))
        assert 0.10 <= length / width <= 0.25 and round(mantissa, 6) in (1, 2, 5)


def _white_runs(png: Path) -> int:
    """Longest horizontal run of pure-white pixels between image margins (the scale bar)."""
    import imageio.v3 as iio

    rgb = iio.imread(png)[..., :3]
    white = (rgb >= 250).all(axis=2)
    columns = white.all(axis=0)
    first_drawn = int(np.argmin(columns))
    white = white[:, : first_drawn + int(np.argmax(columns[first_drawn:]))]  # left of the colour bar
    best = 0
    for row in white:
        padded = np.concatenate([[0], row.astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(padded))
        if edges.size:
            inner = [(b - a) for a, b in zip(edges[::2], edges[1::2], strict=True) if a > 0 and b < row.size]
            best = max([best, *inner])
    return best


def _titles(monkeypatch) -> list[str]:
    import matplotlib.axes

    titles: list[str] = []
    original = matplotlib.axes.Axes.set_title

    def spy(self, label, *args, **kwargs):
        titles.append(label)
        return original(self, label, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", spy)
    return titles


def test_overlay_is_at_the_images_size_with_a_scale_bar(tmp_path, monkeypatch):
    import imageio.v3 as iio

    titles = _titles(monkeypatch)
    rng = np.random.default_rng(1)
    frame, ramp = rng.normal(100, 5, (300, 500)), np.tile(np.linspace(0, 1, 500, dtype=np.float32), (300, 1))
    plot_map_overlay(frame, ramp, tmp_path / "o.png", "t", threshold=0.5, pixel_size_um=0.5)
    height, width = iio.imread(tmp_path / "o.png").shape[:2]
    assert 500 < width < 500 + 150 and 300 < height < 300 + 120  # image at 1:1, plus title and colour bar
    assert abs(_white_runs(tmp_path / "o.png") - 100) <= 2  # 250 µm field: a 50 µm bar (20%) = 100 px
    assert titles == ["t"]  # drawn at 100%: no scale stated
    plot_map_overlay(frame, ramp, tmp_path / "n.png", "t", threshold=0.5)
    assert _white_runs(tmp_path / "n.png") < 10  # no pixel size, no bar


def test_overlay_not_at_the_images_size_states_its_scale(tmp_path, monkeypatch):
    titles = _titles(monkeypatch)
    plot_map_overlay(np.ones((100, 160)), np.zeros((100, 160), np.float32), tmp_path / "s.png", "t")
    plot_map_overlay(np.ones((3000, 4000)), np.zeros((3000, 4000), np.float32), tmp_path / "b.png", "t")
    assert "overlay at 200% of the image size" in titles[0]
    assert "overlay at 50% of the image size" in titles[1]
