"""Leave-one-group-out: does a model generalise to a replicate (plate, date, ...) it never saw?

Two questions, two tools:

* :func:`per_group_metrics` breaks the evaluation of *one given* model down by a column's values
  (``phototox evaluate --split-by replicate``), with intervals, and marks the values whose images
  trained the model. It is not leave-one-group-out unless the model never saw those groups.
* :func:`crossvalidate` (``phototox crossval MANIFEST --split-by replicate``) trains one model per
  value with that value's images left out and evaluates it on them: the honest test of
  generalisation across replicates. A fold whose training side holds one label cannot be trained;
  the report says so plainly (the celldeath data, where each replicate holds one label, are such a case).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from phototox.errors import ManifestError
from phototox.io.images import write_text_atomic
from phototox.io.manifest import Sample
from phototox.io.planned import check_outputs, unique_names
from phototox.models.architectures import CLASSES
from phototox.stats.bootstrap import bca_mean, cluster_accuracy_interval


@dataclass(frozen=True)
class Fold:
    """One leave-one-group-out fold: the held-out value and the sample indices on each side."""

    value: str
    train: tuple[int, ...]
    test: tuple[int, ...]


def column_values(samples: list[Sample], column: str) -> list[str]:
    """Each sample's value of a manifest column (group, replicate, dose, time or any other column)."""
    key = column.strip().lower()
    if key in ("group", "field", "position") and not any(key in s.extra for s in samples):
        values = [s.group for s in samples]
    elif key == "replicate":
        values = [s.replicate for s in samples]
    elif key == "dose":
        values = ["" if s.dose is None else f"{s.dose:g}" for s in samples]
    elif key == "time":
        values = [s.time for s in samples]
    elif any(key in s.extra for s in samples):
        values = [str(s.extra.get(key, "")) for s in samples]
    else:
        raise ManifestError(f"--split-by {column}: no such column in the manifest")
    if not any(values):
        raise ManifestError(f"--split-by {column}: the column is empty")
    return values


def logo_folds(samples: list[Sample], column: str) -> list[Fold]:
    """One fold per value of ``column``; a split unit (group) never sits on both sides of a fold."""
    values = column_values(samples, column)
    folds = []
    for value in sorted(set(values)):
        test = [i for i, v in enumerate(values) if v == value]
        test_units = {samples[i].group for i in test}
        train = [i for i, v in enumerate(values) if v != value and samples[i].group not in test_units]
        folds.append(Fold(value or "(empty)", tuple(train), tuple(test)))
    return folds


def _label_names(samples: list[Sample], indices) -> list[str]:
    return sorted({CLASSES[samples[i].label] for i in indices})


def per_group_metrics(evaluation, column: str, trained_groups: set[str] | None = None) -> dict:
    """Per value of ``column``: images, labels, accuracy and mean P(sick) with 95% intervals over images."""
    from phototox.training.evaluate import roc_auc

    samples = evaluation.samples
    values = column_values(samples, column)
    crop_values = np.array([values[i] for i in evaluation.sample_index])
    out: dict = {}
    for value in sorted(set(crop_values.tolist())):
        mask = crop_values == value
        p, y, img = evaluation.probs[mask], evaluation.labels[mask], evaluation.sample_index[mask]
        correct = (p >= evaluation.threshold) == y
        images = sorted(set(img.tolist()))
        image_means = np.array([p[img == i].mean() for i in images])
        row = {
            "n_images": len(images),
            "n_crops": int(mask.sum()),
            "labels": _label_names(samples, images),
            "crop_accuracy": float(correct.mean()),
            "mean_sick_probability": float(p.mean()),
            "auc": roc_auc(p, y),
        }
        if len(images) >= 2:
            row["accuracy_ci"] = cluster_accuracy_interval(
                correct, img, y, seed=evaluation.seed, n_resamples=1000
            ).as_dict()
            row["mean_sick_probability_ci"] = bca_mean(image_means, 2000, seed=evaluation.seed).as_dict()
        if trained_groups is not None:  # did any training image share this value (not only these images)?
            row["seen_in_training"] = any(v == value and s.group in trained_groups for s, v in zip(samples, values))
        out[value] = row
    return out


def format_per_group(column: str, table: dict) -> str:
    """Terminal table of :func:`per_group_metrics`."""
    lines = [f"per {column} (95% intervals over images):"]
    for value, r in table.items():
        acc = r.get("accuracy_ci")
        mean = r.get("mean_sick_probability_ci")
        acc_text = (
            f"{acc['estimate']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}]" if acc else f"{r['crop_accuracy']:.3f}"
        )
        mean_text = (
            f"{mean['estimate']:.3f} [{mean['low']:.3f}, {mean['high']:.3f}]"
            if mean
            else f"{r['mean_sick_probability']:.3f}"
        )
        seen = {True: "  (trained on)", False: "  (never seen)"}.get(r.get("seen_in_training"), "")
        lines.append(
            f"  {column} {value:12s} images {r['n_images']:3d}  labels {','.join(r['labels']):14s} "
            f"accuracy {acc_text}  mean P(sick) {mean_text}{seen}"
        )
    if any(len(r["labels"]) < 2 for r in table.values()):
        lines.append(f"  note: a {column} holding one label gives accuracy on that label only (no AUC).")
    if any(r.get("seen_in_training") for r in table.values()):
        lines.append(
            f"  note: this breaks down one model; to test generalisation to an unseen {column}, "
            f"train without it: phototox crossval MANIFEST --split-by {column}"
        )
    return "\n".join(lines)


