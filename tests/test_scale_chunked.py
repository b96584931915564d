"""Chunked maps of frames larger than one chunk equal the in-memory map (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")

from phototox.errors import PhototoxError
from phototox.maps.settings import MapSettings
from phototox.maps.windows import halo, spans, upsample_block
from phototox.screens import chunked

SYNTH_MODEL = "shipped:deadnet-gap-synthetic-v2"


@pytest.fixture(scope="module")
def predictor():
    from phototox.maps.inference import Predictor

    return Predictor.from_spec(SYNTH_MODEL, "cpu")


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A field with healthy and damaged regions, so window probabilities vary."""
    from phototox.synth.fields import render_field

    left = render_field(520, 300, 0.0, seed=11).image
    right = render_field(520, 300, 1.0, seed=12).image
    return np.concatenate([left, right], axis=1).astype(np.float32)


def test_halo_follows_the_settings():
    for stride in (1, 4, 16, 32, 48, 64):
        h = halo(220, stride, "dense", "local")
        assert h % stride == 0 and h >= 110  # half the 220 px normalisation box, rounded up to the stride
    assert halo(300, 16, "dense", "local") > halo(220, 16, "dense", "local")
    assert halo(220, 32, "exact") == 0  # per-crop normalisation needs no context
    with pytest.raises(PhototoxError, match="normalisation local"):
        halo(220, 32, "dense", "global")


@pytest.mark.parametrize("length,stride,per", [(1000, 32, 5), (221, 16, 3), (4096, 8, 64), (700, 48, 2)])
def test_spans_own_every_window_once_and_align(length, stride, per):
    context = halo(220, stride, "dense")
    parts = spans(length, 220, stride, per, context)
    owned = [i for first, count, _, _ in parts for i in range(first, first + count)]
    assert owned == list(range((length - 220) // stride + 1))
    for first, count, start, stop in parts:
        assert start % stride == 0 and start >= 0 and stop <= length
        assert start <= max(0, first * stride - context)
        assert stop >= min(length, (first + count - 1) * stride + 220 + context)


@pytest.mark.slow
@pytest.mark.parametrize("stride,mode", [(32, "dense"), (16, "dense"), (64, "exact")])
def test_chunked_grid_equals_in_memory_grid(predictor, frame, stride, mode):
    whole = predictor.analyse_frame(frame, MapSettings(stride=stride, mode=mode))
    assert whole.grid.std() > 0.05  # the fixture gives varied outputs, so the comparison can fail
    parts = []
    grid = chunked.chunked_grid(
        predictor, frame, MapSettings(stride=stride, mode=mode), chunk=128, progress=parts.append
    )
    assert len(parts) > 4  # several chunks in each direction
    np.testing.assert_allclose(grid, whole.grid, atol=2e-5)


@pytest.mark.slow
def test_too_small_halo_changes_the_map(predictor, frame, monkeypatch):
    """The guard: with less context than the normalisation box needs, chunk edges show."""
    whole = predictor.dense_grid(frame, 32)
    monkeypatch.setattr(chunked, "halo", lambda *a, **k: 32)
    grid = chunked.chunked_grid(predictor, frame, MapSettings(stride=32), chunk=128)
    assert np.abs(grid - whole).max() > 1e-3


@pytest.mark.slow
def test_chunked_map_writes_the_in_memory_map(predictor, frame, tmp_path, monkeypatch):
    from phototox.screens.zarrio import open_ome_zarr

    monkeypatch.setattr(chunked, "STORE_CHUNK", 256)  # several stored blocks and pyramid levels
    result = chunked.chunked_map(
        predictor, frame, tmp_path / "m.ome.zarr", MapSettings(stride=32), chunk=128, pixel_size_um=0.434
    )
    whole = predictor.analyse_frame(frame, MapSettings(stride=32, mode="dense"))
    lazy = open_ome_zarr(tmp_path / "m.ome.zarr")
    assert lazy.shape == frame.shape and lazy.pixel_size_um == pytest.approx(0.434)
    np.testing.assert_allclose(lazy[:, :], whole.sick_map, atol=2e-5)
    assert result.mean_sick_probability == pytest.approx(whole.mean_sick_probability, abs=1e-5)
    assert result.sick_area_fraction == pytest.approx(whole.sick_area_fraction, abs=1e-3)
    assert result.label == whole.label
    level1 = open_ome_zarr(tmp_path / "m.ome.zarr", level=1)
    assert level1.shape == ((frame.shape[0] + 1) // 2, (frame.shape[1] + 1) // 2)
    assert level1.pixel_size_um == pytest.approx(0.868)
    np.testing.assert_allclose(level1[:4, :4], whole.sick_map[:8, :8].reshape(4, 2, 4, 2).mean(axis=(1, 3)), atol=2e-5)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary folder left behind


def test_upsample_block_matches_upsample_grid(rng):
    from phototox.maps.windows import upsample_grid

    grid = rng.random((7, 9)).astype(np.float32)
    full = upsample_grid(grid, (500, 560), 220, 40)
    for ys, xs in [((0, 500), (0, 560)), ((100, 333), (7, 300)), ((499, 500), (0, 1))]:
        np.testing.assert_allclose(upsample_block(grid, 220, 40, ys, xs), full[ys[0] : ys[1], xs[0] : xs[1]], atol=1e-6)


@pytest.mark.slow
def test_cli_on_an_ome_zarr_input_matches_the_tiff_run(frame, tmp_path, capsys):
    """``phototox map/predict`` on OME-Zarr (chunked) give the numbers of the same image as a TIFF."""
    import csv
    import json

    import tifffile

    from phototox.apps.cli import main
    from phototox.screens.zarrio import open_ome_zarr, write_ome_zarr

    image = frame.astype(np.uint16)
    zarr_in = write_ome_zarr(tmp_path / "field.ome.zarr", image, pixel_size_um=0.5)
    tifffile.imwrite(tmp_path / "field.tif", image, photometric="minisblack")
    common = ["--model", SYNTH_MODEL, "--device", "cpu", "--quiet"]
    assert main(["map", str(zarr_in), "--out", str(tmp_path / "z"), "--chunk", "256", *common]) == 0
    assert main(["map", str(tmp_path / "field.tif"), "--out", str(tmp_path / "t"), "--no-overlay", *common]) == 0
    tiff_map = tifffile.imread(tmp_path / "t" / "field_map.tif")
    zarr_map = open_ome_zarr(tmp_path / "z" / "field.ome_map.ome.zarr")
    assert zarr_map.pixel_size_um == pytest.approx(0.5)
    np.testing.assert_allclose(zarr_map[:, :], tiff_map, atol=2e-5)
    with (tmp_path / "z" / "summary.csv").open() as a, (tmp_path / "t" / "summary.csv").open() as b:
        za, tb = next(csv.DictReader(a)), next(csv.DictReader(b))
    assert float(za["mean_sick_probability"]) == pytest.approx(float(tb["mean_sick_probability"]), abs=1e-5)
    assert za["label"] == tb["label"] and za["windows"] == tb["windows"]
    capsys.readouterr()
    rows = []
    for source in (zarr_in, tmp_path / "field.tif"):
        assert main(["predict", str(source), "--json", *common]) == 0
        rows.append(json.loads(capsys.readouterr().out)[0])
    assert rows[0]["stride"] == rows[1]["stride"] == MapSettings().stride  # the one default stride
    assert rows[0]["mean_sick_probability"] == pytest.approx(rows[1]["mean_sick_probability"], abs=1e-5)
