"""``phototox train --from-annotations DB`` and ``phototox evaluate --from-annotations DB``.

Training uses the concordant votes on windows outside the test fields (disagreed and unsure
windows are dropped and counted, as in DeadNet); the test fields (fixed before any suggestion)
only measure. See :mod:`phototox.training.adapt` for why the head is a logistic regression on frozen
trunk features.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phototox import __version__
from phototox.apps.annotate.db import AnnotationDB
from phototox.apps.annotate.guided import (
    DECIDED,
    concordant,
    item_features,
    label_summary,
    read_settings,
    votes_by_item,
)
from phototox.errors import PhototoxError
from phototox.io.planned import check_outputs


@dataclass
class AnnotatedWindows:
    """Every voted window of a guided session, with its features under the session's model."""

    settings: dict
    ids: np.ndarray
    fields: np.ndarray  # image path per window
    test: np.ndarray  # bool
    label: np.ndarray  # concordant label 0/1, -1 for disagreed/unsure
    votes: list[dict[int, str]]
    order: np.ndarray  # position in labelling order (first vote)
    features: np.ndarray
    summary_train: dict
    summary_test: dict

    @property
    def train(self) -> np.ndarray:
        return ~self.test & (self.label >= 0)


def open_session(path: str) -> tuple[AnnotationDB, dict]:
    if not Path(path).is_file():
        raise PhototoxError(f"{path}: no such annotation database")
    db = AnnotationDB(path)
    settings = read_settings(db)
    if not settings:
        raise PhototoxError(
            f"{path}: not a guided annotation database (serve it with `phototox annotate serve --suggest MODEL`)"
        )
    return db, settings


def annotated_windows(db: AnnotationDB, settings: dict, predictor) -> AnnotatedWindows:
    """Voted windows (skips ignored), their labels and features (one pass over their images)."""
    by_item = votes_by_item(db)
    first_vote: dict[int, int] = {}
    for vote_id, item_id, _who, label, _t in db.votes():
        if label != "skip":
            first_vote.setdefault(item_id, vote_id)
    items = [i for i in db.items() if by_item.get(i.id)]
    items.sort(key=lambda i: first_vote[i.id])
    test_fields = set(settings["test_fields"])
    labels = []
    for item in items:
        agreed = concordant(by_item[item.id])
        labels.append(DECIDED.index(agreed) if agreed else -1)
    test = np.array([i.path in test_fields for i in items], dtype=bool)
    ids = [i.id for i in items]
    return AnnotatedWindows(
        settings,
        np.array(ids, dtype=int),
        np.array([i.path for i in items]),
        test,
        np.array(labels, dtype=int),
        [by_item[i] for i in ids],
        np.arange(len(items)),
        item_features(predictor, items, float(settings.get("scale_factor", 1.0))),
        label_summary(by_item, [i for i, t in zip(ids, test) if not t]),
        label_summary(by_item, [i for i, t in zip(ids, test) if t]),
    )


def test_accuracy(p_of, data: AnnotatedWindows, seed: int = 0) -> dict:
    """Accuracy on the test fields: disagreed windows dropped, and kept (every decided vote a row)."""
    from phototox.training.adapt_eval import field_accuracy

    t = data.test & (data.label >= 0)
    dropped = field_accuracy((p_of(data.features[t]) >= 0.5) == data.label[t], data.fields[t], data.label[t], seed)
    rows, fields, labels = [], [], []
    for k in np.flatnonzero(data.test):
        for label in data.votes[k].values():
            if label in DECIDED:
                rows.append(k)
                fields.append(data.fields[k])
                labels.append(DECIDED.index(label))
    rows_a = np.array(rows, dtype=int)
    p = p_of(data.features[rows_a]) if len(rows_a) else np.zeros(0)
    kept = field_accuracy((p >= 0.5) == np.array(labels, dtype=int), np.array(fields), np.array(labels), seed)
    return {"disagreed_dropped": dropped, "disagreed_kept_every_vote": kept}


def _predictor(spec: str):
    from phototox.maps.inference import Predictor

    return Predictor.from_spec(spec, "cpu")


def _fmt(d: dict) -> str:
    if d.get("balanced_accuracy") is None:
        return "n/a (" + d.get("note", d.get("interval_note", "no windows")) + ")"
    ci = d.get("interval")
    inside = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f" ({d['interval_note']})"
    return f"{d['balanced_accuracy']:.3f}{inside}, {d['n_windows']} windows of {d['n_fields']} fields"


