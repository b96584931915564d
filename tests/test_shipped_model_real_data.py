"""The shipped model on real images, through `Assessor` (the front door every front end takes).

celldeath U2OS (La Greca et al., PLoS ONE 2021, MIT): only the fields the model did not train on
(its ``val_groups``); sick = camptothecin 1 h, healthy = DMSO. Label and replicate are confounded
in this set (see ../shared/data/README.md), so these checks guard the software, not the biology.
T98G (Usiigaci, Tsai et al., SoftwareX 2019, MIT): a healthy time-lapse from another lab and
microscope (0.87 um/px vs 0.434 um/px in training). Skipped when ../shared/data is absent.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import need_celldeath, need_usiigaci, predictor_for

from phototox.io.images import read_frames
from phototox.maps.inference import Predictor

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def shipped():
    return predictor_for("default")


def _held_out(predictor: Predictor) -> list[dict]:
    data = need_celldeath()
    trained = set(predictor.model.meta.get("train_groups") or [])
    assert trained, "the shipped model records the fields it trained on"
    with open(data / "manifest.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["field"] not in trained]
    assert {r["label"] for r in rows} == {"sick", "healthy"}
    return [dict(r, path=str(data / r["path"])) for r in rows]


def test_held_out_crops_are_classified_by_their_label(shipped):
    """Fast: four 220 px crops of one held-out sick and one held-out healthy field."""
    rows = _held_out(shipped)
    for label in ("sick", "healthy"):
        frame = read_frames(next(r["path"] for r in rows if r["label"] == label))[0]
        crops = np.stack([frame[y : y + 220, x : x + 220] for y in (200, 500) for x in (300, 800)])
        probs = shipped.classify_windows(crops)
        if label == "sick":
            assert probs.min() > 0.5, probs
        else:
            assert probs.max() < 0.5, probs


@pytest.mark.slow
def test_held_out_fields_score_sick_high_and_healthy_low(shipped):
    rows = _held_out(shipped)
    from phototox.maps.settings import MapSettings
    from phototox.trust.assess import Assessor

    api = Assessor(shipped, warn=lambda line: None, domain_check=False)
    scores = {
        r["field"]: api.analyse(read_frames(r["path"]), MapSettings(), api.pixel_size(None, r["path"]))[
            0
        ].mean_sick_probability
        for r in rows
    }
    sick = [scores[r["field"]] for r in rows if r["label"] == "sick"]
    healthy = [scores[r["field"]] for r in rows if r["label"] == "healthy"]
    # measured with v3 (default dense map, stride 32): sick 0.967-0.999, healthy 0.008-0.252
    assert min(sick) > 0.8 and max(healthy) < 0.35, scores
    assert min(sick) > max(healthy) + 0.5


@pytest.mark.slow
def test_t98g_healthy_time_lapse_is_called_healthy(shipped):
    """At its true pixel size (0.87 um/px, as `phototox predict --pixel-size 0.87` runs it)."""
    from phototox.maps.settings import MapSettings
    from phototox.trust.assess import Assessor

    assessor = Assessor(shipped, warn=lambda line: None)
    frames = sorted((need_usiigaci() / "frames").glob("*.tif"))
    for path in (frames[0], frames[-1]):
        result = assessor.analyse(read_frames(path), MapSettings(), assessor.pixel_size(0.87, path), path.name)[0]
        # measured with v3: 0.060-0.090 mean P(sick) over all 37 frames
        assert result.label == "healthy" and result.mean_sick_probability < 0.2, (path.name, result.summary())
        assert result.trust.pixel_size_source == "user" and result.trust.model_pixel_size_um == 0.434
