"""Pictures a biologist reads: colour order, colour bar, smooth maps, cell mask, Grad-CAM coverage."""

from __future__ import annotations

import numpy as np
import pytest
from test_explain import WINDOW, toy  # noqa: F401 -- the trained toy classifier fixture

from phototox.results.overlay import GREY_RANGE, blend, foreground_mask, relative_luminance
from phototox.results.plots import plot_map_overlay
from phototox.training.explain import covering_origins, gradcam_frame


def test_luminance_rises_with_p_sick_over_every_grey():
    p = np.linspace(0.0, 1.0, 201)
    for grey in np.linspace(*GREY_RANGE, 9):
        lum = relative_luminance(blend(np.full(p.shape, grey), p))
        assert np.all(np.diff(lum) > 0), grey
        assert lum[-1] - lum[0] > 0.3  # visibly brighter, not a faint wash


def _png(path):
    import imageio.v3 as iio

    return iio.imread(path)[..., :3].astype(np.float64) / 255.0


def test_overlay_png_has_a_colour_bar_and_brightens_left_to_right(tmp_path):
    frame = np.random.default_rng(0).normal(100.0, 1.0, (200, 400))
    ramp = np.tile(np.linspace(0.0, 1.0, 400, dtype=np.float32), (200, 1))
    path = tmp_path / "overlay.png"
    plot_map_overlay(frame, ramp, path, "ramp", threshold=0.5)
    lum = relative_luminance(_png(path))
    h, w = lum.shape
    row = lum[h // 2, : int(0.8 * w)]
    image_part = row[row.argmin() :]  # from the darkest (P = 0) to the right edge of the image
    smooth = np.convolve(image_part, np.ones(9) / 9, mode="valid")
    assert smooth[-20:].mean() - smooth[:20].mean() > 0.25
    bar_found = False
    for x in range(int(0.8 * w), w):  # the colour bar: a column brightening steadily upwards
        column = lum[:, x]
        strip = column[(column > 0.02) & (column < 0.98)]
        if strip.size > 0.5 * h and np.corrcoef(np.arange(strip.size), strip)[0, 1] < -0.9:
            bar_found = True
            break
    assert bar_found


def test_threshold_contour_is_named(tmp_path, monkeypatch):
    import matplotlib.axes

    labels = []
    original = matplotlib.axes.Axes.legend

    def spy(self, *args, **kwargs):
        labels.extend(h.get_label() for h in kwargs.get("handles", []))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", spy)
    ramp = np.tile(np.linspace(0.0, 1.0, 300, dtype=np.float32), (240, 1))
    plot_map_overlay(np.ones((240, 300)), ramp, tmp_path / "o.png", threshold=0.5)
    assert any("threshold" in label for label in labels)


def test_foreground_mask_finds_textured_cells_on_flat_background():
    rng = np.random.default_rng(3)
    frame = rng.normal(100.0, 0.5, (200, 200))
    frame[40:120, 50:150] += rng.normal(0.0, 20.0, (80, 100))  # a textured "cell"
    mask = foreground_mask(frame, min_area=100)
    assert mask[50:110, 60:140].mean() > 0.95 and mask[150:, :].mean() < 0.05
    confluent = rng.normal(100.0, 20.0, (200, 200))  # no background at all
    assert foreground_mask(confluent).all()


@pytest.mark.slow
def test_gradcam_covers_every_pixel_up_to_the_far_edges(toy):  # noqa: F811
    assert list(covering_origins(150, WINDOW, 48)) == [0, 48, 86]
    rng = np.random.default_rng(5)
    frame = rng.normal(0, 1, (128, 150)).astype(np.float32)
    yy, xx = np.mgrid[:128, :150]
    frame += 6 * np.exp(-((yy - 120) ** 2 + (xx - 142) ** 2) / 8.0)  # beyond the last stride-48 window
    heat = gradcam_frame(toy, toy.features[3], frame, class_index=1, window=WINDOW, stride=48)
    assert np.isfinite(heat).all() and heat.min() >= 0
    peak = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(peak[0] - 120) <= 8 and abs(peak[1] - 142) <= 8
