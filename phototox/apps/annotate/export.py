"""Turning expert votes into a training manifest of concordant labels.

Rules (on each annotator's latest vote per item, skips ignored):

* ``unanimous`` -- every vote is the same decided label (healthy or sick); any ``unsure`` drops it;
* ``majority`` -- a strict majority of the votes is one decided label.

``--min-votes`` asks for that many annotators per item. Each kept item is written as a TIFF
crop (all its frames) and a manifest row whose ``group`` is the item's stage position, so the
grouped split keeps positions apart.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from phototox.apps.annotate.db import AnnotationDB
from phototox.io.images import atomic_path, read_frames, write_tiff_atomic
from phototox.io.planned import check_outputs

RULES = ("unanimous", "majority")


def concordant_label(labels: list[str], rule: str, min_votes: int) -> str | None:
    """The agreed label under ``rule``, or None."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; use one of {RULES}")
    if len(labels) < min_votes or not labels:
        return None
    counts = Counter(labels)
    label, top = counts.most_common(1)[0]
    if label == "unsure":
        return None
    if rule == "unanimous":
        return label if top == len(labels) else None
    return label if top * 2 > len(labels) else None


def export_manifest(
    db: AnnotationDB, out_dir: str | Path, rule: str = "unanimous", min_votes: int = 1
) -> tuple[Path, int]:
    """Write crops and ``manifest.csv`` into ``out_dir``; return the manifest path and row count.

    Every crop and the manifest are checked against the database and the items' images first.
    """

    out = Path(out_dir)
    items = db.items()
    check_outputs(
        [out / "manifest.csv", *(out / "crops" / f"item{item.id:06d}.tif" for item in items)],
        [db.path, *sorted({item.path for item in items})],
        root=out,
    )
    (out / "crops").mkdir(parents=True, exist_ok=True)
    by_item: dict[int, list[str]] = {}
    for (item_id, _who), label in db.latest_labels().items():
        by_item.setdefault(item_id, []).append(label)
    rows = []
    stacks: dict[str, np.ndarray] = {}
    for item in items:
        agreed = concordant_label(by_item.get(item.id, []), rule, min_votes)
        if agreed is None:
            continue
        if item.path not in stacks:
            stacks[item.path] = read_frames(item.path, min_size=1)
        crop = stacks[item.path][
            item.first_frame : item.last_frame + 1, item.y : item.y + item.size, item.x : item.x + item.size
        ]
        name = f"item{item.id:06d}.tif"
        write_tiff_atomic(out / "crops" / name, crop if len(crop) > 1 else crop[0])
        rows.append([f"crops/{name}", agreed, item.group, len(by_item[item.id]), int(item.is_control), item.path])
    manifest = out / "manifest.csv"
    with atomic_path(manifest) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "group", "votes", "control", "source"])
        writer.writerows(rows)
    return manifest, len(rows)
