"""``phototox predict --cluster local:N`` against one process with N threads, old code against new,
in one run (issue 30 item 4).

    python benchmarks/bench_cluster.py --images 8 100 --size 512 --workers 2 --old-tree /path/to/old/checkout

Every measurement is the real command in a fresh subprocess (wall time from start to exit:
imports, cluster start, model loads, work, shutdown), on synthetic fields (phototox.synth.fields), model
``shipped:deadnet-gap-synthetic-v2``, dense, stride 64. Configurations alternate within each
round so that the machine's load falls on all alike. ``--old-tree`` is a checkout of the code
before the change (run with its own folder on PYTHONPATH); without it only the new code runs.
Results: benchmarks/results/cluster.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "cluster.jsonl"
MODEL = "shipped:deadnet-gap-synthetic-v2"
sys.path.insert(0, str(ROOT))  # this checkout's phototox, not an installed one


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo and the core count."""
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def make_images(folder: Path, n: int, size: int) -> list[str]:
    """``n`` synthetic fields (8 distinct doses, repeated) as 16-bit TIFFs."""
    import numpy as np
    import tifffile

    from phototox.synth.fields import render_field

    tiles = [render_field(size, size, dose, seed=300 + i).image for i, dose in enumerate(np.linspace(0, 1, 8))]
    paths = []
    for i in range(n):
        path = folder / f"img{i:04d}.tif"
        tifffile.imwrite(path, tiles[i % len(tiles)], photometric="minisblack")
        paths.append(str(path))
    return paths


def run(tree: Path, paths: list[str], cluster: str | None, threads: int, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``phototox predict`` from ``tree`` (N torch threads in one process, or a cluster).

    CPU: the command's and its waited-for children's (the workers'), user + system."""
    args = [sys.executable, "-m", "phototox", "predict", *paths, "--model", MODEL, "--device", "cpu"]
    args += ["--stride", "64", "--quiet", "--out", str(out)]
    if cluster:
        args += ["--cluster", cluster]
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(threads))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, nargs="+", default=[8, 100])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--old-tree", type=Path, help="checkout of the code before the change")
    args = ap.parse_args(argv)
    trees = {"new": ROOT, **({"old": args.old_tree.resolve()} if args.old_tree else {})}
    configs = [("single", None)] + [(name, f"local:{args.workers}") for name in trees]
    print(f"# {cpu_name()}; load before: {os.getloadavg()[0]:.1f}", flush=True)
    print("| images | one process, N threads (s) | local:N old (s) | local:N new (s) | old / single | new / single |")
    print("|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
        for n in args.images:
            paths = make_images(Path(tmp), n, args.size)
            walls: dict[str, list[float]] = {name: [] for name, _ in configs}
            cpus: dict[str, list[float]] = {name: [] for name, _ in configs}
            for rnd in range(args.rounds):
                for name, cluster in configs:
                    tree = trees["new" if name == "single" else name]
                    wall, cpu = run(tree, paths, cluster, args.workers, Path(tmp) / f"{name}{rnd}.csv")
                    walls[name].append(wall)
                    cpus[name].append(cpu)
                    record = {"images": n, "size": args.size, "config": name, "cluster": cluster, "round": rnd}
                    record.update(
                        wall_s=round(wall, 2), cpu_s=round(cpu, 2), load=round(os.getloadavg()[0], 2), cpu=cpu_name()
                    )
                    with RESULTS.open("a") as fh:
                        fh.write(json.dumps(record) + "\n")
            med = {k: statistics.median(v) for k, v in walls.items()}

            def cell(key: str) -> str:
                return f"{med[key]:.1f}" if key in med else "-"

            def speed(key: str) -> str:  # speed relative to single: single wall / cluster wall
                return f"{med['single'] / med[key]:.2f}x" if key in med else "-"

            print(
                f"| {n} | {cell('single')} | {cell('old')} | {cell('new')} | {speed('old')} | {speed('new')} |",
                flush=True,
            )
            cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
            print("  CPU s, median: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu_med.items()), flush=True)
            for p in paths:
                os.unlink(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
