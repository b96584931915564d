"""Peak memory and CPU time of the quality flags against frame size, old (whole frame, float64)
against new (row bands, float32), in one run (issue 30 item 2).

    python benchmarks/bench_quality_memory.py --sizes 1024 2048 4096 10240 [--old-ref efd9eb5]

Each (size, implementation) runs in a fresh subprocess: the frame (uint16, tiled from the real T98G
phase-contrast frame t01 when ../shared/data is present, else a synthetic field) is built first,
then ``quality_flags`` runs under tracemalloc. ``extra MiB`` is tracemalloc's peak during the call
(numpy/scipy arrays beyond the frame itself); ``peak RSS`` is the child's VmHWM (the frame, imports
and the call). The old implementation is ``phototox/trust/quality.py`` at ``--old-ref`` (git show), loaded
as a standalone module beside the new one. Results: benchmarks/results/quality_memory.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "quality_memory.jsonl"

CHILD = r"""
import importlib.util, json, os, resource, sys, time, tracemalloc
from pathlib import Path
import numpy as np
size, impl = int(sys.argv[1]), sys.argv[2]
data = Path(os.environ.get("PHOTOTOX_SHARED_DATA", "") or "/nonexistent") / "usiigaci_t98g_phase" / "frames"
tiles = sorted(data.glob("*.tif*"))
if tiles:
    import tifffile
    tile = tifffile.imread(tiles[0]).astype(np.uint16)
    source = "T98G t01 tiled (mirrored)"
else:
    rng = np.random.default_rng(0)
    from scipy import ndimage
    tile = (30000 + 3000 * ndimage.gaussian_filter(rng.normal(size=(1024, 1024)), 4) / 0.07
            + rng.normal(0, 300, (1024, 1024))).clip(0, 65535).astype(np.uint16)
    source = "synthetic texture"
frame = np.empty((size, size), np.uint16)
th, tw = tile.shape
for i, y in enumerate(range(0, size, th)):
    for j, x in enumerate(range(0, size, tw)):
        t = tile[::-1] if i % 2 else tile
        t = t[:, ::-1] if j % 2 else t
        frame[y:y + th, x:x + tw] = t[: size - y, : size - x]
if impl == "old":
    spec = importlib.util.spec_from_file_location("quality_old", sys.argv[3])
    quality = importlib.util.module_from_spec(spec); spec.loader.exec_module(quality)
else:
    from phototox.trust import quality
tracemalloc.start()
cpu = time.process_time()
flags = quality.quality_flags(frame)
cpu = time.process_time() - cpu
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
hwm = next(int(v.split()[1]) for v in open("/proc/self/status") if v.startswith("VmHWM:"))
print(json.dumps({"size": size, "impl": impl, "source": source, "extra_mib": round(peak / 2**20, 1),
                  "peak_rss_mib": round(hwm / 1024, 1), "cpu_s": round(cpu, 2), "flags": flags}))
"""


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo and the core count."""
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--old-ref", default="efd9eb5", help="git ref whose phototox/trust/quality.py is 'old'")
    ap.add_argument("--impls", nargs="+", default=["old", "new"], choices=["old", "new"])
    args = ap.parse_args(argv)
    old = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{args.old_ref}:phototox/trust/quality.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.setdefault("PHOTOTOX_SHARED_DATA", str(ROOT.parent / "shared" / "data"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old_path = Path(tmp) / "quality_old.py"
        old_path.write_text(old)
        print(f"# {cpu_name()}; old = {args.old_ref}", flush=True)
        print("| frame | old extra MiB | new extra MiB | old peak RSS MiB | new peak RSS MiB | old CPU s | new CPU s |")
        print("|---|---|---|---|---|---|---|", flush=True)
        for size in args.sizes:
            got = {}
            for impl in args.impls:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(size), impl, str(old_path)],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=tmp,
                )
                if out.returncode:
                    print(f"{size} {impl}: failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                    continue
                got[impl] = json.loads(out.stdout.strip().splitlines()[-1])
                got[impl].update(cpu=cpu_name(), old_ref=args.old_ref, time=time.strftime("%Y-%m-%d %H:%M"))
                rows.append(got[impl])

            def cell(impl: str, key: str) -> str:
                return str(got[impl][key]) if impl in got else "-"

            print(
                f"| {size}x{size} | {cell('old', 'extra_mib')} | {cell('new', 'extra_mib')} | "
                f"{cell('old', 'peak_rss_mib')} | {cell('new', 'peak_rss_mib')} | {cell('old', 'cpu_s')} | {cell('new', 'cpu_s')} |",
                flush=True,
            )
            if len(got) == 2 and got["old"]["flags"] != got["new"]["flags"]:
                print(f"  flags differ at {size}: old {got['old']['flags']} new {got['new']['flags']}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
