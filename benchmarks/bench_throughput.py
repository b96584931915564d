"""Images per second over a folder: read-then-compute (before) vs a read-ahead thread (after).

    python benchmarks/bench_throughput.py --n 100          # 100 real-size images, dense, stride 32

Both loops run in the same process on the same images (the real images of ../shared/data,
cycled to ``--n``), so the ratio is from one run; absolute numbers are noisy on a shared machine.
The "before" loop is what ``phototox map``/``predict`` did until now (read an image, then
analyse it, with pixel-size, domain and quality checks); "after" is
:func:`phototox.results.batch.analyse_paths` (the same work, reading overlapped with compute). A third
loop times the map alone (``Predictor.analyse``, no checks), which shows what the checks cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import torch

from phototox.io.images import read_frames
from phototox.maps.inference import Predictor
from phototox.maps.settings import MapSettings
from phototox.models.loader import load_model
from phototox.results.batch import analyse_paths
from phototox.trust.assess import Assessor

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--mode", default="dense")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pool = sorted((DATA / "celldeath_u2os" / "images").glob("*.png")) + sorted(
        (DATA / "usiigaci_t98g_phase" / "frames").glob("*.tif")
    )
    paths = [pool[i % len(pool)] for i in range(args.n)]
    predictor = Predictor.create(load_model("default"), "cpu")

    def read(path: Path):
        return read_frames(path, min_size=predictor.window)

    quiet = Assessor(predictor, warn=lambda line: None)
    settings = MapSettings(stride=args.stride, mode=args.mode)
    quiet.analyse(read(paths[0]), settings, quiet.pixel_size(None, paths[0]), paths[0].name)  # warm-up
    start = time.perf_counter()
    for path in paths:  # the same work, one image after the other
        quiet.analyse(read(path), settings, quiet.pixel_size(None, path), str(path))
    before = time.perf_counter() - start
    start = time.perf_counter()
    analyse_paths(quiet, paths, read, settings, quiet=True)
    after = time.perf_counter() - start
    start = time.perf_counter()
    for path in paths:  # the map alone: no pixel-size, domain or quality checks
        for frame in read(path):
            predictor.analyse_frame(frame, settings)
    map_only = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "images": args.n,
        "mode": args.mode,
        "stride": args.stride,
        "threads": args.threads,
        "before_images_per_s": args.n / before,
        "after_images_per_s": args.n / after,
        "map_only_images_per_s": args.n / map_only,
        "peak_rss_mib": rss,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
