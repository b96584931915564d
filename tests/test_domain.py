"""The domain check: statistics, threshold, flags on SETS of real images with the shipped model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from phototox.domain import DomainStats, fit_domain, window_grid
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


STRANGE_KINDS = ("inverted contrast", "heavy blur", "sparse bright spots", "pure noise", "4x too fine")


@pytest.fixture(scope="module")
def sets_report_of_shipped_model() -> dict:
    """Flag rates of the shipped model on the held-out fields and strange copies of 6 of them
    (6 of 11 to bound the time; benchmarks/bench_domain.py runs all)."""
    need_celldeath()
    from bench_domain import sets_report

    from phototox.inference import Predictor
    from phototox.models.loader import load_model

    return sets_report(Predictor.create(load_model(), "cpu"), n_strange=6)


@pytest.mark.slow
def test_domain_flag_on_sets(sets_report_of_shipped_model):
    """Every held-out celldeath field in domain; >= 90% of each kind of strange copy flagged."""
    report = sets_report_of_shipped_model
    assert report["held-out celldeath fields"]["flagged"] == 0.0
    for kind in STRANGE_KINDS:
        assert report[kind]["flagged"] >= 0.9, (kind, report[kind])


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known gap of deadnet-gap-celldeath-v3: 4x too coarse copies are flagged 9/11 in the bench "
    "(4/6 here), below 90% (models/MODEL_CARD.md); this fails loudly once the gap is closed",
)
def test_domain_flag_on_4x_too_coarse_copies(sets_report_of_shipped_model):
    assert sets_report_of_shipped_model["4x too coarse"]["flagged"] >= 0.9


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
    warnings = [line for line in captured.err.splitlines() if "OUT OF DOMAIN" in line]
    assert len(warnings) == 1 and "noise.tif" in warnings[0]
