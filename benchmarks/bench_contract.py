"""Dense vs exact under the box preprocessing contract, on real images: agreement by construction.

    python benchmarks/bench_contract.py                          # every real image, stride 32
    python benchmarks/bench_contract.py --strides 16 32 --limit 3 --model run/model.pt

For each image (all of ../shared/data unless --limit) and stride, computes the exact map
(windows of the box-normalised frame) and the dense map (one pass over it) and reports the largest
absolute difference in P(sick), the spread of the exact map (so a near-constant map cannot pass
unnoticed) and both times. A model whose weight file predates contracts is forced to ``box``
(``--force-box``, the default for such files): the agreement does not depend on the weights.
Timings are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from phototox.io.images import read_frames
from phototox.maps.inference import Predictor
from phototox.models.loader import load_model

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data"))


def real_images(limit: int | None) -> list[Path]:
    """Celldeath sick and healthy images and T98G frames, interleaved so a limit samples all three."""
    groups = [
        sorted((DATA / "celldeath_u2os" / "images").glob("U2_CPT*")),
        sorted((DATA / "celldeath_u2os" / "images").glob("U2_DMSO*")),
        sorted((DATA / "usiigaci_t98g_phase" / "frames").glob("*.tif")),
    ]
    order = [p for row in zip(*groups, strict=False) for p in row] + [
        p for g in groups for p in g[min(map(len, groups)) :]
    ]
    return order[:limit] if limit else order


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--strides", type=int, nargs="+", default=[32])
    parser.add_argument("--limit", type=int, help="only the first N images (sick, healthy, T98G in turn)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="JSON file for the rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    forced = "normalisation" not in model.meta
    if forced:
        model.meta["normalisation"] = {"kind": "box", "size": 221, "edge": "reflect"}
    predictor = Predictor.create(model, "cpu")
    rows = []
    print(f"model {args.model} contract {predictor.contract.describe()}{' (forced)' if forced else ''}")
    print("| image | stride | windows | max abs diff | exact min-max | exact s | dense s |")
    print("|---|---|---|---|---|---|---|")
    for path in real_images(args.limit):
        frame = read_frames(path)[0].astype(np.float32)
        for stride in args.strides:
            t0 = time.perf_counter()
            exact = predictor.exact_grid(frame, stride)
            t1 = time.perf_counter()
            dense = predictor.dense_grid(frame, stride)
            t2 = time.perf_counter()
            row = {
                "image": path.name,
                "stride": stride,
                "windows": int(exact.size),
                "max_abs_diff": float(np.abs(exact - dense).max()),
                "exact_min": float(exact.min()),
                "exact_max": float(exact.max()),
                "exact_s": t1 - t0,
                "dense_s": t2 - t1,
            }
            rows.append(row)
            print(
                f"| {path.name} | {stride} | {exact.size} | {row['max_abs_diff']:.1e} | "
                f"{row['exact_min']:.3f}-{row['exact_max']:.3f} | {t1 - t0:.1f} | {t2 - t1:.2f} |",
                flush=True,
            )
    worst = max(r["max_abs_diff"] for r in rows)
    print(f"largest difference over {len(rows)} maps: {worst:.2e}")
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "forced_box": forced, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
