"""Onset delay and false alarms: phototox's time-lapse readouts beside PhotoFiTT's activity (issue 31).

    PYTHONPATH=. python benchmarks/bench_peer.py [--seeds 12] [--controls 3] [--json FILE]

Kept out of CI. Each seed renders one synthetic experiment with :mod:`phototox.synth.timelapse`
(36 frames, 10 min apart, 256 x 256 px at 0.87 um/px): 3 (``--controls``) zero-light control positions, 2 more
zero-light positions treated as if exposed (every onset there is a false alarm) and 2 positions at
each of three irradiances, whose damage starts at a known frame (the generator's ``onset_frame``).

Readouts, per position and frame:

* phototox ``motion_um_per_min`` (optical flow) and ``frame_change`` (squared change of consecutive
  flattened frames over the cell-covered pixels), from :mod:`phototox.timecourse.activity`;
* PhotoFiTT's "masked mean activity" (del Rosario et al. 2024; github.com/esgomezm/photofitt,
  ``analysis/fov_activity.py``, MIT licence), its published formula reimplemented here, not its
  code: each frame percentile-normalised to [0, 1] and its illumination removed (Gaussian sigma 60
  px), squared differences of consecutive frames, their sum divided by the number of pixels whose
  difference is above the 30th percentile of that difference image.

Onsets, for every readout the same rule: phototox's (:func:`phototox.timecourse.onset.field_onsets`,
log scale, each readout's noise floor, family-wise 5% over frames and positions, persistence 2),
with the 3 controls as the reference. Also, for PhotoFiTT's activity, the "simple below the
controls" rule: the first frame after the baseline where the position lies below every control for
2 frames running (no level, no multiplicity: its false alarms show why a level is needed).

Reported per readout: the share of exposed positions with an onset, the median delay (frames after
the true onset; negative = before it), and false alarms on the dose-0 positions per experiment with
a Clopper-Pearson upper bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from phototox.synth.timelapse import PIXEL_UM, TimelapseBiology, onset_frame, render_dose_series
from phototox.timecourse.activity import (
    FLATTEN_UM,
    flow_factor,
    foreground_mask,
    frame_change,
    motion_um_per_min,
)
from phototox.timecourse.onset import OnsetSettings, field_onsets
from phototox.timecourse.pipeline import NOISE_FLOORS, onset_scale

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_null import rate

INTERVAL_MIN = 10.0
FRAMES, SIZE = 36, 256
CONTROLS, NULL_EXPOSED = 3, 2
IRRADIANCES = (100.0, 200.0, 400.0)  # mW/cm2, 50 ms per frame: the generator's default dose series
PER_DOSE = 2
EXPOSURE_MS = 50.0


def photofitt_activity(stack: np.ndarray) -> np.ndarray:
    """PhotoFiTT's masked mean activity per frame (first frame NaN), its formula reimplemented."""
    frames = []
    for frame in stack.astype(np.float32):
        low, high = np.percentile(frame, (0, 100))
        norm = (frame - low) / max(high - low, 1e-20)
        frames.append(norm - ndimage.gaussian_filter(norm, 60) + ndimage.gaussian_filter(norm, 60).mean())
    out = np.full(len(frames), np.nan)
    for t in range(1, len(frames)):
        diff = np.square(frames[t - 1] - frames[t])
        cut = np.percentile(diff, 30)
        active = int(np.sum((diff - cut) / max(float(diff.max() - cut), 1e-20) > 0.001))
        out[t] = float(diff.sum()) / max(active, 1)
    return out


def phototox_readouts(stack: np.ndarray) -> dict[str, np.ndarray]:
    """Motion and frame change of one position, as ``phototox timecourse`` measures them."""
    n = len(stack)
    motion, change = np.full(n, np.nan), np.full(n, np.nan)
    factor = flow_factor(PIXEL_UM)
    previous = foreground_mask(stack[0], PIXEL_UM)
    for t in range(1, n):
        mask = foreground_mask(stack[t], PIXEL_UM)
        cells = mask | previous
        motion[t] = motion_um_per_min(stack[t - 1], stack[t], cells, PIXEL_UM, INTERVAL_MIN, factor)
        change[t] = frame_change(stack[t - 1], stack[t], cells, FLATTEN_UM / PIXEL_UM)
        previous = mask
    return {"motion_um_per_min": motion, "frame_change": change}


def simple_below_controls(
    exposed: np.ndarray, controls: np.ndarray, baseline: int = 3, run: int = 2
) -> list[int | None]:
    """First frame after ``baseline`` where a position is below every control for ``run`` frames."""
    found: list[int | None] = []
    with warnings.catch_warnings():  # the first frame has no difference: NaN everywhere
        warnings.simplefilter("ignore", RuntimeWarning)
        below = exposed < np.nanmin(controls, axis=0)
    for row in below:
        hit = None
        for t in range(baseline, row.size - run + 1):
            if row[t : t + run].all():
                hit = t
                break
        found.append(hit)
    return found


