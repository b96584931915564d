"""Design audit: confounded vs balanced manifests, the nuisance baseline, leave-one-group-out, train's refusal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from phototox.io.manifest import Sample, read_manifest
from phototox.training.audit import audit_manifest, audit_samples, cramers_v
from phototox.training.crossval import logo_folds


def _write_set(folder: Path, n: int, seed: int, brightness_follows_label: bool, replicate_of) -> Path:
    """``n`` 64x64 textured images, half sick; replicate column from ``replicate_of(i, label)``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = i % 2
        from scipy import ndimage

        texture = ndimage.gaussian_filter(rng.normal(0, 1, (64, 64)), rng.uniform(1, 3))
        level = 1000 * (1.6 if (brightness_follows_label and label) else rng.uniform(0.8, 1.2))
        image = np.clip(level + 200 * texture / texture.std(), 0, 65535).astype(np.uint16)
        tifffile.imwrite(folder / f"im{i:03d}.tif", image)
        rows.append(
            [
                f"im{i:03d}.tif",
                "sick" if label else "healthy",
                f"field{i}",
                replicate_of(i, label),
                "drug" if label else "vehicle",
            ]
        )
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "field", "replicate", "treatment"])
        writer.writerows(rows)
    return manifest


@pytest.fixture(scope="module")
def confounded(tmp_path_factory) -> Path:
    return _write_set(tmp_path_factory.mktemp("conf"), 40, 1, True, lambda i, label: "R3" if label else "R1")


@pytest.fixture(scope="module")
def balanced(tmp_path_factory) -> Path:
    return _write_set(tmp_path_factory.mktemp("bal"), 60, 2, False, lambda i, label: f"R{(i // 2) % 3 + 1}")


def test_cramers_v_extremes():
    assert cramers_v(np.array([[10, 0], [0, 7]])) == pytest.approx(1.0)
    assert cramers_v(np.array([[5, 5], [6, 6]])) == pytest.approx(0.0)
    assert 0 < cramers_v(np.array([[8, 2], [3, 7]])) < 1


