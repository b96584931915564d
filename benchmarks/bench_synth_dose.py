"""Division delay and failure against dose on the synthetic time-lapse: known truth vs the detector.

Renders ``--fields`` fields per irradiance with :mod:`phototox.synth.timelapse` (its dose model:
mitotic delay ``pace = 1 / (1 + D / delay_dose)``, failure ``p_fail = 1 - exp(-D / fail_dose)``,
``D`` the dose since the onset), runs the event detector and the cell count on the pixels, and
prints per dose: true vs detected divisions and failed divisions (pooled over fields; precision
and recall of the matched events), the failure fraction with Wilson 95% intervals, mitoses and
divisions per cell per hour (true: live cells of the truth; detected: the estimated cell count),
and whether each readout is monotone across doses. Synthetic cells test the machinery, not the
biology.

    python benchmarks/bench_synth_dose.py [--fields 4] [--frames 36] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from phototox.synth.timelapse import INTERVAL_MIN, PIXEL_UM, TimelapseBiology, render_dose_series  # noqa: E402
from phototox.timecourse.dose_recovery import monotone, pool_by_dose, recover_field  # noqa: E402

IRRADIANCES = (0.0, 100.0, 200.0, 400.0)  # mW/cm2, as in `phototox synth --timelapse`
EXPOSURE_MS = 50.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=4, help="fields per irradiance")
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    biology = TimelapseBiology()
    fields = []
    start = time.perf_counter()
    for k, irradiance in enumerate(IRRADIANCES):
        per_frame = irradiance * EXPOSURE_MS * 1e-6
        for j in range(args.fields):
            seed = args.seed * 10000 + k * 100 + j
            stack, truth = render_dose_series(args.frames, args.size, per_frame, seed=seed, biology=biology)
            fields.append(
                recover_field(stack, truth, per_frame * args.frames, INTERVAL_MIN, PIXEL_UM, biology.rounding_frames)
            )
    elapsed = time.perf_counter() - start
    doses = pool_by_dose(fields)
    print(
        f"{len(fields)} fields ({args.fields} per dose), {args.frames} frames of {INTERVAL_MIN:g} min, "
        f"{args.size} px at {PIXEL_UM} um/px; {elapsed:.0f} s"
    )
    print(
        f"dose model: delay_dose {biology.delay_dose} J/cm2, fail_dose {biology.fail_dose} J/cm2, "
        f"death_dose {biology.death_dose} J/cm2, onset at {biology.critical_dose} J/cm2 cumulative"
    )
    print(
        "| dose J/cm2 | divisions true / det (matched) | failed true / det (matched) | failure fraction true "
        "(95% CI) | failure fraction detected (95% CI) | mitoses /cell/h true / det | divisions /cell/h "
        "true / det | delay frames/mitosis (true) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for d in doses:
        ft, fd = d.failure("true"), d.failure("detected")
        print(
            f"| {d.dose_j_cm2:.3g} | {d.true['division']} / {d.detected['division']} ({d.matched['division']}) "
            f"| {d.true['failed_division']} / {d.detected['failed_division']} ({d.matched['failed_division']}) "
            f"| {ft[0]:.2f} ({ft[1]:.2f}-{ft[2]:.2f}) of {ft[3]} | {fd[0]:.2f} ({fd[1]:.2f}-{fd[2]:.2f}) of {fd[3]} "
            f"| {d.mitosis_rate('true'):.3f} / {d.mitosis_rate('detected'):.3f} "
            f"| {d.division_rate('true'):.3f} / {d.division_rate('detected'):.3f} | {d.mean_delay_frames:.2f} |"
        )
    trends = {
        "failure fraction rises (true)": monotone([d.failure("true")[0] for d in doses], True),
        "failure fraction rises (detected)": monotone([d.failure("detected")[0] for d in doses], True),
        "division rate falls (true)": monotone([d.division_rate("true") for d in doses], False),
        "division rate falls (detected)": monotone([d.division_rate("detected") for d in doses], False),
        "mitosis rate falls (true)": monotone([d.mitosis_rate("true") for d in doses], False),
        "mitosis rate falls (detected)": monotone([d.mitosis_rate("detected") for d in doses], False),
    }
    inside = [d.failure("detected")[1] <= d.failure("true")[0] <= d.failure("detected")[2] for d in doses]
    print("monotone across doses: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in trends.items()))
    print(f"true failure fraction inside the detected one's Wilson 95% interval: {sum(inside)}/{len(inside)} doses")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {"fields": [asdict(f) for f in fields], "trends": trends, "seconds": elapsed}
        args.json.write_text(json.dumps(doc, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
