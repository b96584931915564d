"""Wall time of ``phototox timecourse`` (activity measures only) with 1 and with N worker processes.

    python benchmarks/bench_timecourse.py --workers 2 --json benchmarks/results/timecourse_workers.json

Both runs are the real command in one process of this script, one after the other, on the same
input, so the ratio is from one run. The input is the T98G time-lapse of ``../shared/data``
(Tsai et al., Usiigaci, SoftwareX 9 (2019), MIT licence; 37 frames, cut into 2x2 quadrant fields)
or, when that is absent, a rendered synthetic dose series (``phototox.synth.timelapse``). The
script also checks that both runs wrote the same table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

from phototox.apps.cli import main as phototox

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data"))
T98G = DATA / "usiigaci_t98g_phase" / "frames"


def inputs(tmp: Path) -> tuple[str, list[str]]:
    """(description, command-line inputs and options) of the benchmark's time-lapse."""
    if T98G.is_dir():
        return "T98G, 37 frames, 2x2 quadrants", [
            str(T98G),
            "--interval",
            "10.2",
            "--pixel-size",
            "0.87",
            "--split",
            "2x2",
        ]
    from phototox.synth.timelapse import write_dose_series

    doses = write_dose_series(tmp / "series", n_frames=12, size=256, seed=0)
    fields = sorted(str(p) for p in (tmp / "series").glob("field*.tif"))
    return "synthetic dose series, 9 fields x 12 frames", [*fields, "--doses", str(doses)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="the parallel run's processes (default 2)")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_timecourse_") as tmp:
        label, given = inputs(Path(tmp))
        seconds, tables = {}, {}
        for workers in (1, args.workers):
            out = Path(tmp) / f"out{workers}"
            start = time.perf_counter()
            common = ["--no-sickness", "--bootstrap", "0", "--quiet", "--workers", str(workers)]
            with contextlib.redirect_stdout(io.StringIO()):  # the report: written to the output folder too
                code = phototox(["timecourse", *given, *common, "--out", str(out)])
            seconds[workers] = time.perf_counter() - start
            if code:
                raise SystemExit(f"phototox timecourse failed with {workers} worker(s)")
            tables[workers] = (out / "timecourse.csv").read_text()
    result = {
        "input": label,
        "cpus": os.cpu_count(),
        "seconds_1_worker": round(seconds[1], 1),
        f"seconds_{args.workers}_workers": round(seconds[args.workers], 1),
        "speed-up": round(seconds[1] / seconds[args.workers], 2),
        "identical_tables": tables[1] == tables[args.workers],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["identical_tables"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