@pytest.mark.slow
def test_audit_flags_fully_confounded_manifest(confounded, tmp_path):
    result = audit_manifest(confounded, tmp_path / "report")
    assert result.fully_confounded
    assert result.confounded_columns == ["replicate"]
    replicate = next(c for c in result.columns if c.column == "replicate")
    assert "every sick image is replicate R3" in replicate.sentence
    treatment = next(c for c in result.columns if c.column == "treatment")
    assert treatment.role == "design"  # the treatment is supposed to explain the label
    assert "leave-one-replicate-out" in " ".join(result.warnings)
    for name in ("audit.md", "audit.json", "audit.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert "cannot separate biology from batch" in (tmp_path / "report" / "audit.md").read_text()


def test_audit_passes_balanced_manifest(balanced):
    result = audit_samples(read_manifest(balanced))
    assert not result.fully_confounded
    replicate = next(c for c in result.columns if c.column == "replicate")
    assert replicate.role == "batch" and replicate.verdict == "weak" and replicate.cramers_v < 0.2


def test_nuisance_baseline_high_when_label_follows_brightness(confounded):
    baseline = audit_samples(read_manifest(confounded), n_resamples=300).baseline
    assert baseline["auc"]["estimate"] > 0.9 and baseline["auc"]["low"] > 0.8


def test_nuisance_baseline_near_chance_on_balanced(balanced):
    baseline = audit_samples(read_manifest(balanced), n_resamples=300).baseline
    auc = baseline["auc"]
    assert auc["low"] < 0.5 < auc["high"] or abs(auc["estimate"] - 0.5) < 0.2
    assert auc["estimate"] < 0.75


def _samples(groups, replicates, labels):
    return [
        Sample(Path(f"/x/{i}.tif"), lab, g, replicate=r)
        for i, (g, r, lab) in enumerate(zip(groups, replicates, labels))
    ]


@pytest.mark.parametrize("seed", range(5))
def test_logo_never_puts_a_group_on_both_sides(seed):
    rng = np.random.default_rng(seed)
    n = 40
    groups = [f"g{k}" for k in rng.integers(0, 12, n)]  # fields shared by several images
    replicates = [f"r{k}" for k in rng.integers(0, 4, n)]  # a field may even straddle replicates
    samples = _samples(groups, replicates, rng.integers(0, 2, n).tolist())
    folds = logo_folds(samples, "replicate")
    assert sorted(f.value for f in folds) == sorted(set(replicates))
    for fold in folds:
        train_values = {samples[i].replicate for i in fold.train}
        assert fold.value not in train_values
        assert not {samples[i].group for i in fold.train} & {samples[i].group for i in fold.test}
        assert set(fold.test) == {i for i, s in enumerate(samples) if s.replicate == fold.value}


def test_crossval_says_when_logo_cannot_be_evaluated(confounded, tmp_path):
    from phototox.training.crossval import crossvalidate
    from phototox.training.train import TrainConfig

    summary = crossvalidate(read_manifest(confounded), "replicate", tmp_path / "cv", TrainConfig(iterations=1))
    assert all(f["status"] == "not evaluable" for f in summary["folds"])
    assert "cannot be evaluated" in summary["verdict"]
    assert not list((tmp_path / "cv").glob("fold_*"))  # nothing trained


def _confound(manifest: Path, out: Path) -> Path:
    rows = list(csv.DictReader(manifest.open()))
    for r in rows:
        r["replicate"] = "B" if r["label"] == "sick" else "A"
        r["path"] = str(manifest.parent / r["path"])
    target = out / "confounded.csv"
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


@pytest.mark.slow
def test_train_refuses_confounded_manifest_and_accepts_with_flag(synth_dataset, tmp_path, capsys):
    from phototox.apps.cli import main

    manifest = _confound(synth_dataset, tmp_path)
    out = tmp_path / "run"
    common = [
        str(manifest),
        "--out",
        str(out),
        "--iterations",
        "2",
        "--batch-size",
        "4",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "2",
        "--device",
        "cpu",
        "--quiet",
        "--no-tps",
    ]
    assert main(["train", *common]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "replicate" in err and "--allow-confounded" in err
    assert not out.exists()  # refused before anything was written
    assert main(["train", *common, "--allow-confounded"]) == 0
    from phototox.models.weights import load_weights

    meta = load_weights(out / "model.pt").meta
    assert meta["allow_confounded"] is True
    assert meta["audit"]["fully_confounded"] and meta["audit"]["confounded_columns"] == ["replicate"]
    card = (out / "model_card.md").read_text()
    assert "fully explained by replicate" in card and "--allow-confounded" in card


def test_train_accepts_balanced_manifest_without_flag(synth_dataset):
    from phototox.training.train import check_design

    audit = check_design(read_manifest(synth_dataset), str(synth_dataset))
    assert not audit.fully_confounded


@pytest.mark.slow
@pytest.mark.shared_data
def test_cli_audit_on_real_data(tmp_path, capsys):
    from conftest import need_celldeath

    from phototox.apps.cli import main

    data = need_celldeath()
    assert main(["audit", str(data / "manifest.csv"), "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "every sick image is replicate N3" in text
    assert "cannot separate biology from batch" in text


@pytest.mark.slow
def test_crossval_trains_one_model_per_left_out_value(synth_dataset, tmp_path, capsys):
    from phototox.apps.cli import main
    from phototox.models.weights import load_weights

    out = tmp_path / "cv"
    assert (
        main(
            [
                "crossval",
                str(synth_dataset),
                "--split-by",
                "replicate",
                "--out",
                str(out),
                "--iterations",
                "2",
                "--batch-size",
                "4",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((out / "crossval.json").read_text())
    assert [f["held_out"] for f in summary["folds"]] == ["synthetic1", "synthetic2"]
    samples = read_manifest(synth_dataset)
    for fold in summary["folds"]:
        assert fold["status"] == "evaluated"
        trained_on = set(load_weights(fold["model"]).meta["train_groups"])
        held_out = {s.group for s in samples if s.replicate == fold["held_out"]}
        assert trained_on and not trained_on & held_out  # the left-out replicate never trained its model
    assert "pooled image accuracy" in capsys.readouterr().out
