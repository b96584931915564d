"""Division events against the by-eye T98G annotations (tests/data/t98g_events.csv), old vs new detector.

The T98G frames are the Usiigaci sample (Tsai et al., SoftwareX 2019; MIT), read from
``../shared/data/usiigaci_t98g_phase`` (or ``PHOTOTOX_SHARED_DATA``). Each quadrant is analysed
as its own field (how ``phototox timecourse --split 2x2`` sees it). The two top quadrants were used
for tuning, the two bottom quadrants only for acceptance. Also scored: the whole frame, and
synthetic fields with known truth (:mod:`phototox.synth.events`, seeds 10-13).

The old detector is the field-wide-spread version of ``phototox/timecourse/mitosis.py`` at commit
``efd9eb5`` (read with ``git show``); it reports rounding events without an outcome, scored here
as divisions.

    python benchmarks/bench_events.py [--old] [--json benchmarks/results/events.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from phototox.timecourse.event_truth import Event, in_box, read_events, score  # noqa: E402
from phototox.timecourse.events import events_in_stack  # noqa: E402

DATA = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data")) / "usiigaci_t98g_phase"
QUADRANTS = {"top-left": (0, 0), "top-right": (0, 512), "bottom-left": (511, 0), "bottom-right": (511, 512)}
OLD_COMMIT = "efd9eb5"


def old_detector():
    """The previous mitosis module (global spread), loaded from git."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{OLD_COMMIT}:phototox/timecourse/mitosis.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.replace("from .activity import flatten", "from phototox.timecourse.activity import flatten")
    module = types.ModuleType("old_mitosis")
    sys.modules["old_mitosis"] = module  # dataclasses look their module up
    exec(compile(source, "old_mitosis.py", "exec"), module.__dict__)
    return module


def old_events(stack: np.ndarray, interval: float, pixel: float, old) -> list[Event]:
    detections = [old.detect_round_objects(f, pixel) for f in stack]
    tracks = old.link_detections(detections, pixel, 12.0, 2)
    events, _ = old.rounding_events(tracks, interval, 90.0, pixel, 24.0)
    return [Event(e.start, e.points[0][0], e.points[0][1], "division") for e in events]


def run(stack: np.ndarray, detector: str, old) -> dict[str, list[Event]]:
    """Events per quadrant and of the whole frame, in whole-frame coordinates."""
    out = {}
    for name, (y0, x0) in QUADRANTS.items():
        tile = stack[:, y0 : y0 + 511, x0 : x0 + 512]
        found = old_events(tile, 10.2, 0.87, old) if detector == "old" else events_in_stack(tile, 10.2, 0.87)
        out[name] = [Event(e.frame, e.y + y0, e.x + x0, e.outcome) for e in found]
    out["whole"] = old_events(stack, 10.2, 0.87, old) if detector == "old" else events_in_stack(stack, 10.2, 0.87)
    return out


def synthetic() -> dict[str, str]:
    from phototox.synth.events import PIXEL_UM, render_event_field

    found: list[Event] = []
    truth: list[Event] = []
    for seed in range(10, 14):
        rng = np.random.default_rng(seed)
        schedule = [
            (int(rng.integers(1, 10)), "division" if rng.random() < 0.6 else "failed_division") for _ in range(8)
        ]
        field = render_event_field(16, 256, schedule, seed=seed, bead=True)
        offset = 1000 * seed  # fields apart
        found += [Event(e.frame, e.y + offset, e.x, e.outcome) for e in events_in_stack(field.stack, 10.0, PIXEL_UM)]
        truth += [Event(e.frame, e.y + offset, e.x, e.outcome) for e in field.events]
    return {o: score(found, truth, (o,)).line() for o in ("division", "failed_division")}


def main() -> None:
    import tifffile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", action="store_true", help="also run the old detector (about 1 min more)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (DATA / "frames").is_dir():
        sys.exit(f"{DATA}/frames: not found; set PHOTOTOX_SHARED_DATA")
    stack = np.stack([tifffile.imread(p).astype(np.float32) for p in sorted((DATA / "frames").glob("*.tif"))])
    truth = read_events(REPO / "tests" / "data" / "t98g_events.csv")
    old = old_detector() if args.old else None
    results: dict = {}
    print("| detector | set | divisions (precision, recall; Wilson 95%) | seconds |")
    print("|---|---|---|---|")
    for detector in ("old", "new") if args.old else ("new",):
        start = time.perf_counter()
        found = run(stack, detector, old)
        seconds = time.perf_counter() - start
        sets = {
            "tuning (top quadrants)": (found["top-left"] + found["top-right"], in_box(truth, 0, 0, 511, 1024)),
            "acceptance (bottom quadrants)": (
                found["bottom-left"] + found["bottom-right"],
                in_box(truth, 511, 0, 1022, 1024),
            ),
            "all four quadrants": ([e for q in QUADRANTS for e in found[q]], truth),
            "whole frame": (found["whole"], truth),
        }
        for name, (d, t) in sets.items():
            # in_box shifts coordinates; put the truth back into whole-frame pixels
            if name.startswith("tuning"):
                t = [Event(e.frame, e.y, e.x, e.outcome) for e in t]
            elif name.startswith("acceptance"):
                t = [Event(e.frame, e.y + 511, e.x, e.outcome) for e in t]
            line = score(d, t).line()
            results[f"{detector}: {name}"] = line
            print(f"| {detector} | {name} | {line} | {seconds:.0f} (all sets) |")
        if detector == "new":
            for name in QUADRANTS:
                outcomes = [(e.frame + 1, round(e.x), round(e.y), e.outcome) for e in found[name]]
                results[f"new events {name} (frame 1-based, x, y, outcome)"] = outcomes
    for outcome, line in synthetic().items():
        results[f"new: synthetic {outcome}"] = line
        print(f"| new | synthetic, 4 fields x 8 events: {outcome} | {line} | |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
