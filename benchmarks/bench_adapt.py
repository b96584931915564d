"""A simulated user adapts the shipped model to their cells: learning curve 25 -> 400 windows.

    nice -n 10 python benchmarks/bench_adapt.py [--seeds 3] [--json benchmarks/results/adapt.json]
    nice -n 10 python benchmarks/bench_adapt.py --null   # the interval on data with no effect

The user follows the guided loop of ``phototox annotate serve --suggest`` (:mod:`phototox.training.suggest`:
test fields fixed at random before any suggestion, >= 30% random windows, the rest uncertain and
diverse under the head fitted so far, refitted every 5 labels) or, for comparison, labels windows
in a purely random order. Their "votes" are the truth. After n labelled windows (n = 25, 50, 100,
200, 400) a logistic head on the frozen trunk (:mod:`phototox.training.adapt`) is scored on the fixed test
fields (balanced accuracy averaged over fields, 95% interval with fields as units: phototox.training.adapt_eval.field_accuracy). Baselines on the
same test windows: the shipped model as it is (P(sick) >= 0.5), and ``calibrate`` alone.
``calibrate`` refits only the domain check, so its P(sick) and accuracy are the shipped model's by
construction; the best a control-only recalibration could do is shown as "shipped, control
threshold": sick when P(sick) exceeds the 95th percentile of the training pool's control-field
windows (dose 0 / healthy fields).

Data sets:

* synthetic (:mod:`phototox.synth.fields`): 60 fields of 660x660 px (9 windows each) at doses 0, 0.25,
  0.5, 0.75, 1; a window is "sick" when damaged cells cover >= 10% of the 128x128 px centre the
  head pools. 15 test fields.
* celldeath (La Greca et al. 2021, ../shared/data): 35 fields, 20 windows each, labels from the
  manifest standing in for votes. Every sick field is replicate N3 and every healthy one N1, so
  this curve measures how fast a head learns the REPLICATE BATCH, not cell death; the shipped model
  was trained on 24 of these fields, so its row is mostly in-sample.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phototox.maps.inference import Predictor
from phototox.training.adapt import base_p_sick, fit_head, head_features
from phototox.training.adapt_eval import check_disjoint, field_accuracy
from phototox.training.suggest import choose_test_fields, slot_kind, suggest
from phototox.trust.domain import window_grid

SIZES = (25, 50, 100, 200, 400)
CELLDEATH = Path(os.environ.get("PHOTOTOX_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def synthetic(predictor, n_fields: int = 60, side: int = 660) -> dict:
    from phototox.synth.fields import render_field

    feats, labels, fields, controls = [], [], [], []
    w = predictor.window
    for k in range(n_fields):
        dose = (0.0, 0.25, 0.5, 0.75, 1.0)[k % 5]
        f = render_field(side, side, dose, seed=7000 + k)
        frame = f.image.astype(np.float32)
        positions = window_grid(frame.shape, w, 10**6)
        feats.append(head_features(predictor, frame, positions))
        for y, x in positions:
            centre = f.damaged_mask[y + 46 : y + 174, x + 46 : x + 174]
            labels.append(int(centre.mean() >= 0.10))
            fields.append(f"synth{k:02d}")
            controls.append(dose == 0.0)
    return {"x": np.concatenate(feats), "y": np.array(labels), "field": np.array(fields), "control": np.array(controls)}


def celldeath(predictor) -> dict | None:
    from phototox.io.images import read_frames

    root = CELLDEATH / "celldeath_u2os"
    if not (root / "manifest.csv").is_file():
        print(f"celldeath not found at {root}: skipped", file=sys.stderr)
        return None
    feats, labels, fields, controls = [], [], [], []
    with open(root / "manifest.csv") as handle:
        for row in csv.DictReader(handle):
            frame = read_frames(root / row["path"])[0]
            positions = window_grid(frame.shape, predictor.window, 10**6)
            feats.append(head_features(predictor, frame, positions))
            label = int(row["label"] == "sick")
            labels += [label] * len(positions)
            fields += [row["field"]] * len(positions)
            controls += [label == 0] * len(positions)
    return {"x": np.concatenate(feats), "y": np.array(labels), "field": np.array(fields), "control": np.array(controls)}


def label_order(x: np.ndarray, y: np.ndarray, base_p: np.ndarray, n: int, guided: bool, seed: int) -> list[int]:
    """Indices in the order a simulated user labels them (guided loop or purely random)."""
    rng = np.random.default_rng(seed)
    remaining = list(range(len(y)))
    order: list[int] = []
    p = base_p
    for j in range(min(n, len(y))):
        kind = slot_kind(j, 0, 0.3) if guided else "random"
        if kind == "random":
            k = remaining[int(rng.integers(len(remaining)))]
        else:
            k = suggest(x, p, np.array(remaining), np.array(order, dtype=int))
        order.append(k)
        remaining.remove(k)
        if guided and len(order) % 5 == 0:
            labelled = y[order]
            if min(np.sum(labelled == 0), np.sum(labelled == 1)) >= 2:
                p = fit_head(x[order], labelled).p_sick(x)
    return order


def run(data: dict, predictor, seed: int, name: str) -> dict:
    fields = sorted(set(data["field"].tolist()))
    test_fields = set(choose_test_fields(fields, 0.25, seed))
    test = np.array([f in test_fields for f in data["field"]])
    check_disjoint(data["field"][~test], data["field"][test])
    base = base_p_sick(predictor.model.module, data["x"])
    tx, ty, tf = data["x"][test], data["y"][test], data["field"][test]
    px, py = data["x"][~test], data["y"][~test]
    out: dict = {"dataset": name, "seed": seed, "n_test_fields": len(test_fields), "n_test_windows": int(test.sum())}
    out["test_sick_share"] = float(ty.mean())
    out["shipped"] = field_accuracy((base[test] >= 0.5) == ty, tf, ty, seed)
    control = base[~test][data["control"][~test]]
    threshold = float(np.quantile(control, 0.95)) if len(control) else 0.5
    out["shipped_control_threshold"] = {
        "threshold": threshold,
        **field_accuracy((base[test] > threshold) == ty, tf, ty, seed),
    }
    for guided in (True, False):
        order = label_order(px, py, base[~test], max(SIZES), guided, seed)
        curve = []
        for n in SIZES:
            if n > len(order):
                continue
            chosen = order[:n]
            if len(set(py[chosen].tolist())) < 2:
                curve.append({"n_labelled": n, "note": "one label only"})
                continue
            head = fit_head(px[chosen], py[chosen])
            curve.append(
                {
                    "n_labelled": n,
                    "sick_share": float(py[chosen].mean()),
                    **field_accuracy((head.p_sick(tx) >= 0.5) == ty, tf, ty, seed),
                }
            )
        out["guided" if guided else "random_order"] = curve
    return out


def null_check(draws: int = 200, seed: int = 0) -> dict:
    """Data with no effect: labels are whole fields' coin flips, features noise with field offsets.

    A head on 20 training fields scored on 10 test fields has true balanced accuracy 0.5; counts how
    often the field-level 95% interval excludes 0.5 (a false claim either way; nominal 5%), and the
    same for the BCa bootstrap of pooled windows resampling fields (the interval first tried).
    """
    from phototox.stats.bootstrap import cluster_accuracy_interval

    rng = np.random.default_rng(seed)
    excluded, excluded_bca, estimates = 0, 0, []
    for d in range(draws):
        fields = np.repeat(np.arange(30), 9)
        field_label = rng.permutation(np.repeat([0, 1], 15))
        y = field_label[fields]
        x = rng.normal(size=(len(y), 128)) + rng.normal(size=(30, 128))[fields]
        train = fields < 20
        head = fit_head(x[train], y[train])
        r = field_accuracy((head.p_sick(x[~train]) >= 0.5) == y[~train], fields[~train], y[~train], seed=d)
        estimates.append(r["balanced_accuracy"])
        if r["interval"] and not r["interval"][0] <= 0.5 <= r["interval"][1]:
            excluded += 1
        te = ~train
        ci = cluster_accuracy_interval(
            (head.p_sick(x[te]) >= 0.5) == y[te], fields[te], y[te], seed=d, n_resamples=2000
        )
        excluded_bca += not ci.low <= 0.5 <= ci.high
    return {
        "draws": draws,
        "interval_excludes_chance": excluded / draws,
        "bca_pooled_excludes_chance": excluded_bca / draws,
        "mean_estimate": float(np.mean(estimates)),
    }


def kappa_null_check(draws: int = 100, seed: int = 0) -> dict:
    """Two annotators voting independently (true kappa 0: each says sick with probability 0.4) on 9
    windows of each of 20 fields: how often the field-level kappa interval excludes 0."""
    from phototox.apps.annotate.adapt_commands import kappa_interval

    rng = np.random.default_rng(seed)
    excluded, shown = 0, 0
    for d in range(draws):
        share = np.full(180, 0.4)
        a = ["sick" if v else "healthy" for v in rng.random(share.size) < share]
        b = ["sick" if v else "healthy" for v in rng.random(share.size) < share]
        fields = [f"f{k}" for k in np.repeat(np.arange(20), 9)]
        ci = kappa_interval(a, b, fields, seed=d)
        if ci is not None:
            shown += 1
            excluded += not ci[0] <= 0.0 <= ci[1]
    return {"draws": draws, "intervals": shown, "kappa_interval_excludes_zero": excluded / max(shown, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--null", action="store_true", help="only the no-effect check of the field-level interval")
    args = parser.parse_args()
    if args.null:
        print(json.dumps(null_check()), flush=True)
        print(json.dumps(kappa_null_check()), flush=True)
        return 0
    predictor = Predictor.from_spec(None, "cpu")
    results = []
    for name, make in (("synthetic", synthetic), ("celldeath (replicate batch)", celldeath)):
        t0 = time.perf_counter()
        data = make(predictor)
        if data is None:
            continue
        print(
            f"{name}: {len(data['y'])} windows of {len(set(data['field'].tolist()))} fields, "
            f"features in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        for seed in range(args.seeds):
            r = run(data, predictor, seed, name)
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k not in ("guided", "random_order")}), flush=True)
            for key in ("guided", "random_order"):
                print(
                    key,
                    [
                        (p["n_labelled"], round(p.get("balanced_accuracy") or float("nan"), 3), p.get("interval"))
                        for p in r[key]
                    ],
                    flush=True,
                )
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def _cell(values: list[dict]) -> str:
    acc = [v["balanced_accuracy"] for v in values if v.get("balanced_accuracy") is not None]
    if not acc:
        return "n/a"
    ci = values[0].get("interval")
    seed0 = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    return f"{np.mean(acc):.3f} ({min(acc):.2f}-{max(acc):.2f}){seed0}"


def format_table(results: list[dict]) -> str:
    lines = [
        "| data set | labelled windows | guided loop | random order | shipped | shipped, control threshold |",
        "|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["dataset"] for r in results):
        rs = [r for r in results if r["dataset"] == name]
        for n in SIZES:
            g = [p for r in rs for p in r["guided"] if p["n_labelled"] == n]
            o = [p for r in rs for p in r["random_order"] if p["n_labelled"] == n]
            if not g:
                continue
            lines.append(
                f"| {name} | {n} | {_cell(g)} | {_cell(o)} | {_cell([r['shipped'] for r in rs])} | "
                f"{_cell([r['shipped_control_threshold'] for r in rs])} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