def experiment(seed: int) -> dict:
    """One synthetic experiment: every readout of every position, the true onsets and the timing."""
    layout = [0.0] * (CONTROLS + NULL_EXPOSED) + [i for i in IRRADIANCES for _ in range(PER_DOSE)]
    series: dict[str, list[np.ndarray]] = {"motion_um_per_min": [], "frame_change": [], "photofitt_activity": []}
    seconds = {"phototox (flow + frame change)": 0.0, "photofitt activity": 0.0}
    truths = []
    for k, irradiance in enumerate(layout):
        per_frame = irradiance * EXPOSURE_MS * 1e-6
        stack, truth = render_dose_series(FRAMES, SIZE, per_frame, seed=seed * 1000 + k)
        truths.append(truth["onset_frame"])
        start = time.process_time()
        for name, values in phototox_readouts(stack).items():
            series[name].append(values)
        seconds["phototox (flow + frame change)"] += time.process_time() - start
        start = time.process_time()
        series["photofitt_activity"].append(photofitt_activity(stack))
        seconds["photofitt activity"] += time.process_time() - start
    return {"series": {m: np.array(v) for m, v in series.items()}, "truth": truths, "cpu_s": seconds}


def tally(seeds: int) -> dict:
    """Onsets found, delays and false alarms per readout and rule over ``seeds`` experiments."""
    controls = list(range(CONTROLS))
    null = list(range(CONTROLS, CONTROLS + NULL_EXPOSED))
    exposed = list(range(CONTROLS + NULL_EXPOSED, CONTROLS + NULL_EXPOSED + len(IRRADIANCES) * PER_DOSE))
    rules = ["motion_um_per_min", "frame_change", "photofitt_activity", "photofitt_activity (simple rule)"]
    found = {r: {d: [] for d in IRRADIANCES} for r in rules}
    false = dict.fromkeys(rules, 0)
    cpu = {"phototox (flow + frame change)": 0.0, "photofitt activity": 0.0}
    settings = OnsetSettings()
    for seed in range(seeds):
        run = experiment(seed)
        for k, v in run["cpu_s"].items():
            cpu[k] += v
        for rule in rules:
            measure = rule.split(" ")[0]
            values = (
                onset_scale({measure: run["series"][measure]})[measure]
                if measure != "photofitt_activity"
                else (np.log(run["series"][measure] + 1e-6))
            )
            positions = null + exposed
            if rule.endswith("(simple rule)"):
                hits = simple_below_controls(values[positions], values[controls])
            else:
                floor = NOISE_FLOORS.get(measure, 0.05)
                hits = [i for i, _ in field_onsets(values[positions], values[controls], settings, floor)]
            false[rule] += any(h is not None for h in hits[: len(null)])
            for pos, hit in zip(exposed, hits[len(null) :]):
                irradiance = IRRADIANCES[(pos - exposed[0]) // PER_DOSE]
                truth = run["truth"][pos]
                found[rule][irradiance].append(None if hit is None else hit - truth)
    rows = []
    for rule in rules:
        row: dict = {"readout (rule)": rule}
        for irradiance in IRRADIANCES:
            delays = [d for d in found[rule][irradiance] if d is not None]
            onset = onset_frame(irradiance * EXPOSURE_MS * 1e-6, TimelapseBiology())
            row[f"{irradiance:g} mW/cm2 (true onset frame {onset})"] = (
                f"{len(delays)}/{len(found[rule][irradiance])} found, median delay "
                f"{np.median(delays) if delays else float('nan'):+.0f} frames"
            )
        row["false alarms (dose-0 positions, per experiment)"] = rate(false[rule], seeds)
        rows.append(row)
    frames = seeds * (CONTROLS + NULL_EXPOSED + len(IRRADIANCES) * PER_DOSE) * FRAMES
    return {"rows": rows, "cpu_ms_per_frame": {k: round(1000 * v / frames, 1) for k, v in cpu.items()}}


def markdown(result: dict) -> str:
    rows = result["rows"]
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = []
        for k in keys:
            v = row[k]
            cells.append(
                f"{v['claims']}/{v['n']} ({v['rate']:.1%}, CP <= {v['cp_upper']:.1%})"
                if isinstance(v, dict)
                else str(v)
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("CPU per frame (ms): " + ", ".join(f"{k} {v}" for k, v in result["cpu_ms_per_frame"].items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--controls", type=int, default=CONTROLS, help="zero-light control positions (default 3)")
    args = parser.parse_args()
    globals()["CONTROLS"] = args.controls  # the module's layout reads it
    result = tally(args.seeds)
    print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
