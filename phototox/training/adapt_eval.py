"""How good is an adapted head? Field-level intervals, leave-one-field-out, a learning curve.

Windows of one field are correlated, so every interval here takes whole fields as its units
(:func:`field_accuracy`, through the comparison engine :func:`phototox.stats.compare.interval`) and every
split keeps fields apart: no field ever has windows on both sides (:func:`check_disjoint`). (A BCa
bootstrap of pooled windows resampling fields excluded chance in 10.5% of 200 no-effect draws with
10 test fields; this interval: see benchmarks/README.md.)
"""

from __future__ import annotations

import numpy as np

from phototox.errors import PhototoxError
from phototox.training.adapt import DEFAULT_C, fit_head

CURVE_SIZES = (25, 50, 100, 200, 400)
MIN_FIELDS = 5
"""Fewest fields for the kappa interval (a bootstrap over 3-4 fields says little: none is shown)."""
MIN_FIELDS_PER_LABEL = 2
"""Fewest fields holding each label for an accuracy interval."""


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
    """Field-level balanced accuracy and its 95% interval (fields as units; the comparison engine).

    Each label's accuracy is the mean over fields of that field's fraction of its windows of the
    label called right; the balanced accuracy averages the two labels, and equals
    ``0.5 + (mean sick-window hit rate - mean healthy-window false-alarm rate) / 2``, whose interval
    comes from :func:`phototox.stats.compare.interval` on the per-field rates (Welch t below 5 fields per
    label, studentised bootstrap from 5). Needs 2 fields of each label.
    """
    from phototox.stats.compare import interval

    correct = np.asarray(correct, dtype=float)
    labels = np.asarray(labels, dtype=int)
    fields = np.asarray(fields)
    rates: dict[int, list[float]] = {0: [], 1: []}
    for f in sorted(set(fields.tolist())):
        for k in (0, 1):
            here = (fields == f) & (labels == k)
            if here.any():
                rates[k].append(float(correct[here].mean()))
    present = [k for k in (0, 1) if rates[k]]
    out: dict = {
        "balanced_accuracy": float(np.mean([np.mean(rates[k]) for k in present])) if present else None,
        "window_balanced_accuracy": balanced_accuracy(correct, labels) if len(correct) else None,
        "n_windows": len(correct),
        "n_fields": len(set(fields.tolist())),
        "interval": None,
        "interval_note": "no interval: fewer than 2 fields of each label",
    }
    if min(len(rates[0]), len(rates[1])) >= MIN_FIELDS_PER_LABEL:
        hits = np.array(rates[1])
        false_alarms = 1.0 - np.array(rates[0])
        low, high, method = interval(hits, false_alarms, seed=seed)
        out["interval"] = [max(0.0, 0.5 + low / 2), min(1.0, 0.5 + high / 2)]
        out["interval_note"] = f"95%, fields as units ({method})"
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
