"""``--checks none`` and the dense engine are stated in every output: JSON, CSV, the map TIFF's provenance."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json

import numpy as np
import pytest
import tifffile

from phototox.apps.cli import main
from phototox.maps.dense import dense_sick_grid, tile_spans

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from phototox.synth.fields import render_field

    path = tmp_path_factory.mktemp("img") / "field.tif"
    tifffile.imwrite(path, (render_field(260, 300, 0.5, seed=2).image * 200).astype(np.uint16))
    return path


def _rows(tmp_path, image, capsys, *options: str) -> tuple[list[dict], list[dict]]:
    out = tmp_path / "rows.csv"
    args = ["predict", str(image), "--pixel-size", "0.434", "--stride", "32", "--quiet", "--json", "--out", str(out)]
    assert main([*args, *options]) == 0
    as_json = json.loads(capsys.readouterr().out)
    with out.open(newline="") as handle:
        return as_json, list(csv.DictReader(handle))


def test_checks_none_is_marked_and_skips_every_check(tmp_path, image, capsys):
    as_json, as_csv = _rows(tmp_path, image, capsys, "--checks", "none")
    assert as_json[0]["checks"] == as_csv[0]["checks"] == "none"
    for name in ("domain_score", "out_of_domain", "fine_detail", "out_of_focus", "saturated", "nearly_empty"):
        assert as_json[0][name] is None and as_csv[0][name] == "", name
    assert as_json[0]["mean_sick_probability"] is not None


def test_checks_all_is_the_default_and_marked(tmp_path, image, capsys):
    as_json, as_csv = _rows(tmp_path, image, capsys)
    assert as_json[0]["checks"] == as_csv[0]["checks"] == "all"
    assert as_json[0]["domain_score"] is not None and as_json[0]["out_of_focus"] is not None


@pytest.mark.parametrize(
    "engine, ran",
    [
        ("torch", "torch"),
        pytest.param("onnx", "onnxruntime", marks=pytest.mark.skipif(not HAS_ORT, reason="no onnxruntime")),
    ],
)
def test_engine_is_named_in_json_csv_and_map_provenance(tmp_path, image, capsys, engine, ran):
    as_json, as_csv = _rows(tmp_path, image, capsys, "--engine", engine)
    assert as_json[0]["engine"] == as_csv[0]["engine"] == ran
    out = tmp_path / "maps"
    assert main(["map", str(image), "--pixel-size", "0.434", "--stride", "32", "--quiet", "--no-overlay",
                 "--engine", engine, "--checks", "none", "--out", str(out)]) == 0  # fmt: skip
    with tifffile.TiffFile(next(out.glob("*_map.tif"))) as tif:
        info = json.loads(tif.imagej_metadata["Info"])
    assert info["engine"] == ran and info["checks"] == "none"


def test_even_tiles_cover_every_window_once_and_are_balanced():
    for n in range(1, 130):
        for tile in (1, 2, 3, 7, 48):
            spans = tile_spans(n, tile)
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
            lengths = [b - a for a, b in spans]
            assert max(lengths) <= tile and max(lengths) - min(lengths) <= 1
            assert len(spans) == -(-n // tile)  # as few tiles as fixed-size tiles


def test_even_tiles_give_the_untiled_map(varying_predictor):
    """Any even tiling gives the map of one whole-frame tile (each window is computed whole in one tile)."""
    from phototox.synth.fields import render_field

    field = render_field(220 + 16 * 13, 220 + 16 * 9, 0.7, seed=3).image.astype(np.float32)
    module = varying_predictor.model.module
    whole = dense_sick_grid(module, field, 16, "global", tile_windows=100, engine="torch")
    for tile in (4, 5, 6):
        assert (
            np.abs(dense_sick_grid(module, field, 16, "global", tile_windows=tile, engine="torch") - whole).max()
            <= 1e-6
        )
    assert whole.std() > 1e-3
