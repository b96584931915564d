"""Training/evaluation manifests: one CSV row per image (or per time window of a time-lapse).

Columns (header names, case-insensitive):

``path``      image file, relative to the manifest's folder or absolute (TIFF stacks allowed).
``label``     ``healthy`` or ``sick`` (also 0/1). May be left out when ``dose`` and a dose
              threshold are given: mass labelling ("data set A" in DeadNet) by dose.
``group``     stage position or field; train and test never share a group. Falls back to a
              ``field`` or ``position`` column, else each image is its own group.
``frames``    optional frame index or range ``a-b`` (inclusive) of a time-lapse sharing the label.
``replicate``, ``dose``, ``time``  optional; reported per value by ``phototox evaluate``.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phototox.defaults import CLASSES
from phototox.errors import ManifestError
from phototox.io.images import atomic_path
from phototox.io.planned import file_identity
from phototox.io.tables import read_csv

LABEL_ALIASES = {"healthy": 0, "0": 0, "sick": 1, "1": 1}
GROUP_FALLBACKS = ("group", "field", "position", "stage_position")


@dataclass(frozen=True)
class Sample:
    """One labelled image (or frame window) of a manifest."""

    path: Path
    label: int
    group: str
    frames: tuple[int, int] | None = None
    replicate: str = ""
    dose: float | None = None
    time: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def label_name(self) -> str:
        return CLASSES[self.label]


def parse_frames(text: str, where: str) -> tuple[int, int] | None:
    """Parse ``""``, ``"5"`` or ``"3-12"`` into an inclusive frame range."""
    text = text.strip()
    if not text:
        return None
    try:
        if "-" in text or ":" in text:
            first, last = (int(v) for v in text.replace(":", "-").split("-", 1))
        else:
            first = last = int(text)
    except ValueError:
        raise ManifestError(f"{where}: frames {text!r} is not an index or a range like 3-12") from None
    if first < 0 or last < first:
        raise ManifestError(f"{where}: frames {text!r} is not a valid range")
    return first, last


def read_manifest(
    path: str | os.PathLike,
    dose_threshold: float | None = None,
    group_column: str | None = None,
    check_files: bool = True,
    require_labels: bool = True,
) -> list[Sample]:
    """Read and validate a manifest CSV (see module docstring)."""

    path = Path(path)
    header, rows = read_csv(path, "manifest")
    if not rows:
        raise ManifestError(f"{path}: manifest has no rows")
    columns = {c.strip().lower(): c for c in header}
    if "path" not in columns:
        raise ManifestError(f"{path}: manifest needs a 'path' column (found: {', '.join(columns)})")
    if group_column is not None and group_column.lower() not in columns:
        raise ManifestError(f"{path}: group column {group_column!r} not in manifest")
    group_key = group_column.lower() if group_column else next((c for c in GROUP_FALLBACKS if c in columns), None)
    has_label = "label" in columns
    if require_labels and not has_label and (dose_threshold is None or "dose" not in columns):
        raise ManifestError(f"{path}: manifest needs a 'label' column, or a 'dose' column and a dose threshold")

    def get(row: dict, key: str) -> str:
        column = columns.get(key)
        return (row.get(column) or "").strip() if column else ""

    samples, missing = [], []
    for line, row in enumerate(rows, start=2):
        where = f"{path}, line {line}"
        rel = get(row, "path")
        if not rel:
            raise ManifestError(f"{where}: empty path")
        image_path = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        dose_text = get(row, "dose")
        try:
            dose = float(dose_text) if dose_text else None
        except ValueError:
            raise ManifestError(f"{where}: dose {dose_text!r} is not a number") from None
        if dose is not None and not math.isfinite(dose):
            raise ManifestError(f"{where}: dose {dose_text!r} is not a finite number")
        label_text = get(row, "label").lower()
        if label_text:
            if label_text not in LABEL_ALIASES:
                raise ManifestError(f"{where}: unknown label {label_text!r} (use healthy or sick)")
            label = LABEL_ALIASES[label_text]
        elif dose is not None and dose_threshold is not None:
            label = int(dose >= dose_threshold)
        elif require_labels:
            raise ManifestError(f"{where}: no label (and no dose to label it by)")
        else:
            label = -1
        group = get(row, group_key) if group_key else ""
        if check_files and not image_path.is_file():
            missing.append(str(image_path))
        known = {"path", "label", "frames", "replicate", "dose", "time", group_key}
        extra = {k: get(row, k) for k in columns if k not in known}
        samples.append(
            Sample(
                path=image_path,
                label=label,
                group=group or str(image_path),
                frames=parse_frames(get(row, "frames") or get(row, "frame"), where),
                replicate=get(row, "replicate"),
                dose=dose,
                time=get(row, "time"),
                extra=extra,
            )
        )
    _refuse_duplicates(path, samples)
    if missing:
        shown = "; ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ManifestError(f"{path}: {len(missing)} image file(s) not found: {shown}")
    return samples


def _refuse_duplicates(path: Path, samples: list[Sample]) -> None:
    """Refuse two rows naming the same image (same file, any spelling or link) and frame range.

    Counted twice, an image would weigh double in training and narrow every confidence interval.
    """

    first_line: dict[tuple, int] = {}
    for line, sample in enumerate(samples, start=2):
        identity = file_identity(sample.path) or os.path.normcase(os.path.abspath(sample.path))
        key = (identity, sample.frames)
        if key in first_line:
            frames = "all frames" if sample.frames is None else f"frames {sample.frames[0]}-{sample.frames[1]}"
            raise ManifestError(
                f"{path}, lines {first_line[key]} and {line}: the same image ({sample.path}, "
                f"{frames}) is listed twice; list each image once"
            )
        first_line[key] = line


def write_manifest(path: str | os.PathLike, samples: list[Sample]) -> None:
    """Write samples back as a manifest CSV (paths relative to the manifest where possible)."""

    path = Path(path)
    extra_keys = sorted({k for s in samples for k in s.extra})
    header = ["path", "label", "group", "frames", "replicate", "dose", "time", *extra_keys]
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for s in samples:
            try:
                rel = os.path.relpath(s.path, path.parent)
            except ValueError:
                rel = str(s.path)
            frames = "" if s.frames is None else f"{s.frames[0]}-{s.frames[1]}"
            writer.writerow(
                [
                    rel,
                    s.label_name if s.label >= 0 else "",
                    s.group,
                    frames,
                    s.replicate,
                    "" if s.dose is None else s.dose,
                    s.time,
                    *(s.extra.get(k, "") for k in extra_keys),
                ]
            )


def grouped_split(samples: list[Sample], test_fraction: float = 0.3, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split sample indices into train/test so that no group is in both, stratified by label.

    Each group is assigned whole, by its majority label; about ``test_fraction`` of each label's
    groups go to test (at least one per label when the label has two or more groups).
    """
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_group.setdefault(s.group, []).append(i)
    groups_by_label: dict[int, list[str]] = {}
    for g, idx in sorted(by_group.items()):
        labels = [samples[i].label for i in idx]
        majority = max(set(labels), key=labels.count)
        groups_by_label.setdefault(majority, []).append(g)
    test_groups: set[str] = set()
    for _label, groups in sorted(groups_by_label.items()):
        order = list(rng.permutation(len(groups)))
        n_test = round(test_fraction * len(groups))
        if len(groups) >= 2:
            n_test = min(max(n_test, 1), len(groups) - 1)
        test_groups.update(groups[i] for i in order[:n_test])
    train = [i for i, s in enumerate(samples) if s.group not in test_groups]
    test = [i for i, s in enumerate(samples) if s.group in test_groups]
    return train, test
