"""Scale benchmarks (issue 17): peak memory of chunked maps against frame size, and images/s of
``phototox predict`` on a Dask LocalCluster (1 and 2 workers) against the single-process run.

    python benchmarks/bench_scale.py memory --sizes 2048 5120 10240 [--in-memory 2048 5120]
    python benchmarks/bench_scale.py throughput --images 200 --size 1024

Inputs are synthetic (phototox.synth.fields) fields; large frames are tiled from a few rendered 1024 px
fields and written block by block, so generating them never holds the frame. Every measurement
runs the real command in a fresh subprocess; peak memory is that process's own peak RSS (VmHWM;
Dask worker processes are not included).
Results are appended as JSON lines to benchmarks/results/scale.jsonl.
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

import numpy as np

MODEL = "shipped:deadnet-gap-synthetic-v2"
RESULTS = Path(__file__).resolve().parent / "results" / "scale.jsonl"
TILE = 1024


def _tiles(n: int = 4) -> list[np.ndarray]:
    from phototox.synth.fields import render_field

    return [render_field(TILE, TILE, dose, seed=500 + i).image for i, dose in enumerate(np.linspace(0, 1, n))]


def make_large_zarr(path: Path, size: int) -> Path:
    """A size x size uint16 OME-Zarr tiled from rendered fields (mirrored so seams stay smooth)."""
    from phototox.screens.zarrio import MapWriter

    tiles = _tiles()
    with MapWriter(path, (size, size), TILE, 0.434, dtype="uint16") as writer:
        for i, y0 in enumerate(range(0, size, TILE)):
            for j, x0 in enumerate(range(0, size, TILE)):
                tile = tiles[(i * 7 + j * 3) % len(tiles)]
                tile = tile[::-1] if i % 2 else tile
                tile = tile[:, ::-1] if j % 2 else tile
                writer.write(np.ascontiguousarray(tile[: min(TILE, size - y0), : min(TILE, size - x0)]), y0, x0)
    return path


def _run_measured(args: list[str]) -> dict:
    """Run ``phototox ARGS`` in a child; wall time and the child's peak RSS (MiB)."""
    code = (
        "import sys; from phototox.apps.cli import main; rc = main(sys.argv[1:]); "
        "print('PEAK_KB', next(int(v.split()[1]) for v in open('/proc/self/status') if v.startswith('VmHWM:'))); "
        "sys.exit(rc)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    peak = next(int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("PEAK_KB"))
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(peak / 1024, 1)}


def bench_memory(sizes: list[int], in_memory: list[int], chunk: int, mode: str = "dense", stride: int = 32) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        for size in sizes:
            src = make_large_zarr(Path(tmp) / f"frame{size}.ome.zarr", size)
            res = _run_measured(
                [
                    "map",
                    str(src),
                    "--out",
                    str(Path(tmp) / f"out{size}"),
                    "--model",
                    MODEL,
                    "--device",
                    "cpu",
                    "--stride",
                    str(stride),
                    "--mode",
                    mode,
                    "--chunk",
                    str(chunk),
                    "--quiet",
                ]
            )
            record = {
                "bench": "chunked_map_memory",
                "size_px": size,
                "megapixels": size * size / 1e6,
                "chunk": chunk,
                "mode": mode,
                "stride": stride,
                **res,
            }
            _emit(record)
            if size in in_memory:
                import tifffile

                from phototox.screens.zarrio import open_ome_zarr

                tif = Path(tmp) / f"frame{size}.tif"
                tifffile.imwrite(tif, open_ome_zarr(src)[:, :], photometric="minisblack")
                res = _run_measured(
                    [
                        "map",
                        str(tif),
                        "--out",
                        str(Path(tmp) / f"mem{size}"),
                        "--model",
                        MODEL,
                        "--device",
                        "cpu",
                        "--stride",
                        str(stride),
                        "--mode",
                        mode,
                        "--quiet",
                        "--no-overlay",
                    ]
                )
                _emit(
                    {
                        "bench": "in_memory_map_memory",
                        "size_px": size,
                        "megapixels": size * size / 1e6,
                        "mode": mode,
                        "stride": stride,
                        **res,
                    }
                )
            for p in Path(tmp).glob(f"*{size}*"):
                subprocess.run(["rm", "-rf", str(p)], check=False)


def bench_throughput(n_images: int, size: int, configs: list[str], repeat: int) -> None:
    import tifffile

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        tiles = [t[:size, :size] for t in _tiles(8)] if size <= TILE else None
        paths = []
        for i in range(n_images):
            path = Path(tmp) / f"img{i:04d}.tif"
            image = tiles[i % len(tiles)] if tiles else None
            tifffile.imwrite(path, image, photometric="minisblack")
            paths.append(str(path))
        for rep in range(repeat):
            for config in configs:
                extra = [] if config == "single" else ["--cluster", config]
                res = _run_measured(
                    [
                        "predict",
                        *paths,
                        "--model",
                        MODEL,
                        "--device",
                        "cpu",
                        "--quiet",
                        "--out",
                        str(Path(tmp) / f"{config.replace(':', '')}_{rep}.csv"),
                        *extra,
                    ]
                )
                _emit(
                    {
                        "bench": "predict_throughput",
                        "config": config,
                        "images": n_images,
                        "size_px": size,
                        "repeat": rep,
                        "images_per_s": round(n_images / res["wall_s"], 3),
                        **res,
                    }
                )


def _emit(record: dict) -> None:
    record = {
        **record,
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(json.dumps(record), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("memory")
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 5120, 10240])
    p.add_argument("--in-memory", type=int, nargs="*", default=[2048, 5120])
    p.add_argument("--chunk", type=int, default=2048)
    p.add_argument("--mode", default="dense", choices=("dense", "exact"))
    p.add_argument("--stride", type=int, default=32)
    p = sub.add_parser("throughput")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--configs", nargs="+", default=["single", "local:1", "local:2"])
    p.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if args.what == "memory":
        bench_memory(args.sizes, args.in_memory, args.chunk, args.mode, args.stride)
    else:
        bench_throughput(args.images, args.size, args.configs, args.repeat)


if __name__ == "__main__":
    main()
