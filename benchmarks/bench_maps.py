"""Sickness-map speed and dense-vs-exact agreement, all ratios from one run on one machine.

    python benchmarks/bench_maps.py                    # CPU, synthetic 1344x1024 frame, demo model
    python benchmarks/bench_maps.py --device cuda      # the same on a GPU
    python benchmarks/bench_maps.py --real 6           # + agreement on real images (../shared/data),
                                                       #   with the shipped celldeath model
    python benchmarks/bench_maps.py --dense-only       # dense rows only (+ peak RSS), for before/after runs
    python benchmarks/bench_maps.py --memory 2000 5000 10000   # peak RSS of analyse_frame, one process each

Times a 1344x1024 frame at stride 16 and 32: naive (one window at a time), batched exact and
dense; prints windows/s, frames/s, speed ratios, achieved GFLOP/s against this machine's measured
float32 matmul rate, and how closely dense maps follow exact ones (correlation, max difference,
agreement of the image-level decision).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from phototox.maps.inference import Predictor
from phototox.maps.settings import MapSettings
from phototox.models.architectures import WINDOW

REPO = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int = 1) -> float:
    """Median wall time of ``fn`` (after one warm-up call when repeating)."""
    if repeats > 1:
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(device: torch.device, n: int = 2048) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    seconds = timed(lambda: a @ b, device, repeats=5)
    return 2 * n**3 / seconds / 1e9


def count_flops(module: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds x 2 of the convolutions and linear layers run by ``module(x)``."""
    total = 0.0

    def hook(layer, inputs, output):
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            per_output = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            total += 2.0 * output.numel() * per_output
        elif isinstance(layer, nn.Linear):
            total += 2.0 * output.numel() * layer.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return total


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(size: int, model: str, device: str, stride: int = 32) -> dict:
    """Peak RSS of ``Predictor.analyse_frame`` (dense) on a ``size`` x ``size`` float32 frame.

    Meant to run alone in a fresh process (``--memory``): the peak is the process's.
    """
    predictor = Predictor.from_spec(model, device)
    frame = np.random.default_rng(0).random((size, size), dtype=np.float32) * 100 + 1000
    before = peak_rss_mib()
    start = time.perf_counter()
    result = predictor.analyse_frame(frame, MapSettings(stride=stride, mode="dense"))
    return {
        "size": size,
        "stride": stride,
        "seconds": time.perf_counter() - start,
        "rss_before_mib": before,
        "peak_rss_mib": peak_rss_mib(),
        "frame_mib": frame.nbytes / 2**20,
        "map_mib": result.sick_map.nbytes / 2**20,
    }


def memory_table(sizes: list[int], model: str, device: str) -> list[dict]:
    """Run :func:`memory_probe` for each size in its own process; print and return the rows."""
    import subprocess

    rows = []
    print(f"{'frame':>13s} {'s':>7s} {'RSS before':>11s} {'peak RSS':>9s} {'peak - before':>14s} {'map':>6s}  (MiB)")
    for size in sizes:
        here = str(Path(__file__).parent)
        code = (
            f"import json, sys; sys.path.insert(0, {here!r}); import bench_maps; "
            f"print(json.dumps(bench_maps.memory_probe({size}, {model!r}, {device!r})))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{size:>6d}x{size:<6d} {row['seconds']:7.1f} {row['rss_before_mib']:11.0f} {row['peak_rss_mib']:9.0f} "
            f"{row['peak_rss_mib'] - row['rss_before_mib']:14.0f} {row['map_mib']:6.0f}"
        )
    return rows


