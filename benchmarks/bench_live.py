"""phototox live on the simulated microscope: false warnings on control positions, warning delay,
and latency per frame against the frame interval (issue 28).

    PYTHONPATH=. python benchmarks/bench_live.py null --seeds 0:200 --size 96 --cells 4 --out FILE.jsonl
    PYTHONPATH=. python benchmarks/bench_live.py latency [--model default]
    PYTHONPATH=. python benchmarks/bench_live.py summary FILE.jsonl [...]

``null``: one real ``UniMMCore`` MDA per seed (simulated devices, controls without excitation, one
exposed position), watched by :func:`phototox.live.attach`; every control is tested against the
other controls, so any warning on a control is false. Counted per experiment, family-wise over all
controls, readouts and frames (one false warning anywhere = one false claim), with the exact
Clopper-Pearson 95% interval. One JSON line per seed, appended as it finishes (so several processes
can share the seeds and a stopped run keeps what it measured).

``latency``: frameReady -> result per analysis frame (queue wait + analysis) at the demo's field size,
and from the analysis time alone, how many positions one analysis thread keeps up with at a given
frame interval (positions x analysis time per frame < interval). Kept out of CI: speed is measured
here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval of a binomial rate."""
    lo = 0.0 if k == 0 else float(stats.beta.ppf((1 - confidence) / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(0.5 + confidence / 2, k + 1, n - k))
    return lo, hi


def run_one(seed: int, size: int, cells: int, frames: int, controls: int, excitation_ms: float, queue: int = 10_000):
    """One simulated acquisition; what the watcher said."""
    from phototox.live import LiveSettings, attach
    from phototox.live.sim import LIGHT, core_for, demo_sequence, known_onsets

    sequence = demo_sequence(frames, controls, (excitation_ms,))
    core, world = core_for(sequence, size, seed, n_cells=cells)
    names = [f"control{i + 1}" for i in range(controls)]
    watcher = attach(core, LiveSettings(light=(LIGHT,), interval_min=10.0, queue_size=queue), controls=names)
    start = time.perf_counter()
    core.mda.run(sequence)
    wall = time.perf_counter() - start
    truth = known_onsets(world, [p.name for p in sequence.stage_positions])
    return {
        "seed": seed,
        "size": size,
        "cells": cells,
        "frames": frames,
        "controls": controls,
        "excitation_ms": excitation_ms,
        "level": watcher.onsets.level,
        "control_warnings": [[w.position, w.readout, w.onset_frame] for w in watcher.onsets.warnings if w.is_control],
        "exposed": [
            {
                "onset": truth("exposed1"),
                "warnings": [
                    [w.readout, w.onset_frame, w.warned_frame]
                    for w in watcher.onsets.warnings
                    if w.position == "exposed1"
                ],
            }
        ],
        "skipped": len(watcher.skipped),
        "errors": watcher.errors[:3],
        "wall_s": wall,
        "analysis_s": float(np.mean(watcher.analysis_s)),
        "latency_s": [float(np.median(watcher.latency_s)), float(np.max(watcher.latency_s))],
    }


def summarise(paths: list[str]) -> str:
    rows = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["size"], r["cells"], r["frames"], r["controls"], r["excitation_ms"]), []).append(r)
    out = [
        "| field px / cells | frames | controls + exposed | seeds | experiments with a false warning on a control "
        "| rate (95% CP) | exposed warned | delay after onset (frames, median [range]) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (size, cells, frames, controls, _ms), rs in sorted(groups.items()):
        k, n = sum(1 for r in rs if r["control_warnings"]), len(rs)
        lo, hi = clopper_pearson(k, n)
        warned = [r for r in rs if r["exposed"][0]["warnings"]]
        delays = [min(w[2] for w in r["exposed"][0]["warnings"]) - r["exposed"][0]["onset"] for r in warned]
        delay = f"{np.median(delays):.0f} [{min(delays)}-{max(delays)}]" if delays else "-"
        out.append(
            f"| {size} / {cells} | {frames} | {controls} + 1 | {n} | {k} | {100 * k / n:.1f}% "
            f"({100 * lo:.1f}-{100 * hi:.1f}%) | {len(warned)}/{n} | {delay} |"
        )
    return "\n".join(out)


def latency(model: str | None, size: int, cells: int) -> str:
    """Analysis time per frame, and the positions one thread keeps up with per interval."""
    record = run_one(0, size, cells, 8, 3, 500.0) if model is None else None
    if model is not None:
        from phototox.live import LiveSettings, attach
        from phototox.live.sim import LIGHT, core_for, demo_sequence

        sequence = demo_sequence(4, 3, (500.0,))
        core, _ = core_for(sequence, size, 0, n_cells=cells)
        watcher = attach(
            core,
            LiveSettings(light=(LIGHT,), interval_min=10.0, queue_size=10_000, model=model, stride=32),
            controls=["control1", "control2", "control3"],
        )
        core.mda.run(sequence)
        record = {
            "analysis_s": float(np.mean(watcher.analysis_s)),
            "latency_s": [float(np.median(watcher.latency_s)), float(np.max(watcher.latency_s))],
        }
    a = record["analysis_s"]
    keeps = {f"{m} min": int(m * 60 // a) for m in (0.5, 1, 5, 10)}
    return json.dumps({"model": model, "size": size, "cells": cells, **record, "positions_kept_up": keeps})


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("pymmcore-plus").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("null")
    p.add_argument("--seeds", default="0:200", help="START:STOP[:STEP]")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--cells", type=int, default=4)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--controls", type=int, default=6)
    p.add_argument("--excitation-ms", type=float, default=500.0)
    p.add_argument("--out", required=True)
    q = sub.add_parser("latency")
    q.add_argument("--model", default=None)
    q.add_argument("--size", type=int, default=192)
    q.add_argument("--cells", type=int, default=16)
    s = sub.add_parser("summary")
    s.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if args.what == "null":
        seeds = range(*[int(x) for x in args.seeds.split(":")])
        for seed in seeds:
            record = run_one(seed, args.size, args.cells, args.frames, args.controls, args.excitation_ms)
            with open(args.out, "a") as handle:
                handle.write(json.dumps(record) + "\n")
    elif args.what == "latency":
        print(latency(args.model, args.size, args.cells))
    else:
        print(summarise(args.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