def train_from_annotations(args) -> int:
    """Fit the new head, write model.pt (+ .sha256), model_card.md and adaptation.json into --out."""
    from phototox.io.images import write_text_atomic
    from phototox.models.weights import save_weights
    from phototox.training.adapt import DEFAULT_C, FEATURES, adapted_meta, adapted_module, fit_head

    db, settings = open_session(args.from_annotations)
    out = Path(args.out)
    files = [out / "model.pt", out / "model.pt.sha256", out / "model_card.md", out / "adaptation.json"]
    check_outputs(files, [db.path, *settings["fields"]])
    spec = args.init or settings["model"]
    predictor = _predictor(spec)
    data = annotated_windows(db, settings, predictor)
    train = data.train
    if not train.any():
        raise PhototoxError(f"{db.path}: no concordant votes outside the test fields yet: nothing to train on")
    head = fit_head(data.features[train], data.label[train], DEFAULT_C)
    evaluation = test_accuracy(head.p_sick, data, args.seed)
    base = predictor.model
    adaptation = {
        "kind": "frozen trunk, new logistic head (phototox.training.adapt)",
        "made": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "base_model": base.label,
        "base_calibration": base.meta.get("calibration"),
        "annotations": str(Path(args.from_annotations).resolve()),
        "features": FEATURES,
        "c": DEFAULT_C,
        "train_windows": data.summary_train,
        "train_fields": sorted(set(data.fields[train].tolist())),
        "test_fields": settings["test_fields"],
        "test_windows": data.summary_test,
        "test_evaluation": evaluation,
        "phototox_version": __version__,
    }
    card = _card(out.name + "/model.pt", adaptation, base)
    meta = adapted_meta(base.meta, adaptation, card)
    out.mkdir(parents=True, exist_ok=True)
    checksum = save_weights(out / "model.pt", adapted_module(base.module, head), base.arch, base.arch_kwargs, meta)
    write_text_atomic(out / "model_card.md", card + f"\n- sha256 of model.pt: `{checksum}`\n")
    write_text_atomic(out / "adaptation.json", json.dumps(adaptation, indent=2) + "\n")
    s = data.summary_train
    print(
        f"trained a new head on {s['healthy']} healthy + {s['sick']} sick windows "
        f"({s['disagreed']} disagreed and {s['unsure']} unsure dropped) from "
        f"{len(adaptation['train_fields'])} fields; base trunk {base.label}"
    )
    print("test fields (never trained on), balanced accuracy with 95% field-level interval:")
    print(f"  disagreed dropped: {_fmt(evaluation['disagreed_dropped'])}")
    print(f"  disagreed kept (every vote a label): {_fmt(evaluation['disagreed_kept_every_vote'])}")
    print(f"model written to {out / 'model.pt'} (card: {out / 'model_card.md'})")
    return 0


def _card(name: str, a: dict, base) -> str:
    s, t = a["train_windows"], a["test_windows"]
    ev = a["test_evaluation"]
    return "\n".join(
        [
            f"# Model card: `{name}`",
            "",
            "DeadNet-style classifier (Richmond et al., 2017, arXiv:1701.06109) adapted to one lab's cells: the "
            f"trunk of `{base.label}` unchanged (its pixel size, preprocessing and domain check still apply), "
            "a new logistic last layer fitted on expert votes from `phototox annotate serve --suggest`.",
            "",
            f"- training windows: {s['healthy']} healthy, {s['sick']} sick (concordant votes); dropped: "
            f"{s['disagreed']} disagreed, {s['unsure']} unsure; {len(a['train_fields'])} fields",
            f"- test fields, fixed at random before any suggestion, never trained on: {len(a['test_fields'])} "
            f"({t['healthy']} healthy, {t['sick']} sick, {t['disagreed']} disagreed windows)",
            f"- balanced accuracy on the test fields, disagreed dropped: {_fmt(ev['disagreed_dropped'])}",
            f"- the same, disagreed kept (every vote a label): {_fmt(ev['disagreed_kept_every_vote'])}",
            f"- head: {a['kind']}, C = {a['c']} on standardised features ({a['features']})",
            "- P(sick) means: what these annotators would call this window, on these cells and this microscope; "
            "it is not a measurement of death. `phototox evaluate --from-annotations` gives the learning curve, "
            "leave-one-field-out accuracy and the annotators' agreement.",
            f"- base model: {a['base_model']}",
        ]
    )


