"""The README's T98G ``phototox timecourse`` command WITH P(sick) (``--workers 2``), old code against
new, in one run: wall time, CPU time (this process's children: the command and its workers) and
both per frame (issue 30 item 5).

    python benchmarks/bench_timecourse_sick.py --old-tree /path/to/old/checkout [--workers 2]

The input is the T98G time-lapse of ``../shared/data`` (Tsai et al., Usiigaci, SoftwareX 9 (2019),
MIT licence): 37 frames cut into 2x2 quadrant fields, 148 quadrant frames of 512 x 511 px, shipped
default model (DeadNet-style, Richmond et al. 2017, arXiv:1701.06109). Results are appended to
benchmarks/results/timecourse_sick.jsonl; the script checks that both runs wrote the same table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PHOTOTOX_SHARED_DATA", ROOT.parent / "shared" / "data"))
T98G = DATA / "usiigaci_t98g_phase" / "frames"
RESULTS = ROOT / "benchmarks" / "results" / "timecourse_sick.jsonl"
FRAMES = 37 * 4


def cpu_name() -> str:
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def run(tree: Path, out: Path, workers: int) -> dict:
    """Wall and CPU seconds of the command from ``tree`` (its children's CPU included)."""
    args = [sys.executable, "-m", "phototox", "timecourse", str(T98G), "--interval", "10.2", "--pixel-size", "0.87"]
    args += ["--split", "2x2", "--workers", str(workers), "--out", str(out), "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(tree))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "wall_s_per_frame": round(wall / FRAMES, 3),
        "cpu_s_per_frame": round(cpu / FRAMES, 3),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old-tree", type=Path, help="checkout of the code before the change")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", choices=["old", "new"], help="run one of the two")
    args = ap.parse_args(argv)
    if not T98G.is_dir():
        print(f"bench_timecourse_sick: no T98G frames at {T98G} (set PHOTOTOX_SHARED_DATA)", file=sys.stderr)
        return 1
    trees = {"new": ROOT, **({"old": args.old_tree.resolve()} if args.old_tree else {})}
    if args.only:
        trees = {args.only: trees[args.only]}
    print(f"# {cpu_name()}; T98G 2x2, {FRAMES} quadrant frames, P(sick) on, --workers {args.workers}", flush=True)
    print("| code | wall s | CPU s | wall s/frame | CPU s/frame | load before/after |")
    print("|---|---|---|---|---|---|", flush=True)
    tables = {}
    with tempfile.TemporaryDirectory(prefix="bench_tc_") as tmp:
        for name, tree in trees.items():
            out = Path(tmp) / name
            row = run(tree, out, args.workers)
            tables[name] = (out / "timecourse.csv").read_text()
            print(
                f"| {name} | {row['wall_s']} | {row['cpu_s']} | {row['wall_s_per_frame']} | {row['cpu_s_per_frame']} | "
                f"{row['load_before']}/{row['load_after']} |",
                flush=True,
            )
            with RESULTS.open("a") as fh:
                fh.write(json.dumps({"code": name, "workers": args.workers, "cpu": cpu_name(), **row}) + "\n")
    if len(tables) == 2:
        print("same table:" if tables["old"] == tables["new"] else "tables differ", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
