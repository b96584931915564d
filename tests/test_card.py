"""Generated model cards (beside model.pt, in its meta, in the zoo package) and provenance in outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from phototox.models.registry import load_registered, shipped_dir
from phototox.models.weights import load_weights, sha256_of
from phototox.training.card import card_for_model, model_card


@pytest.mark.slow
def test_training_writes_card_beside_weights_and_in_meta(tiny_model_path):
    card = (tiny_model_path.parent / "model_card.md").read_text()
    meta = load_weights(tiny_model_path).meta
    assert meta["model_card"].startswith("# Model card")
    assert sha256_of(tiny_model_path) in card  # the file's card names the file's checksum
    for section in (
        "## Training data",
        "## Split and training",
        "## Held-out evaluation",
        "## Design audit",
        "## Calibration",
        "## Domain check",
        "## Limits",
        "## Citations",
    ):
        assert section in card and section in meta["model_card"]
    assert meta["manifest"] in card
    counts = meta["data"]["label_counts"]
    assert f"{counts['healthy']} healthy, {counts['sick']} sick" in card
    assert meta["heldout_evaluation"]["n_images"] >= 2 and "ece" in meta["heldout_evaluation"]
    assert "pixel size: **not recorded**" in card


def test_card_prints_keys_recorded_by_other_steps():
    meta = {
        "pixel_size_um": 0.434,
        "domain_threshold": 3.25,
        "domain_stats": {"mean": [0.1, 0.2]},
        "calibration": {"method": "temperature", "fitted_on": "held-out replicates"},
        "config": {"arch": "deadnet-gap"},
        "manifest": "/data/celldeath_u2os/manifest.csv",
    }
    card = model_card(meta, "m")
    assert "pixel size: 0.434 um/px" in card
    assert "domain_threshold: 3.25" in card and "domain_stats" in card
    assert "temperature" in card and "Not calibrated" not in card
    assert "La Greca" in card  # the data set is cited when the manifest is recognisably it


def test_card_states_both_domain_checks_in_words_not_the_statistics():
    """The domain entry: threshold, fitting images and fine-detail limit; never the mean vector."""
    from phototox.trust.domain import fit_fine_detail

    domain = {"feature": "trunk", "threshold": 1.23, "fitted_on": "7 training images", "mean": [0.123456] * 256}
    card = model_card({"domain": {**domain, "fine_detail": fit_fine_detail([-1.0, 0.5])}}, "m")
    section = card[card.index("## Domain check") : card.index("## Limits")]
    assert "threshold 1.23" in section and "7 training images" in section
    assert "limit 0.65" in section and "0.123456" not in section
    older = model_card({"domain": domain}, "m")
    assert "no fine-detail limit" in older and "trunk score alone" in older


def test_card_for_shipped_default_is_the_curated_one():
    loaded = load_registered()
    assert card_for_model(loaded) == (shipped_dir() / "MODEL_CARD.md").read_text()


def test_curated_card_names_the_registered_checksum_of_each_model_it_describes():
    """A re-shipped file (new meta, new checksum) must not leave the card quoting the old one."""
    import re

    from phototox.models.registry import read_registry

    registry = read_registry()
    card = (shipped_dir() / "MODEL_CARD.md").read_text()
    quoted = set(re.findall(r"`([0-9a-f]{64})`", card))
    registered = {entry.sha256 for entry in registry.entries.values()}
    assert registry.entry().sha256 in quoted
    assert quoted <= registered, quoted - registered


def test_card_for_user_model_is_its_own(tiny_model_path):
    card = card_for_model(load_weights(tiny_model_path))
    assert sha256_of(tiny_model_path) in card
    assert "celldeath-v3" not in card.splitlines()[0]


def test_predict_and_map_outputs_record_provenance(tiny_model_path, synth_dataset, tmp_path):
    import tifffile

    from phototox.apps.cli import main

    image = min(synth_dataset.parent.glob("*.tif"))
    checksum = sha256_of(tiny_model_path)
    assert (
        main(["predict", str(image), "--model", str(tiny_model_path), "--out", str(tmp_path / "p.csv"), "--quiet"]) == 0
    )
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert rows[0]["model_sha256"] == checksum and rows[0]["phototox_version"]
    assert (
        main(["predict", str(image), "--model", str(tiny_model_path), "--out", str(tmp_path / "p.json"), "--quiet"])
        == 0
    )
    assert json.loads((tmp_path / "p.json").read_text())[0]["model_sha256"] == checksum
    assert (
        main(
            [
                "map",
                str(image),
                "--model",
                str(tiny_model_path),
                "--out",
                str(tmp_path / "maps"),
                "--quiet",
                "--no-overlay",
            ]
        )
        == 0
    )
    with tifffile.TiffFile(tmp_path / "maps" / f"{image.stem}_map.tif") as tif:
        described = json.loads(tif.imagej_metadata["Info"])  # provenance in ImageJ's Info (Image > Show Info)
    assert described["model_sha256"] == checksum and described["model_name"].endswith("model.pt")


@pytest.mark.slow
def test_evaluate_writes_calibration_and_reliability(tiny_model_path, synth_dataset, tmp_path, capsys):
    from phototox.apps.cli import main

    assert (
        main(
            [
                "evaluate",
                str(synth_dataset),
                "--model",
                str(tiny_model_path),
                "--out",
                str(tmp_path),
                "--split-by",
                "replicate",
                "--quiet",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "expected calibration error" in text and "per replicate" in text
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["provenance"]["model_sha256"] == sha256_of(tiny_model_path)
    assert 0 <= metrics["calibration"]["ece"]["estimate"] <= 1
    assert set(metrics["per_replicate"]) == {"synthetic1", "synthetic2"}
    assert (tmp_path / "reliability.png").stat().st_size > 0
    rows = list(csv.DictReader((tmp_path / "per_image.csv").open()))
    assert rows and all(r["model_sha256"] == sha256_of(tiny_model_path) for r in rows)


@pytest.mark.slow
def test_zoo_package_of_user_model_carries_its_card(tiny_model_path, tmp_path):
    pytest.importorskip("bioimageio.core", reason="bioimage.io packages not installed")
    from phototox_zoo.build import stage_package

    rdf = stage_package(str(tiny_model_path), tmp_path / "pkg")
    readme = (rdf.parent / "README.md").read_text()
    assert readme.startswith(load_weights(tiny_model_path).meta["model_card"].splitlines()[0])
    assert sha256_of(tiny_model_path) in readme
    assert "deadnet-gap-celldeath-v3" not in readme
    assert np.load(rdf.parent / "test_output.npy").shape == (1, 2)
