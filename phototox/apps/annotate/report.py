"""Agreement between experts, and what it implies for any classifier's accuracy.

DeadNet's argument (Richmond et al., 2017): if a fraction ``a`` of images is ambiguous and
annotators label those at random, two annotators disagree on half of them, so the observed
disagreement on overlaps ``d = D / N`` gives ``a = 2 d``. Dropping the ``D`` overlaps that
disagreed removes ``D`` of the ``a N = 2 D`` ambiguous ones, leaving ``D / (N - D)`` ambiguous
among the rest, and a ceiling on achievable accuracy of ``1 - D / (N - D)``. With the paper's
numbers (263 overlaps, 49 disagreements): 18.6% disagreement, 37.2% ambiguous, 22.9% after
filtering, ceiling 77.1% (the paper's low-dose classifier reached 75.7%).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phototox.apps.annotate.db import AnnotationDB
from phototox.io.images import write_text_atomic
from phototox.io.planned import check_outputs

CATEGORIES = ("healthy", "sick", "unsure")


@dataclass
class Ambiguity:
    overlaps: int
    disagreements: int
    disagreement_rate: float
    ambiguous_fraction: float
    ambiguous_after_filtering: float
    accuracy_ceiling: float


def ambiguity_estimate(overlaps: int, disagreements: int) -> Ambiguity:
    """The paper's arithmetic from counts of overlapping labels and disagreements."""
    if overlaps <= 0:
        raise ValueError("no overlaps: nothing to estimate")
    if not 0 <= disagreements <= overlaps:
        raise ValueError("disagreements must lie between 0 and the number of overlaps")
    d = disagreements / overlaps
    kept = overlaps - disagreements
    after = disagreements / kept if kept else 1.0
    return Ambiguity(overlaps, disagreements, d, min(1.0, 2 * d), min(1.0, after), max(0.0, 1.0 - after))


def cohen_kappa(a: list[str], b: list[str], categories=CATEGORIES) -> float:
    """Cohen's kappa of two raters' labels of the same items (NaN when undefined)."""
    if len(a) != len(b) or not a:
        return float("nan")
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for x, y in zip(a, b):
        table[index[x], index[y]] += 1
    n = table.sum()
    observed = np.trace(table) / n
    expected = float((table.sum(0) * table.sum(1)).sum() / n**2)
    return float("nan") if expected == 1 else float((observed - expected) / (1 - expected))


def build_report(db: AnnotationDB) -> dict:
    """Counts, pairwise agreement and kappa, the ambiguity estimate, accuracy on controls."""
    annotators = {a.id: a.name for a in db.annotators()}
    items = {item.id: item for item in db.items()}
    latest = db.latest_labels()
    counts = {name: {label: 0 for label in (*CATEGORIES, "skip")} for name in annotators.values()}
    for _, _, who, label, _ in db.votes():
        counts[annotators[who]][label] += 1
    by_item: dict[int, dict[int, str]] = {}
    for (item, who), label in latest.items():
        by_item.setdefault(item, {})[who] = label

    pairs: list[dict[str, Any]] = []
    for (i, name_i), (j, name_j) in itertools.combinations(sorted(annotators.items()), 2):
        shared = [item for item, labels in by_item.items() if i in labels and j in labels]
        a = [by_item[item][i] for item in shared]
        b = [by_item[item][j] for item in shared]
        agree = sum(x == y for x, y in zip(a, b))
        pairs.append(
            {
                "a": name_i,
                "b": name_j,
                "overlaps": len(shared),
                "disagreements": len(shared) - agree,
                "agreement": agree / len(shared) if shared else float("nan"),
                "kappa": cohen_kappa(a, b),
            }
        )

    # overlaps as in the paper: each pair of labels given to one item by two annotators
    n_overlaps = sum(p["overlaps"] for p in pairs)
    n_disagree = sum(p["disagreements"] for p in pairs)
    ambiguity = asdict(ambiguity_estimate(n_overlaps, n_disagree)) if n_overlaps else None

    controls = {}
    for who, name in annotators.items():
        labels = [label for (item, w), label in latest.items() if w == who and items[item].is_control]
        decided = [label for label in labels if label != "unsure"]
        controls[name] = {
            "labelled": len(labels),
            "accuracy": sum(label == "healthy" for label in labels) / len(labels) if labels else None,
            "accuracy_decided": (sum(label == "healthy" for label in decided) / len(decided) if decided else None),
        }
    return {
        "annotators": counts,
        "pairs": pairs,
        "ambiguity": ambiguity,
        "controls": controls,
        "items": len(items),
        "votes": len(db.votes()),
    }


def format_report(report: dict) -> str:
    lines = [f"{report['items']} items, {report['votes']} votes"]
    for name, c in report["annotators"].items():
        lines.append(
            f"  {name:24s} healthy {c['healthy']:4d}  sick {c['sick']:4d}  unsure {c['unsure']:4d}  skip {c['skip']:4d}"
        )
    for p in report["pairs"]:
        if p["overlaps"]:
            lines.append(
                f"  {p['a']} / {p['b']}: {p['overlaps']} overlaps, agreement {p['agreement']:.3f}, "
                f"kappa {p['kappa']:.3f}"
            )
    amb = report["ambiguity"]
    if amb:
        lines.append(
            f"disagreement {amb['disagreement_rate']:.1%} on {amb['overlaps']} overlaps -> ambiguous "
            f"{amb['ambiguous_fraction']:.1%}, {amb['ambiguous_after_filtering']:.1%} after filtering; "
            f"accuracy ceiling {amb['accuracy_ceiling']:.1%}"
        )
    for name, c in report["controls"].items():
        if c["labelled"]:
            lines.append(f"  controls (known healthy) {name}: {c['labelled']} labelled, accuracy {c['accuracy']:.3f}")
    return "\n".join(lines)


def plot_report(report: dict, path: str | Path) -> None:
    """Bar chart of each annotator's labels, and the pairwise kappa matrix."""
    from phototox.results.plots import _figure, _save

    plt, fig = _figure(figsize=(10, 4))
    names = list(report["annotators"])
    ax = fig.add_subplot(1, 2, 1)
    bottom = np.zeros(len(names))
    for label, colour in (("healthy", "tab:blue"), ("sick", "tab:red"), ("unsure", "tab:grey"), ("skip", "#ddd")):
        values = np.array([report["annotators"][n][label] for n in names], dtype=float)
        ax.bar(range(len(names)), values, bottom=bottom, color=colour, label=label)
        bottom += values
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("votes")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(1, 2, 2)
    kappa = np.full((len(names), len(names)), np.nan)
    for p in report["pairs"]:
        i, j = names.index(p["a"]), names.index(p["b"])
        kappa[i, j] = kappa[j, i] = p["kappa"]
    shown = ax.imshow(kappa, vmin=-0.2, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    fig.colorbar(shown, ax=ax, label="Cohen's kappa")
    amb = report["ambiguity"]
    if amb:
        ax.set_title(f"ambiguous {amb['ambiguous_fraction']:.0%}, ceiling {amb['accuracy_ceiling']:.0%}", fontsize=9)
    _save(plt, fig, path)


def write_report(db: AnnotationDB, out_dir: str | Path) -> dict:
    """annotation_report.json and .png in ``out_dir`` (never over the database)."""

    out = Path(out_dir)
    check_outputs([out / "annotation_report.json", out / "annotation_report.png"], [db.path])
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(db)
    write_text_atomic(out / "annotation_report.json", json.dumps(report, indent=2))
    plot_report(report, out / "annotation_report.png")
    return report
