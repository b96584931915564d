"""Dense sickness maps on an accelerator: speed, agreement of half precision, peak memory (issue 30).

    python benchmarks/bench_gpu.py --device cuda                      # the measurement, on a GPU
    python benchmarks/bench_gpu.py --device cpu --smoke --json out.json   # a tiny CI smoke test

For each precision (fp32; fp16 and bf16 through ``torch.autocast``) it maps a 1344 x 1024 frame
(the real celldeath field when ../shared/data is present, else a synthetic one) at stride 16 with
the shipped default model on the PyTorch engine (autocast acts on PyTorch only), and reports:

* frames/s over batches of B frames (one dense pass per frame; the device is synchronised once per
  batch, after a warm-up batch), median of ``--repeats`` batches;
* agreement: max |P(sick) - P(sick) in fp32| over the window grid (fp32's own row: 0);
* peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the process's peak RSS (VmHWM) on CPU.

``--smoke`` shrinks everything (a 256 x 256 frame, batches of 1, one repeat) so that it runs
in seconds on a CPU; its numbers say only that the script works. A precision the device cannot run
is reported as skipped with the reason. Results are appended to benchmarks/results/gpu.jsonl
(``--json`` also writes them to a file). No GPU figure belongs in benchmarks/README.md unless
this script measured it there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's phototox, not an installed one
RESULTS = ROOT / "benchmarks" / "results" / "gpu.jsonl"
PRECISIONS = ("fp32", "fp16", "bf16")


def device_name(device) -> str:
    """The accelerator's name, or the CPU's model from /proc/cpuinfo."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def test_frame(height: int, width: int):
    """A float32 frame of the requested size: the first celldeath image tiled/cropped, else synthetic."""
    import numpy as np

    data = Path(os.environ.get("PHOTOTOX_SHARED_DATA", ROOT.parent / "shared" / "data")) / "celldeath_u2os" / "images"
    images = sorted(data.glob("*.png")) if data.is_dir() else []
    if images:
        from phototox.io.images import read_frames

        tile = read_frames(images[0])[0].astype(np.float32)
        source = f"celldeath {images[0].name}"
    else:
        from phototox.synth.fields import render_field

        tile = render_field(512, 512, 0.5, seed=1).image.astype(np.float32)
        source = "synthetic field"
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]))
    return np.ascontiguousarray(np.tile(tile, reps)[:height, :width]), source


def peak_memory_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    with open("/proc/self/status") as fh:
        return next(int(v.split()[1]) for v in fh if v.startswith("VmHWM:")) / 1024


def measure(args) -> list[dict]:
    import numpy as np
    import torch

    from phototox.errors import PhototoxError
    from phototox.maps.inference import Predictor

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise PhototoxError(f"--device {args.device}: no CUDA device is available here (torch {torch.__version__})")
    predictor = Predictor.from_spec(args.model, args.device, engine="torch")
    device = predictor.device
    height, width = (256, 256) if args.smoke else (args.height, args.width)
    frame, source = test_frame(height, width)
    batches = [1] if args.smoke else args.batches
    repeats = 1 if args.smoke else args.repeats

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def one_map(precision: str):
        if precision == "fp32":
            return predictor.dense_grid(frame, args.stride)
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        with torch.autocast(device_type=device.type, dtype=dtype):
            return predictor.dense_grid(frame, args.stride)

    rows = []
    reference = None
    for precision in args.precisions:
        base = {
            "precision": precision,
            "device": str(device),
            "device_name": device_name(device),
            "frame": f"{height}x{width}",
            "source": source,
            "stride": args.stride,
            "model": predictor.model.label,
            "engine": "torch",
            "smoke": args.smoke,
            "torch": torch.__version__,
        }
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            grid = np.asarray(one_map(precision), np.float32)  # warm-up, and the grid for agreement
            sync()
        except (RuntimeError, TypeError, ValueError) as exc:  # e.g. fp16 autocast not supported on this CPU build
            rows.append({**base, "skipped": " ".join(str(exc).split())[:200]})
            continue
        if precision == "fp32":
            reference = grid
        diff = float(np.max(np.abs(grid - reference))) if reference is not None else None
        for batch in batches:
            times = []
            for _ in range(repeats):
                sync()
                start = time.perf_counter()
                for _ in range(batch):
                    one_map(precision)
                sync()
                times.append(time.perf_counter() - start)
            wall = statistics.median(times)
            rows.append(
                {
                    **base,
                    "batch": batch,
                    "frames_per_s": round(batch / wall, 3),
                    "s_per_frame": round(wall / batch, 4),
                    "max_abs_diff_vs_fp32": diff,
                    "grid_shape": list(grid.shape),
                    "peak_memory_mib": round(peak_memory_mib(device), 1),
                    "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process VmHWM",
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--smoke", action="store_true", help="a tiny run that only checks the script works (CI)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--height", type=int, default=1344)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    ap.add_argument("--json", type=Path, help="also write the rows to this file")
    args = ap.parse_args(argv)
    from phototox.errors import PhototoxError

    try:
        rows = measure(args)
    except PhototoxError as exc:
        print(f"bench_gpu: {exc}", file=sys.stderr)
        return 1
    print("| precision | batch | frames/s | s/frame | max abs diff vs fp32 | peak memory MiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['precision']} | - | skipped: {r['skipped']} | | | |")
        else:
            diff = r["max_abs_diff_vs_fp32"]
            print(
                f"| {r['precision']} | {r['batch']} | {r['frames_per_s']} | {r['s_per_frame']} | "
                f"{'-' if diff is None else f'{diff:.2g}'} | {r['peak_memory_mib']} |"
            )
    if rows:
        print(f"# {rows[0]['device_name']} ({rows[0]['device']}), {rows[0]['frame']} px, stride {args.stride}")
    if not args.smoke:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as fh:
            for r in rows:
                fh.write(json.dumps({**r, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
