"""How good is an adapted head? Field-level intervals, leave-one-field-out, a learning curve.

Windows of one field are correlated, so every interval here resamples whole fields
(:func:`phototox.bootstrap.cluster_accuracy_interval`, BCa, balanced accuracy) and every split keeps
fields apart: no field ever has windows on both sides (:func:`check_disjoint`).
"""

from __future__ import annotations

import numpy as np

from .adapt import DEFAULT_C, fit_head
from .errors import PhototoxError

CURVE_SIZES = (25, 50, 100, 200, 400)
MIN_FIELDS = 5
"""Fewest fields for an interval: a bootstrap over 3-4 clusters says little (no interval is shown)."""


def check_disjoint(train_fields, test_fields) -> None:
    """Refuse a split with a field on both sides."""
    shared = set(np.asarray(train_fields).tolist()) & set(np.asarray(test_fields).tolist())
    if shared:
        raise PhototoxError(f"field(s) on both sides of a split: {', '.join(sorted(map(str, shared))[:3])}")


def balanced_accuracy(correct: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the labels present of the fraction correct."""
    correct, labels = np.asarray(correct, dtype=float), np.asarray(labels, dtype=int)
    return float(np.mean([correct[labels == k].mean() for k in (0, 1) if np.any(labels == k)]))


def field_accuracy(correct, fields, labels, seed: int = 0) -> dict:
    """Balanced window accuracy with a 95% BCa interval resampling whole fields."""
    from .bootstrap import cluster_accuracy_interval

    correct = np.asarray(correct, dtype=float)
    labels = np.asarray(labels, dtype=int)
    fields = np.asarray(fields)
    out: dict = {
        "balanced_accuracy": balanced_accuracy(correct, labels) if len(correct) else None,
        "n_windows": len(correct),
        "n_fields": len(set(fields.tolist())),
        "interval": None,
        "interval_note": "95% BCa, resampling whole fields",
    }
    if out["n_fields"] >= MIN_FIELDS and len(set(labels.tolist())) == 2:
        ci = cluster_accuracy_interval(correct, fields, labels, seed=seed, n_resamples=2000)
        out["interval"] = [float(ci.low), float(ci.high)]
    elif len(correct):
        out["interval_note"] = f"no interval: fewer than {MIN_FIELDS} fields or one label only"
    return out


def leave_one_field_out(x, y, fields, c: float = DEFAULT_C, seed: int = 0) -> dict:
    """Each field predicted by a head fitted on the other fields; accuracy with a field-level interval."""
    x, y, fields = np.asarray(x, dtype=float), np.asarray(y, dtype=int), np.asarray(fields)
    correct = np.full(len(y), np.nan)
    skipped = []
    for f in sorted(set(fields.tolist())):
        out = fields == f
        if len(set(y[~out].tolist())) < 2:
            skipped.append(f)
            continue
        check_disjoint(fields[~out], fields[out])
        head = fit_head(x[~out], y[~out], c)
        correct[out] = (head.p_sick(x[out]) >= 0.5) == y[out]
    done = ~np.isnan(correct)
    result = field_accuracy(correct[done], fields[done], y[done], seed)
    result["fields_skipped"] = skipped
    return result


def learning_curve(
    train_x,
    train_y,
    train_fields,
    test_x,
    test_y,
    test_fields,
    sizes=CURVE_SIZES,
    c: float = DEFAULT_C,
    seed: int = 0,
) -> list[dict]:
    """Accuracy on the test fields of a head fitted on the first ``n`` training windows, for each ``n``.

    Training windows are taken in the given order (the order they were labelled), so the curve
    answers "would fewer labels have done?". The largest point is always all windows.
    """
    tx, ty, tf = np.asarray(train_x, dtype=float), np.asarray(train_y, dtype=int), np.asarray(train_fields)
    vx, vy, vf = np.asarray(test_x, dtype=float), np.asarray(test_y, dtype=int), np.asarray(test_fields)
    check_disjoint(tf, vf)
    points = sorted({n for n in sizes if n < len(ty)} | {len(ty)})
    curve = []
    for n in points:
        row: dict = {"n_labelled": int(n)}
        if len(set(ty[:n].tolist())) < 2:
            row["note"] = "one label only among these windows: no head"
        elif len(vy) == 0:
            row["note"] = "no labelled test windows"
        else:
            head = fit_head(tx[:n], ty[:n], c)
            row.update(field_accuracy((head.p_sick(vx) >= 0.5) == vy, vf, vy, seed))
        curve.append(row)
    return curve
