"""Cell count, areas and halo-free confluence (phototox.timecourse.cells) on synthetic known answers and T98G."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need_usiigaci
from scipy import ndimage

from phototox.errors import PhototoxError
from phototox.timecourse.cells import frame_cells, per_cell_rates, read_cell_counts

FIELD_UM = 420.0
RADIUS_UM = 16.0
HALO_UM = 2.5


def centres(n: int, seed: int = 0, low: float = 40.0, high: float = FIELD_UM - 40.0) -> list[tuple[float, float]]:
    """``n`` cell centres (um) at least 2.6 radii apart inside [low, high]^2."""
    rng = np.random.default_rng(seed)
    out: list[tuple[float, float]] = []
    while len(out) < n:
        y, x = rng.uniform(low, high, 2)
        if all(np.hypot(y - a, x - b) > 2.6 * RADIUS_UM for a, b in out):
            out.append((y, x))
    return out


def scene(
    cells: list[tuple[float, float]],
    pixel_um: float,
    halo: bool = True,
    band: tuple[float, float] | None = None,
    seed: int = 1,
) -> np.ndarray:
    """A phase-contrast-like 16-bit frame of ``FIELD_UM`` square: flat background with camera
    noise, textured dark discs (cells) ringed by a bright halo, optionally a broad bright
    vertical band (x from band[0] to band[1] um, like the T98G well edge)."""
    rng = np.random.default_rng(seed)
    n = round(FIELD_UM / pixel_um)
    y, x = (np.mgrid[:n, :n] + 0.5) * pixel_um
    image = np.full((n, n), 20000.0)
    granules = ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), 1.0 / pixel_um)
    granules /= granules.std()
    for cy, cx in cells:
        r = np.hypot(y - cy, x - cx)
        body = r < RADIUS_UM
        image[body] += -600 + 900 * granules[body]
        if halo:
            image[(r >= RADIUS_UM) & (r < RADIUS_UM + HALO_UM)] += 2500
    if band is not None:  # bright, smooth, soft-edged: like the T98G well edge (+12k over 33k)
        inside = ((x > band[0]) & (x < band[1])).astype(float)
        image += 12000 * ndimage.gaussian_filter(inside, 2.0 / pixel_um)
    image += rng.normal(0, 60, (n, n))
    return np.clip(image, 0, 65535).astype(np.uint16)


def disc_mask(cells, pixel_um: float, radius_um: float) -> np.ndarray:
    n = round(FIELD_UM / pixel_um)
    y, x = (np.mgrid[:n, :n] + 0.5) * pixel_um
    out = np.zeros((n, n), bool)
    for cy, cx in cells:
        out |= np.hypot(y - cy, x - cx) < radius_um
    return out


@pytest.mark.parametrize("n", [1, 8, 20])
def test_n_discs_give_n_cells_with_their_area(n):
    where = centres(n, seed=n)
    result = frame_cells(scene(where, 0.87), 0.87)
    assert abs(result.count - n) <= max(1, round(0.1 * n))
    true_area = np.pi * RADIUS_UM**2
    assert result.median_area_um2 == pytest.approx(true_area, rel=0.1)


@pytest.mark.parametrize("apart", [1.5, 1.8])
def test_touching_pair_is_two_cells(apart):
    """Two overlapping discs (a figure of eight, centres ``apart`` radii apart) are split at the neck."""
    where = [(200.0, 200.0 - apart * RADIUS_UM / 2), (200.0, 200.0 + apart * RADIUS_UM / 2)]
    result = frame_cells(scene(where, 0.87), 0.87)
    assert result.count == 2


def test_halo_ring_is_not_confluence():
    where = centres(8, seed=3)
    pixel = 0.87
    result = frame_cells(scene(where, pixel), pixel)
    ring = disc_mask(where, pixel, RADIUS_UM + HALO_UM) & ~disc_mask(where, pixel, RADIUS_UM)
    assert result.mask[ring].mean() < 0.1  # the halo lies outside the cells' mask
    body = disc_mask(where, pixel, RADIUS_UM)
    assert result.mask[body].mean() > 0.6  # while the bodies are covered
    assert abs(result.confluence - body.mean()) < 0.25 * ring.mean()  # the bodies' area, not bodies + halos


def test_bright_band_elsewhere_changes_no_cell():
    where = centres(6, seed=5, low=30.0, high=170.0)  # cells on the left, band on the right
    pixel = 0.87
    plain = frame_cells(scene(where, pixel), pixel)
    banded = frame_cells(scene(where, pixel, band=(340.0, 390.0)), pixel)
    assert banded.count == plain.count == 6
    np.testing.assert_array_equal(banded.labels[:, : round(200 / pixel)] > 0, plain.labels[:, : round(200 / pixel)] > 0)
    band = np.zeros_like(banded.mask)
    band[:, round(340 / pixel) : round(390 / pixel)] = True
    assert banded.mask[band].mean() < 0.05  # the band is no confluence either


def test_pixel_size_doubled_gives_same_count_and_area():
    where = centres(10, seed=7)
    fine = frame_cells(scene(where, 0.87), 0.87)
    coarse = frame_cells(scene(where, 1.74), 1.74)
    assert coarse.count == fine.count
    assert coarse.median_area_um2 == pytest.approx(fine.median_area_um2, rel=0.15)
    assert coarse.confluence == pytest.approx(fine.confluence, rel=0.15)


def test_gain_and_offset_of_the_camera_change_nothing():
    where = centres(8, seed=9)
    frame = scene(where, 0.87)
    base = frame_cells(frame, 0.87)
    changed = frame_cells((frame.astype(np.float64) * 1.7 + 3000).clip(0, 65535), 0.87)
    assert changed.count == base.count
    assert np.mean(changed.mask != base.mask) < 0.002


def test_per_cell_rates_with_known_denominators():
    events = [(3, 10.0, 10.0, "division", 4), (8, 50.0, 60.0, "division", 6), (9, 5.0, 5.0, "death", 12)]
    counts = np.full(12, 50.0)  # 50 cells x 12 frames x 10 min = 100 cell-hours
    rates = per_cell_rates(events, counts, 10.0)
    assert rates.cell_hours == pytest.approx(100.0)
    assert rates.events_per_cell_per_hour == pytest.approx(3 / 100)
    assert rates.fraction_never_rounding == pytest.approx(1 - 3 / 50)
    assert rates.median_mitosis_min == pytest.approx(50.0)  # deaths are no mitoses
    failed = per_cell_rates([*events[:2], (9, 5.0, 5.0, "failed_division", 12)], counts, 10.0)
    assert failed.median_mitosis_min == pytest.approx(50.0)  # nor are failed divisions
    assert "100 cell-hours" in rates.denominators
    assert np.isnan(per_cell_rates([], [np.nan] * 3, 10.0).events_per_cell_per_hour)


def test_read_cell_counts(tmp_path):
    good = tmp_path / "counts.csv"
    good.write_text("frame,count\n0,12\n2,15\n")
    counts = read_cell_counts(good, 3)
    assert counts[0] == 12 and np.isnan(counts[1]) and counts[2] == 15
    for text, words in [
        ("frame,n\n0,1\n", "frame,count"),
        ("frame,count\n0,x\n", "line 2"),
        ("frame,count\n5,1\n", "outside"),
        ("frame,count\n0,1\n0,2\n", "twice"),
        ("frame,count\n0,-1\n", "non-negative"),
    ]:
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(PhototoxError, match=words) as error:
            read_cell_counts(bad, 3)
        assert "\n" not in str(error.value) and "bad.csv" in str(error.value)
    with pytest.raises(PhototoxError, match="cannot read"):
        read_cell_counts(tmp_path / "missing.csv", 3)


@pytest.mark.slow
def test_t98g_agrees_with_the_usiigaci_masks():
    """Agreement with Mask R-CNN output (Tsai et al. 2019), held-out frame t28 (tuned on t01, t10)."""
    import tifffile
    from skimage.io import imread

    from phototox.timecourse.activity import foreground_mask

    data = need_usiigaci()
    frame = tifffile.imread(data / "frames" / "20180101ef002xy01t28.tif")
    masks = imread(data / "masks_model1" / "20180101ef002xy01t28.png")
    truth = masks > 0
    cells = frame_cells(frame, 0.87)
    old = foreground_mask(frame, 0.87)

    def iou(a):
        return (a & truth).sum() / (a | truth).sum()

    assert iou(cells.mask) > iou(old) + 0.1
    objects = len(np.unique(masks)) - 1
    assert abs(cells.count - objects) / objects < 0.25


@pytest.mark.slow
def test_timecourse_reports_cells_and_takes_given_counts(tmp_path):
    """timecourse.csv has the cell readouts; --cell-counts replaces the estimate; a bad file is one line."""
    import csv

    import tifffile

    from phototox.timecourse.pipeline import TimecourseSettings, run_timecourse

    where = centres(5, seed=11, high=FIELD_UM - 160.0)
    stack = np.stack([scene(where, 1.74, seed=s)[:160, :160] for s in range(4)])
    tifffile.imwrite(tmp_path / "field.tif", stack, photometric="minisblack")
    settings = TimecourseSettings(interval_min=10.0, pixel_um=1.74, model=None)
    run_timecourse([tmp_path / "field.tif"], tmp_path / "a", settings)
    rows = list(csv.DictReader((tmp_path / "a" / "timecourse.csv").read_text().splitlines()))
    assert [int(r["cell_count"]) for r in rows] == [5, 5, 5, 5]
    assert all(float(r["median_cell_area_um2"]) == pytest.approx(np.pi * RADIUS_UM**2, rel=0.35) for r in rows)
    assert all(0 < float(r["cell_confluence"]) < float(r["confluence"]) for r in rows)
    (tmp_path / "counts.csv").write_text("frame,count\n0,40\n1,41\n2,42\n3,43\n")
    settings.cell_counts = str(tmp_path / "counts.csv")
    doc = run_timecourse([tmp_path / "field.tif"], tmp_path / "b", settings)
    rows = list(csv.DictReader((tmp_path / "b" / "timecourse.csv").read_text().splitlines()))
    assert [float(r["cell_count"]) for r in rows] == [40, 41, 42, 43]
    assert doc["fields"][0]["per_cell"]["mean_cells"] == pytest.approx(41.5)
    (tmp_path / "counts.csv").write_text("frame,count\n0,40\n7,41\n")
    with pytest.raises(PhototoxError, match="counts.csv, line 3"):
        run_timecourse([tmp_path / "field.tif"], tmp_path / "c", settings)
