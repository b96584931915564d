"""The domain check: statistics, threshold, flags on SETS of real images with the shipped model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from phototox.trust.domain import (
    DomainStats,
    DomainVerdict,
    conformal_threshold,
    fit_domain,
    fit_fine_detail,
)
from phototox.trust.domain_windows import fine_detail, window_grid
from tests.conftest import need_celldeath

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_window_grid_is_bounded_and_inside():
    for shape in ((220, 220), (960, 1280), (5000, 7000)):
        grid = window_grid(shape, 220)
        assert 1 <= len(grid) <= 48
        assert all(0 <= y <= shape[0] - 220 and 0 <= x <= shape[1] - 220 for y, x in grid)


def test_fit_domain_flags_shifted_features(rng):
    """Threshold from leave-one-image-out: fresh in-distribution images pass, shifted ones fail."""
    d = 16
    images = [rng.normal(0, 1, (40, d)) for _ in range(12)]
    stats, report = fit_domain(images)
    assert stats.threshold == pytest.approx(max(report["loo_scores"]) * 1.1, rel=1e-3)
    fresh = [stats.image_score(rng.normal(0, 1, (40, d))) for _ in range(20)]
    shifted = [stats.image_score(rng.normal(0.8, 1, (40, d))) for _ in range(20)]
    scaled = [stats.image_score(rng.normal(0, 2.5, (40, d))) for _ in range(20)]
    assert max(fresh) < stats.threshold < min(shifted)
    assert min(scaled) > stats.threshold
    with pytest.raises(Exception, match="at least 3"):
        fit_domain(images[:2])


def test_shipped_model_carries_domain_statistics():
    from phototox.models.loader import load_model

    meta = load_model().meta
    stats = DomainStats.from_meta(meta)
    assert stats is not None and stats.mean.shape == (256,) and stats.precision.shape == (256, 256)
    assert meta["pixel_size_um"] == 0.434 and "train" in meta["domain"]["fitted_on"]
    assert meta["domain"]["n_images"] == len(meta["train_groups"])
    low, high = meta["domain"]["fine_detail"]["range"]
    assert low < high < stats.fine_detail_limit


def _blobs(rng, shape=(440, 440), radius=12.0, n=160) -> np.ndarray:
    """Round, cell-sized blobs on a background, with a faint texture."""
    from scipy import ndimage

    image = np.zeros(shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for y, x in rng.uniform(0, shape, (n, 2)):
        image += (yy - y) ** 2 + (xx - x) ** 2 < radius**2
    return ndimage.gaussian_filter(image, 1.5) + rng.normal(0, 0.02, shape)


def test_fine_detail_known_answer_on_white_noise(rng):
    """White noise has equal power per frequency: the statistic is the log ratio of the bands' areas."""
    import torch

    values = fine_detail(torch.from_numpy(rng.normal(size=(40, 1, 220, 220))))
    area_ratio = ((1 / 4) ** 2 - (1 / 16) ** 2) / ((1 / 32) ** 2 - (1 / 128) ** 2)
    assert abs(np.median(values) - np.log(area_ratio)) < 0.15