def dense_rows(
    predictor: Predictor, frame: np.ndarray, strides=(16, 32), repeats: int = 3, engines=("auto",)
) -> list[dict]:
    """Dense timing only (median of ``repeats`` after a warm-up), with windows/s, Mpx/s and GFLOP/s.

    Each engine (:mod:`phototox.maps.dense_engine`) is timed in turn at each stride, in the same run.
    """
    device = predictor.device
    trunk_frame_flops = count_flops(predictor.model.module.features, torch.zeros(1, 1, *frame.shape, device=device))
    rows = []
    for stride in strides:
        windows = ((frame.shape[0] - WINDOW) // stride + 1) * ((frame.shape[1] - WINDOW) // stride + 1)
        shifts = max(1, (16 // stride) ** 2)
        for engine in engines:
            predictor.dense_engine = engine
            seconds = timed(lambda s=stride: predictor.dense_grid(frame, s), device, repeats=repeats)
            rows.append(_dense_row(engine, stride, windows, seconds, frame, trunk_frame_flops * shifts))
    predictor.dense_engine = "auto"
    return rows


def _dense_row(engine: str, stride: int, windows: int, seconds: float, frame: np.ndarray, flops: float) -> dict:
    return {
        "mode": "dense",
        "engine": engine,
        "stride": stride,
        "windows": windows,
        "seconds_per_frame": seconds,
        "windows_per_s": windows / seconds,
        "mpx_per_s": frame.size / seconds / 1e6,
        "gflops": flops / seconds / 1e9,
    }


def agreement(exact: np.ndarray, dense: np.ndarray, threshold: float = 0.5) -> dict:
    corr = (
        float(np.corrcoef(exact.ravel(), dense.ravel())[0, 1]) if exact.size > 1 and exact.std() > 0 else float("nan")
    )
    return {
        "corr": corr,
        "max_abs_diff": float(np.abs(exact - dense).max()),
        "mean_exact": float(exact.mean()),
        "mean_dense": float(dense.mean()),
        "same_decision": bool((exact.mean() >= threshold) == (dense.mean() >= threshold)),
    }


def benchmark_frame(predictor: Predictor, frame: np.ndarray, strides=(16, 32), naive_windows: int = 48) -> list[dict]:
    device = predictor.device
    module = predictor.model.module
    window_flops = count_flops(module, torch.zeros(1, 1, WINDOW, WINDOW, device=device))
    trunk_frame_flops = count_flops(module.features, torch.zeros(1, 1, *frame.shape, device=device))
    rows = []
    for stride in strides:
        ny, nx = (frame.shape[0] - WINDOW) // stride + 1, (frame.shape[1] - WINDOW) // stride + 1
        windows = ny * nx
        tensor = torch.from_numpy(frame).to(device)
        positions = [(y * stride, x * stride) for y in range(ny) for x in range(nx)][:naive_windows]

        def naive():
            for y, x in positions:
                predictor.classify_windows(tensor[None, y : y + WINDOW, x : x + WINDOW])

        t_naive = timed(naive, device) / len(positions) * windows
        exact_grid = {}
        t_exact = timed(lambda: exact_grid.setdefault("g", predictor.exact_grid(frame, stride)), device)
        dense_grid = {}
        shifts = max(1, (16 // stride) ** 2)
        t_dense = timed(lambda: dense_grid.__setitem__("g", predictor.dense_grid(frame, stride)), device, repeats=3)
        agree = agreement(exact_grid["g"], dense_grid["g"])
        for mode, seconds, flops in (
            ("naive", t_naive, window_flops * windows),
            ("exact", t_exact, window_flops * windows),
            ("dense", t_dense, trunk_frame_flops * shifts),
        ):
            rows.append(
                {
                    "mode": mode,
                    "stride": stride,
                    "windows": windows,
                    "seconds_per_frame": seconds,
                    "windows_per_s": windows / seconds,
                    "frames_per_s": 1 / seconds,
                    "gflops": flops / seconds / 1e9,
                    "extrapolated": mode == "naive",
                }
            )
        rows[-1].update({"vs_exact": t_exact / t_dense, **{f"agree_{k}": v for k, v in agree.items()}})
        rows[-2].update({"vs_naive": t_naive / t_exact})
    return rows


def pooled_agreement(stride: int, per_image: list[dict], exact: list[np.ndarray], dense: list[np.ndarray]) -> dict:
    """Per-image rows plus correlation and largest difference pooled over all images' windows."""
    e, d = np.concatenate(exact), np.concatenate(dense)
    return {
        "stride": stride,
        "images": per_image,
        "pooled_corr": float(np.corrcoef(e, d)[0, 1]),
        "pooled_max_abs_diff": float(np.abs(e - d).max()),
        "decisions_agree": sum(r["same_decision"] for r in per_image),
        "n_images": len(per_image),
    }


def synthetic_agreement(predictor: Predictor, stride: int, doses=(0.25, 0.5, 0.75, 1.0)) -> dict:
    """Dense vs exact on synthetic fields with damaged regions (maps with real spatial structure)."""
    from phototox.synth.fields import render_field

    per_image, pooled_e, pooled_d = [], [], []
    for i, dose in enumerate(doses):
        frame = render_field(1024, 1344, dose, seed=500 + i).image.astype(np.float32)
        e, d = predictor.exact_grid(frame, stride), predictor.dense_grid(frame, stride)
        per_image.append({"image": f"synthetic dose {dose:g}", **agreement(e, d)})
        pooled_e.append(e.ravel())
        pooled_d.append(d.ravel())
    return pooled_agreement(stride, per_image, pooled_e, pooled_d)


def real_agreement(predictor: Predictor, count: int, stride: int) -> dict:
    """Dense vs exact on real images of both classes (per image and pooled)."""
    from phototox.io.images import read_frames

    data = REPO.parent / "shared" / "data"
    paths = []
    manifest = data / "celldeath_u2os" / "manifest.csv"
    if manifest.is_file():
        import csv

        rows = list(csv.DictReader(open(manifest)))
        sick = [r for r in rows if r["label"] == "sick"]
        healthy = [r for r in rows if r["label"] == "healthy"]
        for r in sick[: count // 2] + healthy[: count - count // 2]:
            paths.append(data / "celldeath_u2os" / r["path"])
    paths += sorted((data / "usiigaci_t98g_phase" / "frames").glob("*.tif"))[:2]
    if not paths:
        return {}
    per_image, pooled_e, pooled_d = [], [], []
    for path in paths:
        frame = read_frames(path)[0]
        e, d = predictor.exact_grid(frame, stride), predictor.dense_grid(frame, stride)
        per_image.append({"image": path.name, **agreement(e, d)})
        pooled_e.append(e.ravel())
        pooled_d.append(d.ravel())
    return pooled_agreement(stride, per_image, pooled_e, pooled_d)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        default="shipped:deadnet-gap-synthetic-v2",
        help="model timed on the synthetic frame (default: the demo model, in its domain there)",
    )
    parser.add_argument("--real-model", default="default", help="model for the real-image agreement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image", help="a real frame to time instead of the synthetic 1344x1024 one")
    parser.add_argument("--real", type=int, default=0, help="also measure agreement on this many real images")
    parser.add_argument("--real-stride", type=int, default=32)
    parser.add_argument("--batch-size", type=int, help="exact-mode batch (default: phototox's, 8 on CPU, 64 on GPU)")
    parser.add_argument("--out", help="write all numbers to this JSON file")
    parser.add_argument("--dense-only", action="store_true", help="time dense maps only (and report peak RSS)")
    parser.add_argument("--repeats", type=int, default=3, help="dense repeats (median) with --dense-only")
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["torch", "onnxruntime"],
        help="dense engines timed in turn with --dense-only (box-contract models; others always run on torch)",
    )
    parser.add_argument(
        "--memory",
        type=int,
        nargs="+",
        metavar="SIZE",
        help="peak RSS of analyse_frame (dense, stride 32) on SIZE x SIZE frames, one process each",
    )
    args = parser.parse_args()

    if args.memory:
        rows = memory_table(args.memory, args.model, args.device)
        if args.out:
            Path(args.out).write_text(json.dumps({"memory": rows}, indent=2))
        return 0

    predictor = Predictor.from_spec(args.model, args.device, args.batch_size)
    device = predictor.device
    if args.image:
        from phototox.io.images import read_frames

        frame = read_frames(args.image)[0]
    else:
        from phototox.synth.fields import render_field

        frame = render_field(1024, 1344, 0.75, seed=0).image.astype(np.float32)
    gflops_peak = matmul_gflops(device)
    if args.dense_only:
        rows = dense_rows(predictor, frame, repeats=args.repeats, engines=tuple(args.engines))
        gflops_peak = max(gflops_peak, matmul_gflops(device))  # matmul measured before and after, best kept
        print(f"threads {torch.get_num_threads()}, float32 matmul {gflops_peak:.1f} GFLOP/s")
        for r in rows:
            print(
                f"dense {r['engine']:11s} stride {r['stride']:2d}: {r['seconds_per_frame']:.3f} s/frame {r['windows_per_s']:.0f} windows/s "
                f"{r['mpx_per_s']:.2f} Mpx/s {r['gflops']:.1f} GFLOP/s {100 * r['gflops'] / gflops_peak:.1f}% of matmul, "
                f"peak RSS {peak_rss_mib():.0f} MiB"
            )
        if args.out:
            Path(args.out).write_text(
                json.dumps({"matmul_gflops": gflops_peak, "rows": rows, "peak_rss_mib": peak_rss_mib()}, indent=2)
            )
        return 0
    rows = benchmark_frame(predictor, frame)
    info = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": predictor.model.source,
        "arch": predictor.model.arch,
        "frame": list(frame.shape),
        "matmul_gflops": gflops_peak,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    print(
        f"phototox map benchmark: {info['arch']} on {info.get('gpu', info['device'])} ({info['threads']} threads), "
        f"frame {frame.shape[1]}x{frame.shape[0]}, float32 matmul {gflops_peak:.1f} GFLOP/s"
    )
    header = (
        f"{'mode':6s} {'stride':>6s} {'windows':>8s} {'s/frame':>9s} {'windows/s':>10s} {'frames/s':>9s} "
        f"{'GFLOP/s':>8s} {'%matmul':>8s} {'speed-up':>10s}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = (
            f"{r['vs_naive']:.1f}x naive"
            if "vs_naive" in r
            else f"{r['vs_exact']:.1f}x exact"
            if "vs_exact" in r
            else ""
        )
        star = "*" if r["extrapolated"] else " "
        print(
            f"{r['mode']:6s} {r['stride']:6d} {r['windows']:8d} {r['seconds_per_frame']:8.2f}{star} "
            f"{r['windows_per_s']:10.1f} {r['frames_per_s']:9.3f} {r['gflops']:8.1f} "
            f"{100 * r['gflops'] / gflops_peak:7.1f}% {ratio:>10s}"
        )
    print("* naive time extrapolated from its first windows")
    for r in rows:
        if "agree_corr" in r:
            print(
                f"dense vs exact, stride {r['stride']}: corr {r['agree_corr']:.3f}, max |diff| "
                f"{r['agree_max_abs_diff']:.3f}, mean {r['agree_mean_exact']:.3f} vs {r['agree_mean_dense']:.3f}, "
                f"same decision: {r['agree_same_decision']}"
            )
    result = {"info": info, "rows": rows}
    sections = [("synthetic", lambda: synthetic_agreement(predictor, args.real_stride))]
    if args.real:
        real_predictor = Predictor.from_spec(args.real_model, args.device, args.batch_size)
        sections.append(("real", lambda: real_agreement(real_predictor, args.real, args.real_stride)))
    for name, compute in sections:
        numbers = compute()
        result[name] = numbers
        if not numbers:
            print(f"{name} images: ../shared/data not found, skipped")
            continue
        print(
            f"{name} images (stride {numbers['stride']}): pooled corr {numbers['pooled_corr']:.3f}, max |diff| "
            f"{numbers['pooled_max_abs_diff']:.3f}, decisions agree {numbers['decisions_agree']}/{numbers['n_images']}"
        )
        for r in numbers["images"]:
            print(
                f"  {r['image']:34s} corr {r['corr']:.3f}  max|diff| {r['max_abs_diff']:.3f}  "
                f"exact {r['mean_exact']:.3f}  dense {r['mean_dense']:.3f}"
            )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
