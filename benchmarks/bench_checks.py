"""What the trust checks cost beside the bare map, and how close each dense engine gets to matmul.

    OMP_NUM_THREADS=1 python benchmarks/bench_checks.py [--rounds 5] [--json benchmarks/results/checks.json]

CPU time (``time.process_time``) at one thread, a real 1280x960 celldeath field (La Greca et al.
2021), the celldeath v3 model of this checkout's ``models/`` (DeadNet-GAP, Richmond et al. 2017,
arXiv:1701.06109). Per engine, in the same run, alternating rounds, median of ``--rounds``:

- ``bare map``: ``predict --checks none`` (the dense map and its summary);
- ``checks, one pass``: ``predict`` as shipped now: domain features from the dense tiles
  (:mod:`phototox.trust.domain_pass`) and the quality flags;
- ``checks, two passes``: the same model with its domain statistics marked as the two-pass feature,
  so the check cuts and runs its windows again (the path before the one pass; same cost as before,
  not the same statistics);
- ``domain only``: the one-pass check without the quality flags (their cost is the difference).

Then the dense pass's useful FLOPs (the trunk over the whole frame, as ``bench_maps.py`` counts them)
per CPU second against a float32 matmul (2048^3) timed in the same process, per engine. The CPU's
model name and its avx2 / avx512f / avx512_bf16 / amx flags are printed from /proc/cpuinfo.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from phototox.io.images import read_frames
from phototox.maps.inference import Predictor
from phototox.maps.settings import MapSettings
from phototox.models.weights import load_weights
from phototox.trust.assess import Assessor
from phototox.trust.domain import FEATURE as TWO_PASS
from phototox.trust.pixelsize import PixelSize

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data"))
CELLDEATH = SHARED / "celldeath_u2os"
MODEL = REPO / "models" / "deadnet-gap-celldeath-v3.pt"
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_description() -> dict:
    """Model name, core count and the vector flags that matter for float32/bf16 convolutions."""
    name, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"model": name, "cores": os.cpu_count(), "flags": {f: f in flags for f in FLAGS}}


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / statistics.median(cpu_seconds(lambda: a @ b) for _ in range(repeats)) / 1e9


def trunk_flops(module: torch.nn.Module, shape: tuple[int, int]) -> float:
    """2 x multiply-adds of the trunk's convolutions over the whole frame (the map's useful work)."""
    total = 0.0

    def hook(layer, _inputs, output):
        nonlocal total
        total += 2.0 * output.numel() * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]

    convs = [m for m in module.features.modules() if isinstance(m, torch.nn.Conv2d)]
    handles = [m.register_forward_hook(hook) for m in convs]
    with torch.no_grad():
        module.features(torch.zeros(1, 1, *shape))
    for h in handles:
        h.remove()
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engines", nargs="+", default=["torch", "onnx"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not CELLDEATH.is_dir():
        print(f"skipped: {CELLDEATH} not found (see ../shared/data/README.md)")
        return 0
    torch.set_num_threads(1)
    frame = read_frames(sorted((CELLDEATH / "images").rglob("*.png"))[0])[0]
    model = load_weights(MODEL)
    two_pass = copy.deepcopy(model)
    two_pass.meta = {**model.meta, "domain": {**model.meta["domain"], "feature": TWO_PASS}}
    settings, size = MapSettings(), PixelSize(0.434, "user")
    report: dict = {"cpu": cpu_description(), "frame": list(frame.shape), "threads": 1, "rounds": args.rounds}
    report["matmul_gflops"] = matmul_gflops()
    flops = trunk_flops(model.module, frame.shape)
    print(f"CPU {report['cpu']}, 1 thread, float32 matmul {report['matmul_gflops']:.1f} GFLOP/s")
    for engine in args.engines:
        predictors = {"one": Predictor.create(model, "cpu", engine=engine)}
        predictors["two"] = Predictor.create(two_pass, "cpu", engine=engine)
        variants = {
            "bare map": Assessor(predictors["one"], warn=lambda _l: None, checks="none"),
            "checks, one pass": Assessor(predictors["one"], warn=lambda _l: None),
            "checks, two passes": Assessor(predictors["two"], warn=lambda _l: None),
        }
        domain_only = Assessor(predictors["one"], warn=lambda _l: None)
        times: dict[str, list[float]] = {k: [] for k in [*variants, "domain only", "dense pass"]}
        used = ""
        for assessor in variants.values():  # warm-up (ONNX export, caches)
            used = assessor.analyse(frame, settings, size)[0].engine
        for _ in range(args.rounds):
            for name, assessor in variants.items():
                times[name].append(cpu_seconds(lambda a=assessor: a.analyse(frame, settings, size)))
            times["dense pass"].append(cpu_seconds(lambda: predictors["one"].dense_grid(frame, 16)))
            # domain only: one-pass check with the quality flags switched off for the timing
            import phototox.trust.assess as assess_module

            saved = assess_module.quality_flags
            assess_module.quality_flags = lambda *a, **k: {}
            try:
                times["domain only"].append(cpu_seconds(lambda: domain_only.analyse(frame, settings, size)))
            finally:
                assess_module.quality_flags = saved
        medians = {k: statistics.median(v) for k, v in times.items()}
        bare = medians["bare map"]
        rows = {
            k: {"cpu_s": round(v, 4), "x_bare": round(v / bare, 3), "all": [round(t, 4) for t in times[k]]}
            for k, v in medians.items()
        }
        gflops = flops / medians["dense pass"] / 1e9
        report[engine] = {
            "engine_used": used,
            "rows": rows,
            "dense_gflops": round(gflops, 2),
            "pct_matmul": round(100 * gflops / report["matmul_gflops"], 1),
        }
        print(
            f"engine {engine} (ran: {used}); dense pass {gflops:.1f} GFLOP/s = {report[engine]['pct_matmul']}% of matmul"
        )
        for k, r in rows.items():
            print(f"  {k:20s} {r['cpu_s']:7.3f} s CPU  {r['x_bare']:5.2f}x bare map")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