def test_fine_detail_rises_as_cells_shrink(rng):
    """The same field at 1x, 1/2 and 1/4 of its size (a pixel size 2x, 4x too coarse): ever finer detail."""
    import torch

    from phototox.trust.pixelsize import resample

    field = _blobs(rng)
    values = []
    for shrink in (1, 2, 4):
        small = resample(field, (440 // shrink, 440 // shrink))
        tiled = np.tile(small, (shrink, shrink))[:220, :220]  # same window size, smaller cells
        values.append(float(fine_detail(torch.from_numpy(tiled[None, None]))[0]))
    assert values[0] < values[1] < values[2], values
    # contrast and brightness do not matter, only the spatial scale
    scaled = fine_detail(torch.from_numpy((5 * field[:220, :220] + 3)[None, None]))[0]
    # (to float32 precision: the FFT runs in float32)
    assert scaled == pytest.approx(fine_detail(torch.from_numpy(field[:220, :220][None, None]))[0], rel=1e-6)


def test_fine_detail_limit_rule():
    """Training images: largest + 10% of their range; controls: largest + 1.1 x the base model's range."""
    fit = fit_fine_detail([-2.0, -1.0, 0.0])
    assert fit["limit"] == pytest.approx(0.2) and fit["range"] == [-2.0, 0.0] and fit["range_used"] == 2.0
    controls = fit_fine_detail([-0.7, -0.65, -0.6], base_range=2.0, on_controls=True)
    assert controls["limit"] == pytest.approx(-0.6 + 2.2) and "base model" in controls["rule"]
    assert controls["range_used"] == 2.0  # handed on when these controls' model is calibrated again
    # controls of a model without a recorded range: no limit (healthy fields cannot bound damage)
    unbounded = fit_fine_detail([-0.7, -0.65, -0.6], on_controls=True)
    assert unbounded["limit"] is None and unbounded["range_used"] is None
    stats = DomainStats.from_meta(
        {"domain": {"mean": [0.0], "precision": [[1.0]], "threshold": 1.0, "fine_detail": unbounded}}
    )
    assert stats is not None and stats.fine_detail_limit is None


def test_conformal_threshold_is_the_order_statistic_and_says_the_reachable_rate():
    scores = [0.5, 0.9, 0.7, 1.3, 1.1, 0.6, 0.8, 1.0, 1.2, 0.4]
    ten = conformal_threshold(scores, alpha=0.2)  # ceil(11 x 0.8) = 9th smallest
    assert (ten["rank"], ten["threshold"], ten["false_alarm_rate"]) == (9, 1.2, round(1 - 9 / 11, 4))
    three = conformal_threshold([1.0, 2.0, 1.5])  # ceil(4 x 0.95) = 4 > 3: the max, reaching 1/4
    assert (three["threshold"], three["false_alarm_rate"]) == (2.0, 0.25) and "reach 0.250" in three["note"]
    nineteen = conformal_threshold(np.arange(19.0))
    assert nineteen["rank"] == 19 and nineteen["false_alarm_rate"] == 0.05


def test_conformal_threshold_flags_new_fields_at_most_alpha():
    """Exchangeable field scores: a new one exceeds the threshold in <= alpha of runs (mutation: floor rank, 27%)."""
    rng = np.random.default_rng(5)
    flagged = 0
    for _ in range(2000):
        scores = rng.lognormal(0, 0.3, 11)
        flagged += scores[0] > conformal_threshold(scores[1:], alpha=0.2)["threshold"]
    assert flagged / 2000 <= 0.2 + 0.02


def test_fit_domain_on_fields_gives_conformal_threshold_and_p_values(rng):
    images = [rng.normal(0, 1, (40, 4)) for _ in range(4)]
    stats, report = fit_domain(images, alpha=0.05)
    assert stats.threshold == max(report["loo_scores"]) and report["conformal"]["false_alarm_rate"] == 0.2
    meta = {"domain": {"mean": stats.mean.tolist(), "precision": stats.precision.tolist(), "threshold": 1.0, **report}}
    loaded = DomainStats.from_meta(meta)
    assert loaded is not None and loaded.field_scores is not None
    low, high = min(report["loo_scores"]), max(report["loo_scores"])
    assert loaded.p_value(high + 1) == pytest.approx(1 / 5) and loaded.p_value(low - 1) == 1.0
    assert loaded.p_value(low) == 1.0  # ties count as at least as high
    training, _ = fit_domain(images)
    assert training.field_scores is None and training.p_value(1.0) is None


def test_verdict_without_fine_detail_limit_is_the_score_alone():
    """Models fitted before the fine-detail check (no limit) are judged by the trunk score only."""
    old = DomainVerdict(1.0, 1.3, 5.0, None)
    assert not old.out_of_domain and old.fields()["fine_detail"] is None
    too_fine = DomainVerdict(1.0, 1.3, 0.9, 0.4)
    assert too_fine.out_of_domain and too_fine.fields()["fine_detail_limit"] == 0.4
    assert DomainVerdict(1.4, 1.3, 0.0, 0.4).out_of_domain


STRANGE_KINDS = ("inverted contrast", "heavy blur", "sparse bright spots", "pure noise", "4x too coarse", "4x too fine")


@pytest.fixture(scope="module")
def sets_report_of_shipped_model() -> dict:
    """Flag rates of the shipped model on the held-out fields and strange copies of 6 of them
    (6 of 11 to bound the time; benchmarks/bench_domain.py runs all)."""
    need_celldeath()
    from bench_domain import sets_report

    from phototox.maps.inference import Predictor
    from phototox.models.loader import load_model

    return sets_report(Predictor.create(load_model(), "cpu"), n_strange=6)


@pytest.mark.slow
def test_domain_flag_on_sets(sets_report_of_shipped_model):
    """Every held-out celldeath field in domain; >= 90% of each kind of strange copy flagged."""
    report = sets_report_of_shipped_model
    assert report["held-out celldeath fields"]["flagged"] == 0.0
    for kind in STRANGE_KINDS:
        assert report[kind]["flagged"] >= 0.9, (kind, report[kind])
    # the fine-detail check does not take a legitimately resampled copy (true pixel size) for a wrong one
    for zoom in ("0.5x", "2x"):
        assert report[f"{zoom} copies at true size"]["flagged_by_fine_detail"] == 0.0


def test_cli_warns_and_records_out_of_domain(tmp_path, capsys, rng):
    """Noise is out of domain: one warning line naming the image, and the flag in the JSON row."""
    import json

    import tifffile

    from phototox.apps.cli import main

    noise = tmp_path / "noise.tif"
    tifffile.imwrite(noise, rng.normal(1000, 50, (260, 300)).astype(np.uint16))
    assert main(["predict", str(noise), "--json", "--pixel-size", "0.434", "--stride", "32"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out)[0]
    assert row["out_of_domain"] is True and row["domain_score"] > row["domain_threshold"]
    assert row["fine_detail"] > row["fine_detail_limit"]  # noise: detail at every scale
    warnings = [line for line in captured.err.splitlines() if "OUT OF DOMAIN" in line]
    assert len(warnings) == 1 and "noise.tif" in warnings[0]
