"""Sickness maps: exact vs dense, geometry, tiling, the `phototox map` command."""

import json

import numpy as np
import pytest
import tifffile
from conftest import VARYING_MODEL

from phototox.apps.cli import main
from phototox.errors import PhototoxError
from phototox.maps.inference import object_means, summarise_map
from phototox.maps.settings import MapSettings, check_dense_stride
from phototox.maps.windows import upsample_grid
from phototox.synth.fields import render_field
from phototox.trust.assess import TRUST_FIELDS, Assessor


@pytest.fixture(scope="module")
def predictor(varying_predictor):
    return varying_predictor  # outputs vary (0.01-0.9), so a wrong map fails these tests


@pytest.fixture(scope="module")
def field():
    return render_field(220 + 16 * 4, 220 + 16 * 6, 0.6, seed=11).image.astype(np.float32)


def test_dense_equals_exact_on_a_single_window(predictor, field):
    one = field[:220, :220]
    exact = predictor.exact_grid(one, 16)
    dense = predictor.dense_grid(one, 16)
    assert exact.shape == dense.shape == (1, 1)
    assert abs(float(exact[0, 0]) - float(dense[0, 0])) < 1e-5  # measured 2e-7


# Dense vs exact agreement, known answers per window and tiling: tests/test_maps_known_answers.py
# (on a model whose outputs vary, at measured tolerances).


def test_shift_and_stitch_interleaves_the_16px_grid(predictor, field):
    fine = predictor.dense_grid(field, 8)
    coarse = predictor.dense_grid(field, 16)
    assert coarse.max() - coarse.min() > 0.3  # the map varies (measured 0.12 .. 0.98)
    assert np.allclose(fine[::2, ::2], coarse, atol=1e-5)
    assert np.allclose(predictor.dense_grid(field, 32), coarse[::2, ::2], atol=1e-6)


@pytest.mark.parametrize("mode", ["exact", "dense"])
def test_map_has_image_shape_and_lies_in_unit_interval(predictor, field, mode):
    result = predictor.analyse_frame(field, MapSettings(stride=32, mode=mode))
    assert result.sick_map.shape == field.shape and result.sick_map.dtype == np.float32
    assert result.sick_map.min() >= 0.0 and result.sick_map.max() <= 1.0
    assert result.mean_sick_probability == pytest.approx(float(result.sick_map.mean()))
    assert result.label in ("healthy", "sick")
    assert 0.5 <= result.confidence <= 1.0


def test_upsampling_is_bilinear_between_window_centres():
    grid = np.array([[0.0, 1.0]])
    full = upsample_grid(grid, (220, 220 + 32), 220, 32)
    centres = np.array([109.5, 141.5])
    row = full[100]
    assert row[:110].max() == 0.0 and row[142:].min() == 1.0  # held beyond the outermost centres
    assert row[125] == pytest.approx((125 - centres[0]) / 32, abs=1e-6)


def test_invalid_settings_are_refused(predictor, field):
    with pytest.raises(PhototoxError, match="divides 16"):
        check_dense_stride(12)
    with pytest.raises(PhototoxError, match="threshold"):
        MapSettings(stride=32, mode="dense", threshold=1.5)
    with pytest.raises(PhototoxError, match="map mode"):
        MapSettings(stride=32, mode="fast")
    assert (
        predictor.analyse_frame(field[:240, :240], MapSettings(stride=12, mode="exact")).grid.size == 4
    )  # exact takes any stride


def test_object_means():
    sick_map = np.zeros((10, 10), np.float32)
    sick_map[:, 5:] = 1.0
    labels = np.zeros((10, 10), int)
    labels[2:4, 0:3] = 1
    labels[6:8, 6:9] = 3
    means, ids = object_means(sick_map, labels)
    assert list(ids) == [1, 3] and np.allclose(means, [0.0, 1.0])


def test_summary_numbers_follow_the_mask():
    sick_map = np.random.default_rng(5).random((20, 30)).astype(np.float32)
    mask = np.zeros(sick_map.shape, bool)
    mask[3:9, 10:25] = True
    mean, area, label, confidence = summarise_map(sick_map, 0.4, mask)
    inside = sick_map[mask]
    assert mean == pytest.approx(inside.mean()) and area == pytest.approx((inside >= 0.4).mean())
    assert label == ("sick" if inside.mean() >= 0.4 else "healthy")
    assert confidence == pytest.approx(inside.mean() if label == "sick" else 1 - inside.mean())
    assert summarise_map(sick_map, 0.4)[0] == pytest.approx(sick_map.mean())
    empty = summarise_map(sick_map, 0.4, np.zeros(sick_map.shape, bool))
    assert np.isnan(empty[0]) and np.isnan(empty[1]) and np.isnan(empty[3])


def test_map_command_writes_float_maps_overlays_and_summary(tmp_path, tiny_model_path, capsys):
    stack = np.stack([render_field(256, 288, d, seed=3).image for d in (0.0, 0.5, 1.0)])
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, stack, photometric="minisblack")
    single = tmp_path / "single.png"
    import imageio.v3 as iio

    iio.imwrite(single, (stack[0] >> 8).astype(np.uint8))
    before = movie.read_bytes()
    out = tmp_path / "out"
    assert (
        main(
            [
                "map",
                str(movie),
                str(single),
                "--model",
                str(tiny_model_path),
                "--out",
                str(out),
                "--stride",
                "16",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    maps = tifffile.imread(out / "movie_map.tif")
    assert maps.shape == stack.shape and maps.dtype == np.float32
    assert tifffile.imread(out / "single_map.tif").shape == stack.shape[1:]
    assert (out / "movie_overlay.png").stat().st_size > 1000 and (out / "single_overlay.png").is_file()
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 3 + 1 and summary[0].startswith("path,frame,mean_sick_probability")
    assert movie.read_bytes() == before  # inputs untouched


def test_predict_json_matches_the_python_api(tmp_path, varying_predictor, capsys):
    image = tmp_path / "f.tif"
    frame = render_field(300, 300, 0.7, seed=4).image
    tifffile.imwrite(image, frame)
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                str(image),
                "--model",
                VARYING_MODEL,
                "--device",
                "cpu",
                "--json",
                "--stride",
                "32",
                "--mode",
                "exact",
            ]
        )
        == 0
    )
    row = json.loads(capsys.readouterr().out)[0]
    front_door = Assessor(varying_predictor, warn=lambda line: None)
    api = front_door.analyse(frame, MapSettings(stride=32, mode="exact"), front_door.pixel_size(None, image))[0]
    assert row["mean_sick_probability"] == pytest.approx(api.mean_sick_probability, abs=1e-6)
    assert row["engine"] == api.engine == "torch"  # exact mode runs on PyTorch, and the row says so
    assert {k: row[k] for k in TRUST_FIELDS} == api.trust.as_dict()
