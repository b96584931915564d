"""False claims on data with no effect: the old control comparison against the new one (issue 25).

    python benchmarks/bench_null.py [--seeds 400] [--real] [--json benchmarks/results/null.json]

Kept out of CI (``tests/test_compare.py`` runs small-seed versions). Every set has NO effect, so
every "sicker" / "unlike your controls" / "harmless at a true harm of the margin" is false.
Rates come with the Clopper-Pearson 95% interval's upper end.

Synthetic (``--seeds`` runs each): per-field P(sick)-like values, mean 0.2, dish-to-dish SD 0.03,
field-to-field SD 0.02, frame-to-frame SD 0.005 (frames of one field nearly alike, fields of one
dish less so, dishes least: the structure issue 25 found on real data).

* one field against k = 4 control fields (``predict --controls``): old rule = percentile
  bootstrap of the control mean with the test value taken as exact (``phototox.trust.controls`` before
  issue 25); new rule = 95% prediction interval for one new field
  (:func:`phototox.stats.compare.check_new_field`). Controls and test from one dish; controls from four
  dishes and the test from a fifth; controls from one dish and the test from another (the
  between-dish difference is real there, and no rule on one field can tell it from light).
* arms of 3 dishes x 3 fields x 4 frames (:func:`phototox.stats.compare.compare`): frames counted as
  independent units (the error issue 25 names) against the replicate as the unit.
* non-inferiority at a true harm equal to the 20% margin (false "harmless"), and power: no
  harm called harmless, and a harm of twice the margin called sicker, at two levels of
  dish-to-dish variation.

Real (``--real``; needs ../shared/data, caches per-field values in
``benchmarks/results/null_cache/``, git-ignored), shipped default model, dense, stride 32, no
domain check:

* T98G (Tsai et al. 2019, Usiigaci; one healthy time-lapse, 0.87 um/px): each frame's map cut
  into 2 x 2 quadrants as fields; each quadrant against the other three of its frame; and the
  issue's case, frames t20-t37 each against frames t01-t18 given as 18 control files.
* celldeath N1 (La Greca et al. 2021; 19 healthy DMSO fields of one replicate, 0.434 um/px):
  each field against the other 18, and random draws of one test field and 4 control fields.

The real sets have NO between-dish variation (one movie; one replicate), so they cannot validate
replicate-level claims; they test the field-level rule only. P(sick) is the DeadNet-style
classifier's (Richmond et al. 2017, arXiv:1701.06109) mean over the field.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from phototox.stats.compare import (
    HARMLESS,
    NO_DIFFERENCE,
    SICKER,
    UNLIKE,
    Arm,
    check_new_field,
    compare,
    non_inferiority,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data"))
CACHE = REPO / "benchmarks" / "results" / "null_cache"
MEAN, DISH, FIELD, FRAME = 0.2, 0.03, 0.02, 0.005


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """Upper end of the two-sided Clopper-Pearson interval of k successes in n."""
    return 1.0 if k == n else float(stats.beta.ppf(0.5 + confidence / 2, k + 1, n - k))


def rate(k: int, n: int) -> dict:
    return {"claims": int(k), "n": int(n), "rate": round(k / n, 4), "cp_upper": round(clopper_pearson_upper(k, n), 4)}


def old_rule(value: float, controls: np.ndarray, seed: int = 0, n_boot: int = 2000) -> str:
    """phototox.trust.controls before issue 25: bootstrap the control mean, the test value exact."""
    rng = np.random.default_rng(seed)
    boot = controls[rng.integers(0, controls.size, (n_boot, controls.size))].mean(axis=1)
    low, high = np.percentile(value - boot, [2.5, 97.5])
    return "sicker" if low > 0 else "healthier" if high < 0 else NO_DIFFERENCE


def fields_of(
    rng, dishes: int, fields: int, frames: int, dish_sd: float = DISH, field_sd: float = FIELD, frame_sd: float = FRAME
) -> tuple[np.ndarray, list, list]:
    """Per-frame values of dishes x fields x frames with no treatment effect, and their labels."""
    values, reps, flds = [], [], []
    for r in range(dishes):
        d = rng.normal(0, dish_sd)
        for f in range(fields):
            e = rng.normal(0, field_sd)
            values += list(MEAN + d + e + rng.normal(0, frame_sd, frames))
            reps += [r] * frames
            flds += [f] * frames
    return np.array(values), reps, flds


def one_field_tables(seeds: int) -> list[dict]:
    """One test field against 4 control fields: old and new rule, three dish layouts."""
    rng = np.random.default_rng(25)
    layouts = {
        "controls and test from one dish": lambda: fields_of(rng, 1, 5, 1)[0],
        "controls from 4 dishes, test from a 5th": lambda: fields_of(rng, 5, 1, 1)[0],
        "controls from one dish, test from another": lambda: np.r_[
            fields_of(rng, 1, 1, 1)[0], fields_of(rng, 1, 4, 1)[0]
        ],
    }
    rows = []
    for name, draw in layouts.items():
        old_sicker = old_any = new_unlike = new_high = 0
        for seed in range(seeds):
            v = draw()
            verdict = old_rule(v[0], v[1:], seed)
            old_sicker += verdict == "sicker"
            old_any += verdict != NO_DIFFERENCE
            check = check_new_field(v[0], v[1:])
            new_unlike += check.verdict == UNLIKE
            new_high += check.verdict == UNLIKE and check.difference > 0
        rows.append(
            {
                "set": f"synthetic: one field vs 4 control fields, {name}",
                "old sicker": rate(old_sicker, seeds),
                "old any claim": rate(old_any, seeds),
                "new unlike (higher)": rate(new_high, seeds),
                "new unlike (either side)": rate(new_unlike, seeds),
            }
        )
    return rows


def arm_tables(seeds: int) -> list[dict]:
    """3 dishes x 3 fields x 4 frames per arm: frames as units against the replicate as the unit."""
    rng = np.random.default_rng(26)
    naive_sicker = naive_any = new_sicker = new_any = 0
    for seed in range(seeds):
        (t, rt, ft), (c, rc, fc) = fields_of(rng, 3, 3, 4), fields_of(rng, 3, 3, 4)
        naive = compare(Arm.of(t), Arm.of(c), n_boot=1000, seed=seed).verdict
        naive_sicker += naive == SICKER
        naive_any += naive != NO_DIFFERENCE
        new = compare(Arm.of(t, replicate=rt, field=ft), Arm.of(c, replicate=rc, field=fc), seed=seed).verdict
        new_sicker += new == SICKER
        new_any += new != NO_DIFFERENCE
    return [
        {
            "set": "synthetic: arms of 3 dishes x 3 fields x 4 frames",
            "old sicker": rate(naive_sicker, seeds),
            "old any claim": rate(naive_any, seeds),
            "new sicker": rate(new_sicker, seeds),
            "new any claim": rate(new_any, seeds),
            "old": "36 frames per arm as independent units (bootstrap)",
            "new": "3 replicate means per arm (Welch t)",
        }
    ]


def non_inferiority_tables(seeds: int, margin: float = 0.2) -> list[dict]:
    """False 'harmless' at a harm equal to the margin; power at no harm and at twice the margin."""
    rows = []
    for dish_sd, dishes in ((0.005, 3), (0.01, 3), (0.01, 4), (0.01, 6)):
        rng = np.random.default_rng(27)
        at_margin = at_zero = sick_at_2d = 0
        for seed in range(seeds):
            (t, rt, ft), (c, rc, fc) = fields_of(rng, dishes, 3, 2, dish_sd), fields_of(rng, dishes, 3, 2, dish_sd)
            control = Arm.of(c, replicate=rc, field=fc)

            def shifted(harm: float) -> Arm:
                return Arm.of(t + harm * MEAN, replicate=rt, field=ft)

            at_margin += non_inferiority(shifted(margin), control, margin, seed=seed).verdict == HARMLESS
            at_zero += non_inferiority(shifted(0.0), control, margin, seed=seed).verdict == HARMLESS
            sick_at_2d += compare(shifted(2 * margin), control, seed=seed).verdict == SICKER
        rows.append(
            {
                "set": f"synthetic: {dishes} dishes x 3 fields, dish SD {dish_sd} (CV {dish_sd / MEAN:.0%}), "
                f"field SD {FIELD}, margin {margin:.0%}",
                "false harmless at harm = margin": rate(at_margin, seeds),
                "power: harmless at no harm": round(at_zero / seeds, 3),
                "power: sicker at harm = 2 x margin": round(sick_at_2d / seeds, 3),
            }
        )
    return rows


def _field_values(name: str, compute) -> np.ndarray:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}.npy"
    if not path.is_file():
        np.save(path, compute())
    return np.load(path)


def _assessor():
    from phototox.maps.inference import Predictor
    from phototox.trust.assess import Assessor

    predictor = Predictor.from_spec("default", "cpu")
    print(f"model: {predictor.model.label}", file=sys.stderr)
    return Assessor(predictor, warn=lambda line: None, domain_check=False)


def t98g_quadrants() -> np.ndarray:
    """(37 frames, 4 quadrants) mean P(sick) of each quadrant of each frame's full map."""
    from phototox.io.images import read_frames
    from phototox.maps.settings import MapSettings
    from phototox.trust.pixelsize import PixelSize

    assessor = _assessor()
    out = []
    for path in sorted((SHARED / "usiigaci_t98g_phase" / "frames").glob("*.tif")):
        frame = read_frames(path)[0]
        result = assessor.analyse(frame, MapSettings(stride=32), PixelSize(0.87, "user"), str(path))[0]
        h, w = result.sick_map.shape
        quads = [result.sick_map[: h // 2, : w // 2], result.sick_map[: h // 2, w // 2 :]]
        quads += [result.sick_map[h // 2 :, : w // 2], result.sick_map[h // 2 :, w // 2 :]]
        out.append([float(q.mean()) for q in quads])
        print(f"  {path.name}: {np.round(out[-1], 3)}", file=sys.stderr)
    return np.array(out)


def celldeath_n1() -> np.ndarray:
    """Mean P(sick) of each healthy (N1) celldeath field."""
    import csv

    from phototox.io.images import read_frames
    from phototox.maps.settings import MapSettings
    from phototox.trust.pixelsize import PixelSize

    root = SHARED / "celldeath_u2os"
    with (root / "manifest.csv").open() as fh:
        paths = [root / r["path"] for r in csv.DictReader(fh) if r["replicate"] == "N1"]
    assessor = _assessor()
    values = []
    for path in sorted(paths):
        result = assessor.analyse(read_frames(path)[0], MapSettings(stride=32), PixelSize(0.434, "user"), str(path))
        values.append(result[0].mean_sick_probability)
        print(f"  {path.name}: {values[-1]:.3f}", file=sys.stderr)
    return np.array(values)


def count(pairs: list[tuple[float, np.ndarray]]) -> dict:
    """Old and new verdicts over (test value, control values) pairs."""
    old = [old_rule(v, c, i) for i, (v, c) in enumerate(pairs)]
    new = [check_new_field(v, c) for v, c in pairs]
    n = len(pairs)
    return {
        "old sicker": rate(sum(o == "sicker" for o in old), n),
        "old any claim": rate(sum(o != NO_DIFFERENCE for o in old), n),
        "new unlike (higher)": rate(sum(c.verdict == UNLIKE and c.difference > 0 for c in new), n),
        "new unlike (either side)": rate(sum(c.verdict == UNLIKE for c in new), n),
    }


def real_tables(draws: int = 400) -> list[dict]:
    quads = _field_values("t98g_quadrants", t98g_quadrants)
    rows = []
    pairs = [(quads[t, q], np.delete(quads[t], q)) for t in range(len(quads)) for q in range(4)]
    rows.append(
        {"set": f"T98G: each quadrant vs the other 3 of its frame ({len(pairs)} pairs, 37 frames)", **count(pairs)}
    )
    frames = quads.mean(axis=1)  # whole-frame P(sick) (mean of its quadrants)
    pairs = [(frames[t], frames[:18]) for t in range(19, 37)]
    rows.append({"set": "T98G: frames t20-t37 each vs t01-t18 as 18 control files (the issue's case)", **count(pairs)})
    n1 = _field_values("celldeath_n1", celldeath_n1)
    pairs = [(n1[i], np.delete(n1, i)) for i in range(n1.size)]
    rows.append({"set": f"celldeath N1: each field vs the other {n1.size - 1}", **count(pairs)})
    rng = np.random.default_rng(28)
    picks = [rng.choice(n1.size, 5, replace=False) for _ in range(draws)]
    pairs = [(n1[p[0]], n1[p[1:]]) for p in picks]
    rows.append({"set": f"celldeath N1: one field vs 4 others, {draws} random draws", **count(pairs)})
    return rows


def markdown(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if k != "set"]
    lines = ["| set | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in rows:
        cells = [
            f"{r[k]['claims']}/{r[k]['n']} = {r[k]['rate']:.1%} (CP <= {r[k]['cp_upper']:.1%})"
            if isinstance(r.get(k), dict)
            else str(r.get(k, ""))
            for k in keys
        ]
        lines.append(f"| {r['set']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--real", action="store_true", help="also the T98G and celldeath N1 null sets")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = {
        "one field": one_field_tables(args.seeds),
        "arms": arm_tables(args.seeds),
        "non-inferiority": non_inferiority_tables(args.seeds),
    }
    if args.real:
        report["real"] = real_tables()
    for name, rows in report.items():
        print(f"\n### {name}\n\n{markdown(rows)}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
