"""False onsets on time-lapses with no effect: the old time-course detector against the new one (issue 25).

    PYTHONPATH=. python benchmarks/bench_onsets.py [--seeds 400] [--real] [--json FILE]

Kept out of CI (``tests/test_bench_null.py`` runs a small-seed version). Every series has NO
effect, so every onset is false. A false onset is counted **per experiment and readout,
family-wise over all frames and all exposed positions** (one false onset anywhere = one false
claim). Rates with the upper end of the Clopper-Pearson 95% interval.

Synthetic (``--seeds`` experiments per row): the per-field readout is simulated directly as a
time series, not rendered from images (rendering 400 x 7 fields x 37 frames is hours on 2 CPUs):
a log-confluence-like value per field and frame, 37 frames (T98G's length), 4 control positions
and 3 exposed positions at dose 0. Field-to-field offset SD 0.15, per-field growth slope
0.005 +/- 0.003 per frame (healthy fields drift apart), AR(1) frame noise (phi 0.6, marginal SD
0.025, so neighbouring frames are alike), and focus excursions: each frame of each field starts one
with probability 0.02, lasting 1-2 frames, size N(0, 0.1). These numbers are of the order of the
T98G quadrants' log confluence (one movie; not a measurement of dish-to-dish spread).

* before: the detector phototox used until issue 25 (``git show 5c22f01:phototox/timecourse/onset.py``,
  loaded as it was): mean of the exposed fields against the control mean, z > 3 for 6 frames
  (one hour at 10.2 min/frame), floor 0.05;
* after: :func:`phototox.timecourse.onset.field_onsets` at each candidate persistence: each exposed
  field against the control fields' prediction interval per frame, Bonferroni over run starts and
  exposed fields at 5%. The default persistence (2 frames) is the smallest whose false-onset rate
  here is SHOWN below 5% (CP upper bound <= 5%; persistence 1: 3.5%, CP <= 5.8%, meets the issue's
  "<= 5%, CP <= 8%" but not this stricter rule, fixed after the 400-seed table was seen).

Real (``--real``; needs ../shared/data, caches the quadrant series in
``benchmarks/results/null_cache/``): the T98G time-lapse (Tsai et al. 2019) cut into 2 x 2
quadrants, confluence, motion and mitotic rounding rate of each, with each rule's floors; each quadrant in turn as the exposed position against
the other three as controls. The four tests share one movie: they are not independent, and one
movie has no dish-to-dish variation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

from phototox.timecourse.onset import OnsetSettings, field_onsets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_null import CACHE, SHARED, rate

REPO = Path(__file__).resolve().parents[1]
FRAMES, CONTROLS, EXPOSED = 37, 4, 3
OLD_COMMIT = "5c22f01"


def null_experiment(rng: np.random.Generator, n_fields: int = CONTROLS + EXPOSED, frames: int = FRAMES) -> np.ndarray:
    """(fields, frames) log-confluence-like series with no effect (see the module)."""
    t = np.arange(frames)
    offset = rng.normal(0, 0.15, (n_fields, 1))
    slope = rng.normal(0.005, 0.003, (n_fields, 1))
    phi, sd = 0.6, 0.025
    noise = np.empty((n_fields, frames))
    noise[:, 0] = rng.normal(0, sd, n_fields)
    for k in range(1, frames):
        noise[:, k] = phi * noise[:, k - 1] + rng.normal(0, sd * np.sqrt(1 - phi**2), n_fields)
    focus = np.zeros((n_fields, frames))
    for f, k in zip(*np.nonzero(rng.random((n_fields, frames)) < 0.02)):
        focus[f, k : k + rng.integers(1, 3)] += rng.normal(0, 0.1)
    return offset + slope * t + noise + focus


def old_detector() -> types.ModuleType:
    """The time-course onset module as it was before issue 25, loaded from git."""
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:phototox/timecourse/onset.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("old_onset")
    sys.modules["old_onset"] = module  # dataclasses look their module up
    exec(compile(source, "old_onset.py", "exec"), module.__dict__)
    return module


def old_false_onset(old, values: np.ndarray, exposed: list[int], controls: list[int], floor: float = 0.05) -> bool:
    settings = old.OnsetSettings(n_boot=0, persistence=6)
    return old.onset_index(values[exposed], values[controls], settings, floor) is not None


def new_false_onset(
    values: np.ndarray, exposed: list[int], controls: list[int], persistence: int, floor: float = 0.0
) -> bool:
    found = field_onsets(values[exposed], values[controls], OnsetSettings(persistence=persistence), floor)
    return any(index is not None for index, _ in found)


def synthetic_table(seeds: int, persistences: tuple[int, ...] = (1, 2, 3, 4), old: bool = True) -> list[dict]:
    """False onsets per experiment on synthetic null series: before, and after at each persistence."""
    module = old_detector() if old else None
    controls, exposed = list(range(CONTROLS)), list(range(CONTROLS, CONTROLS + EXPOSED))
    counts = {"before (z > 3, 6 frames, group mean)": 0, **{f"after, persistence {p}": 0 for p in persistences}}
    for seed in range(seeds):
        values = null_experiment(np.random.default_rng(seed))
        if module is not None:
            counts["before (z > 3, 6 frames, group mean)"] += old_false_onset(module, values, exposed, controls)
        for p in persistences:
            counts[f"after, persistence {p}"] += new_false_onset(values, exposed, controls, p)
    if module is None:
        del counts["before (z > 3, 6 frames, group mean)"]
    return [
        {
            "set": f"synthetic null, {CONTROLS} control + {EXPOSED} exposed positions",
            **{k: rate(v, seeds) for k, v in counts.items()},
        }
    ]


def power_table(seeds: int, persistences: tuple[int, ...] = (1, 2, 3, 4), start: int = 15) -> list[dict]:
    """Exposed positions whose log confluence falls 0.03 per frame from frame ``start``: onsets found, delay."""
    controls, exposed = list(range(CONTROLS)), list(range(CONTROLS, CONTROLS + EXPOSED))
    row: dict = {"set": f"synthetic, exposed fields fall 0.03/frame from frame {start} (found; median delay, frames)"}
    for p in persistences:
        found, delays = 0, []
        for seed in range(seeds):
            values = null_experiment(np.random.default_rng(seed))
            values[exposed, start:] -= 0.03 * np.arange(1, FRAMES - start + 1)
            for index, _ in field_onsets(values[exposed], values[controls], OnsetSettings(persistence=p)):
                found += index is not None
                delays += [] if index is None else [index - start]
        row[f"after, persistence {p}"] = (
            f"{found / (seeds * EXPOSED):.0%} of fields; {np.median(delays) if delays else float('nan'):.0f}"
        )
    return [row]


def t98g_quadrant_series() -> dict[str, np.ndarray]:
    """The four T98G quadrants' activity measures on the detector's scale (cached)."""
    cache = CACHE / "t98g_quadrant_measures.npz"
    if cache.exists():
        return dict(np.load(cache))
    from phototox.timecourse.field_activity import activity_of
    from phototox.timecourse.io import read_field, split_field
    from phototox.timecourse.pipeline import TimecourseSettings, measure_field, onset_scale

    settings = TimecourseSettings()
    quadrants = split_field(read_field(SHARED / "usiigaci_t98g_phase" / "frames", 10.2, min_size=64), 2, 2)
    measured = [measure_field(q, activity_of(q, 0.87, settings), 0.87, settings) for q in quadrants]
    series = onset_scale({m: np.stack([f.values[m] for f in measured]) for m in measured[0].values})
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **series)
    return series


def real_table(persistences: tuple[int, ...] = (1, 2, 3, 4)) -> list[dict]:
    """T98G quadrants, each against the other three (4 dependent tests per readout)."""
    from phototox.timecourse.pipeline import NOISE_FLOORS

    module = old_detector()
    old_floors = {"mitotic_events_per_hour": 0.1}  # the old floors: 0.05 on the log scales, 0.1 events/h
    rows = []
    for measure, values in t98g_quadrant_series().items():
        counts = {"before (z > 3, 6 frames)": 0, **{f"after, persistence {p}": 0 for p in persistences}}
        for q in range(4):
            others = [i for i in range(4) if i != q]
            counts["before (z > 3, 6 frames)"] += old_false_onset(
                module, values, [q], others, old_floors.get(measure, 0.05)
            )
            for p in persistences:
                counts[f"after, persistence {p}"] += new_false_onset(values, [q], others, p, NOISE_FLOORS[measure])
        rows.append({"set": f"T98G quadrants, {measure}", **{k: rate(v, 4) for k, v in counts.items()}})
    return rows


def main() -> None:
    from bench_null import markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = {"synthetic": synthetic_table(args.seeds), "power": power_table(min(args.seeds, 200))}
    if args.real:
        report["real"] = real_table()
    for name, rows in report.items():
        print(f"\n### {name}\n\n{markdown(rows)}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