def evaluate_from_annotations(args) -> int:
    """Test-field accuracy, leave-one-field-out, learning curve, agreement, audit of the annotations."""
    from phototox.io.images import write_text_atomic
    from phototox.training.adapt import DEFAULT_C, base_p_sick, fit_head
    from phototox.training.adapt_eval import learning_curve, leave_one_field_out

    db, settings = open_session(args.from_annotations)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_outputs([out / "adaptation_eval.json", out / "learning_curve.png"], [db.path])
    predictor = _predictor(settings["model"])
    data = annotated_windows(db, settings, predictor)
    train = data.train
    test = data.test & (data.label >= 0)
    report: dict = {
        "annotations": str(args.from_annotations),
        "base_model": predictor.model.label,
        "train_windows": data.summary_train,
        "test_windows": data.summary_test,
        "test_fields": settings["test_fields"],
    }
    module = predictor.model.module
    report["base_model_on_test"] = test_accuracy(lambda f: base_p_sick(module, f), data, args.seed)
    if args.model not in (None, "default") and args.model != settings["model"]:
        other = _predictor(args.model)
        other_data = annotated_windows(db, settings, other)
        report["model_on_test"] = {"model": other.model.label}
        report["model_on_test"].update(
            test_accuracy(lambda f: base_p_sick(other.model.module, f), other_data, args.seed)
        )
    if len(set(data.label[train].tolist())) == 2:
        head = fit_head(data.features[train], data.label[train], DEFAULT_C)
        report["adapted_on_test"] = test_accuracy(head.p_sick, data, args.seed)
        report["leave_one_field_out"] = leave_one_field_out(
            data.features[train], data.label[train], data.fields[train], DEFAULT_C, args.seed
        )
        report["learning_curve"] = learning_curve(
            data.features[train],
            data.label[train],
            data.fields[train],
            data.features[test],
            data.label[test],
            data.fields[test],
            seed=args.seed,
        )
    report["agreement"] = agreement(db, data, args.seed)
    report["audit"] = audit_annotations(data, args.seed)
    print(format_evaluation(report))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "adaptation_eval.json", json.dumps(report, indent=2, default=str) + "\n")
        if report.get("learning_curve"):
            plot_curve(report, out / "learning_curve.png")
        print(f"wrote {out / 'adaptation_eval.json'} and learning_curve.png")
    return 0


def agreement(db: AnnotationDB, data: AnnotatedWindows, seed: int = 0) -> list[dict]:
    """Per pair of annotators: Cohen's kappa with a field-level 95% BCa interval, and the accuracy ceiling."""

    from phototox.apps.annotate.report import ambiguity_estimate, cohen_kappa

    names = {a.id: a.name for a in db.annotators()}
    out = []
    for i, j in itertools.combinations(sorted(names), 2):
        shared = [k for k, v in enumerate(data.votes) if i in v and j in v]
        if not shared:
            continue
        a = [data.votes[k][i] for k in shared]
        b = [data.votes[k][j] for k in shared]
        kappa = cohen_kappa(a, b)
        interval = kappa_interval(a, b, [str(data.fields[k]) for k in shared], seed) if np.isfinite(kappa) else None
        decided = [(x, y) for x, y in zip(a, b) if x in DECIDED and y in DECIDED]
        disagreements = sum(x != y for x, y in decided)
        row = {
            "annotators": [names[i], names[j]],
            "shared_windows": len(shared),
            "kappa": None if not np.isfinite(kappa) else float(kappa),
            "kappa_interval": interval,
            "interval_note": "95% BCa, resampling whole fields" if interval else "no interval: fewer than 5 fields",
        }
        if decided:
            row["ceiling"] = ambiguity_estimate(len(decided), disagreements).__dict__
        out.append(row)
    return out


def kappa_interval(a: list[str], b: list[str], fields: list[str], seed: int = 0) -> list[float] | None:
    """95% BCa interval of Cohen's kappa resampling whole fields (None with fewer than 5 fields)."""
    from phototox.apps.annotate.report import cohen_kappa
    from phototox.stats.bootstrap import bca_interval
    from phototox.training.adapt_eval import MIN_FIELDS

    units = sorted(set(fields))
    if len(units) < MIN_FIELDS:
        return None
    where = np.array(fields)
    members = [np.flatnonzero(where == u) for u in units]

    def stat(idx: np.ndarray) -> float:
        rows = np.concatenate([members[u] for u in idx])
        value = cohen_kappa([a[r] for r in rows], [b[r] for r in rows])
        return value if np.isfinite(value) else 1.0  # one category only in the resample: perfect agreement

    try:
        ci = bca_interval(stat, len(units), 2000, 0.95, seed)
    except (ValueError, FloatingPointError):
        return None
    return [float(ci.low), float(ci.high)] if np.isfinite([ci.low, ci.high]).all() else None


