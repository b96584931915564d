"""Chunked maps at the model's pixel size: lazy resampling equals whole-frame resampling (issue 11)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import ndimage

from phototox.maps.settings import MapSettings
from phototox.screens.rescale import ResampledView
from phototox.trust.pixelsize import PixelSize, resample, scaled_shape

pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")


@pytest.fixture(scope="module")
def smooth_frame() -> np.ndarray:
    rng = np.random.default_rng(3)
    return ndimage.gaussian_filter(rng.normal(size=(410, 530)), 2.0).astype(np.float32) * 400 + 900


@pytest.mark.parametrize("factor", [0.5, 0.61, 1.5, 2.37])
def test_any_region_of_the_view_equals_the_whole_resampled_frame(smooth_frame, factor):
    shape = scaled_shape(smooth_frame.shape, factor)
    whole = resample(smooth_frame, shape)
    view = ResampledView(smooth_frame, shape)
    h, w = shape
    for y0, y1, x0, x1 in [(0, h, 0, w), (0, 40, 0, 50), (31, h // 2, 17, w - 9), (h - 33, h, w - 41, w)]:
        part = view[y0:y1, x0:x1]
        assert part.shape == (y1 - y0, x1 - x0)
        np.testing.assert_allclose(part, whole[y0:y1, x0:x1], atol=1e-4 * float(np.ptp(whole)))


def test_a_region_is_read_from_its_own_source_pixels_only(smooth_frame):
    """The view never reads the whole frame for one region (memory bounded by the region)."""
    reads = []

    class Recording:
        shape = smooth_frame.shape

        def __getitem__(self, key):
            reads.append(key)
            return smooth_frame[key]

    view = ResampledView(Recording(), scaled_shape(smooth_frame.shape, 0.5))
    view[10:40, 20:60]
    rows, cols = reads[-1]
    assert rows.stop - rows.start < 120 and cols.stop - cols.start < 140


@pytest.mark.slow
def test_chunked_map_at_another_pixel_size_equals_the_in_memory_assessment(tmp_path, monkeypatch):
    from phototox.maps.inference import Predictor
    from phototox.screens import chunked
    from phototox.screens.zarrio import open_ome_zarr
    from phototox.synth.fields import render_field
    from phototox.trust.assess import Assessor

    predictor = Predictor.from_spec("shipped:deadnet-gap-synthetic-v2", "cpu")
    predictor.model = copy.copy(predictor.model)
    predictor.model.meta = {**predictor.model.meta, "pixel_size_um": 0.5}
    left = render_field(300, 200, 0.0, seed=21).image
    right = render_field(300, 200, 1.0, seed=22).image
    frame = np.concatenate([left, right], axis=1).astype(np.float32)  # 300 x 400 at 0.8 um/px

    reference = Assessor(predictor, domain_check=False).analyse(frame, MapSettings(stride=32), PixelSize(0.8, "user"))[
        0
    ]
    assert reference.sick_map.std() > 0.05, "the map must vary, or the comparison proves nothing"
    monkeypatch.setattr(chunked, "STORE_CHUNK", 128)  # several blocks, each resampled on its own
    result = chunked.chunked_map(
        predictor, frame, tmp_path / "m.ome.zarr", MapSettings(stride=32), chunk=256, factor=0.8 / 0.5
    )
    stored = open_ome_zarr(tmp_path / "m.ome.zarr")
    assert stored.shape == frame.shape
    np.testing.assert_allclose(stored[:, :], reference.sick_map, atol=1e-4)
    assert result.mean_sick_probability == pytest.approx(reference.mean_sick_probability, abs=1e-4)
    unscaled = chunked.chunked_map(predictor, frame, None, MapSettings(stride=32), chunk=256)
    assert abs(unscaled.mean_sick_probability - result.mean_sick_probability) > 0.01  # the scale matters here