def fold_dirs(folds: list[Fold], out_dir: str | Path) -> dict[str, Path]:
    """One run folder per fold, ``fold_<value>``: distinct values always get distinct folders
    (:func:`phototox.io.planned.unique_names`), so no fold reuses another fold's model."""

    names = unique_names((f.value for f in folds), "--split-by value")
    return {f.value: Path(out_dir) / f"fold_{names[f.value]}" for f in folds}


def crossval_output_paths(folds: list[Fold], out_dir: str | Path) -> list[Path]:
    """Every file :func:`crossvalidate` may write: each fold's run files and crossval.json."""
    from phototox.training.train import run_output_paths

    runs = [p for d in fold_dirs(folds, out_dir).values() for p in run_output_paths(d)]
    return [*runs, Path(out_dir) / "crossval.json"]


def crossvalidate(
    samples: list[Sample], column: str, out_dir: str | Path, config, manifest: str = "", progress: bool = False
) -> dict:
    """Train one model per left-out value of ``column`` and evaluate it on that value's images."""
    from phototox.maps.inference import Predictor
    from phototox.models.weights import load_weights
    from phototox.training.evaluate import evaluate_samples, roc_auc
    from phototox.training.train import train

    out = Path(out_dir)
    folds = logo_folds(samples, column)
    if len(folds) < 2:
        raise ManifestError(f"--split-by {column}: needs at least two values (found {len(folds)})")
    dirs = fold_dirs(folds, out)
    check_outputs(crossval_output_paths(folds, out), [manifest or None, *(s.path for s in samples)], root=out)
    fold_config = replace(config, val_fraction=0.0)
    results, pooled_scores, pooled_labels = [], [], []
    for fold in folds:
        train_labels = {samples[i].label for i in fold.train}
        record: dict = {
            "held_out": fold.value,
            "n_train": len(fold.train),
            "n_test": len(fold.test),
            "test_labels": _label_names(samples, fold.test),
        }
        if len(train_labels) < 2:
            only = CLASSES[next(iter(train_labels))] if train_labels else "no"
            record["status"] = "not evaluable"
            record["reason"] = (
                f"without {column} {fold.value} the training images are all {only}: no model can be trained"
            )
            results.append(record)
            continue
        path = train(
            [samples[i] for i in fold.train],
            dirs[fold.value],
            fold_config,
            resume=True,
            manifest=manifest,
            progress=progress,
            allow_confounded=True,
        )
        predictor = Predictor.create(load_weights(path), fold_config.device)
        evaluation = evaluate_samples(predictor, samples, list(fold.test), seed=fold_config.seed)
        m = evaluation.metrics
        images = evaluation.per_image()
        pooled_scores += [r["mean_sick_probability"] for r in images]
        pooled_labels += [r["label_id"] for r in images]
        record.update(
            {
                "status": "evaluated",
                "model": str(path),
                "crop_accuracy": m["crop_accuracy"],
                "image_accuracy": m["image_accuracy"],
                "cluster_ci": m.get("cluster_ci"),
                "mean_sick_probability": float(evaluation.probs.mean()),
                "crop_auc": m["crop_auc"],
            }
        )
        results.append(record)
    evaluated = [r for r in results if r["status"] == "evaluated"]
    summary: dict = {"column": column, "manifest": manifest, "folds": results, "iterations": config.iterations}
    if not evaluated:
        summary["verdict"] = (
            f"leave-one-{column}-out cannot be evaluated: every {column} holds one label, so "
            "leaving one out leaves training with a single label. These data cannot show whether "
            f"a model generalises to a {column} it never saw."
        )
    else:
        labels = np.array(pooled_labels)
        auc = roc_auc(np.array(pooled_scores), labels) if len(set(pooled_labels)) == 2 else float("nan")
        summary["pooled_image_auc"] = auc
        summary["pooled_image_accuracy"] = float(np.mean((np.array(pooled_scores) >= 0.5) == labels))
        skipped = len(results) - len(evaluated)
        summary["verdict"] = (
            f"leave-one-{column}-out: {len(evaluated)} of {len(results)} folds evaluated"
            + (f" ({skipped} could not be trained)" if skipped else "")
            + f"; pooled image accuracy {summary['pooled_image_accuracy']:.3f}"
            + ("" if np.isnan(auc) else f", pooled image AUC {auc:.3f}")
        )
    write_text_atomic(out / "crossval.json", json.dumps(summary, indent=2))
    return summary


def format_crossval(summary: dict) -> str:
    """Terminal report of :func:`crossvalidate`."""
    lines = []
    for r in summary["folds"]:
        if r["status"] != "evaluated":
            lines.append(f"  {summary['column']} {r['held_out']}: NOT EVALUABLE -- {r['reason']}")
            continue
        ci = r.get("cluster_ci")
        ci_text = f" [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else ""
        lines.append(
            f"  {summary['column']} {r['held_out']} left out ({r['n_test']} images, "
            f"{','.join(r['test_labels'])}): crop accuracy {r['crop_accuracy']:.3f}{ci_text}, "
            f"image accuracy {r['image_accuracy']:.3f}, mean P(sick) {r['mean_sick_probability']:.3f}"
        )
    lines.append(summary["verdict"])
    return "\n".join(lines)