def audit_annotations(data: AnnotatedWindows, seed: int = 0) -> dict:
    """phototox's design audit on the concordant windows: does a batch column explain the votes?"""
    from phototox.io.manifest import Sample
    from phototox.training.audit import audit_samples

    fields = data.settings.get("fields", {})
    keep = data.label >= 0
    samples = []
    for k in np.flatnonzero(keep):
        meta = dict(fields.get(data.fields[k], {}))
        replicate = str(meta.pop("replicate", ""))
        extra = {key: str(v) for key, v in meta.items() if key not in ("group",)}
        samples.append(
            Sample(Path(data.fields[k]), int(data.label[k]), str(data.fields[k]), replicate=replicate, extra=extra)
        )
    if len({s.label for s in samples}) < 2:
        return {"note": "one label only among the concordant windows: nothing to audit"}
    result = audit_samples(samples, "annotations", baseline=False, seed=seed)
    return {
        "headline": result.headline(),
        "warnings": result.warnings,
        "columns": [c.as_dict() for c in result.columns],
    }


def format_evaluation(r: dict) -> str:
    s, t = r["train_windows"], r["test_windows"]
    lines = [
        f"annotations {r['annotations']} (base model {r['base_model']}):",
        f"  training windows: {s['healthy']} healthy, {s['sick']} sick; dropped {s['disagreed']} disagreed, "
        f"{s['unsure']} unsure",
        f"  test fields ({len(r['test_fields'])}, fixed before any suggestion): {t['healthy']} healthy, "
        f"{t['sick']} sick, {t['disagreed']} disagreed windows",
        "balanced accuracy on the test fields (mean over fields per label; 95% intervals take fields as units):",
    ]
    rows = [("base model", "base_model_on_test"), ("--model", "model_on_test"), ("adapted head", "adapted_on_test")]
    for name, key in rows:
        if key in r:
            lines.append(f"  {name}, disagreed dropped: {_fmt(r[key]['disagreed_dropped'])}")
            lines.append(f"  {name}, disagreed kept: {_fmt(r[key]['disagreed_kept_every_vote'])}")
    if "leave_one_field_out" in r:
        lines.append(f"leave-one-field-out over training fields: {_fmt(r['leave_one_field_out'])}")
    if r.get("learning_curve"):
        lines.append("learning curve (head on the first n labelled windows, scored on the test fields):")
        lines += [f"  n={p['n_labelled']}: {_fmt(p)}" for p in r["learning_curve"]]
    for a in r["agreement"]:
        ci = a["kappa_interval"]
        kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.3f}"
        line = f"agreement {a['annotators'][0]} / {a['annotators'][1]}: Cohen's kappa {kappa}"
        line += f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f" ({a['interval_note']})"
        line += f" on {a['shared_windows']} shared windows"
        if "ceiling" in a:
            line += f"; accuracy ceiling set by disagreement {a['ceiling']['accuracy_ceiling']:.3f}"
        lines.append(line)
    if not r["agreement"]:
        lines.append("agreement: one annotator only (no inter-annotator ceiling)")
    audit = r["audit"]
    lines.append("audit of the annotations: " + audit.get("headline", audit.get("note", "")))
    lines += [f"  warning: {w}" for w in audit.get("warnings", [])]
    return "\n".join(lines)


def plot_curve(report: dict, path: Path) -> None:
    """Learning curve with field-level intervals, beside the base model's test accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from phototox.io.images import atomic_path

    points = [p for p in report["learning_curve"] if p.get("balanced_accuracy") is not None]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    n = [p["n_labelled"] for p in points]
    acc = [p["balanced_accuracy"] for p in points]
    low = [p["interval"][0] if p.get("interval") else a for p, a in zip(points, acc)]
    high = [p["interval"][1] if p.get("interval") else a for p, a in zip(points, acc)]
    ax.fill_between(n, low, high, alpha=0.25, label="95% interval (fields as units)")
    ax.plot(n, acc, "o-", label="adapted head")
    base = report["base_model_on_test"]["disagreed_dropped"].get("balanced_accuracy")
    if base is not None:
        ax.axhline(base, color="grey", ls="--", label="base model")
    ax.set_xscale("log")
    ax.set_xticks(n, [str(v) for v in n])
    ax.minorticks_off()
    ax.set_xlabel("labelled training windows")
    ax.set_ylabel("balanced accuracy on test fields")
    ax.set_ylim(0.3, 1.02)
    ax.set_title("Learning curve (test fields never trained on)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
