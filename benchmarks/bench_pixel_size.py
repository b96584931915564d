"""Does P(sick) survive a change of magnification? Before and after pixel-size handling.

    python benchmarks/bench_pixel_size.py     # shipped celldeath model, ../shared/data ($PHOTOTOX_SHARED_DATA)

Base images: celldeath U2OS fields (La Greca et al. 2021) downsampled to 0.868 um/px (a 10x
objective's scale, like the T98G data), chosen because the shipped model, given that true pixel
size, calls them *intermediate* (P(sick) 0.2-0.3; at 0.434 um/px every celldeath field is 0.00 or
1.00 and proves nothing): U2_DMSO_1h_RGB_0012/0019/0021_N1 were the three highest of the scan of
every second image in ``--scan``. Each base image is resampled by 0.5x, 0.75x, 1.5x and 2x and
analysed (dense, stride 32) twice: *before* (the frame as it is, as phototox did without pixel
size handling) and *after* (its true pixel size given, resampled to the model's 0.434 um/px,
map returned at the image's size). Reported: image-level P(sick) per scale, its spread
(max - min over the five scales) and the mean absolute difference of each map, resampled back to
the base image's size, from the base image's map. Targets: spread <= 0.1, map MAD <= 0.1. Measured: met from 0.75x to 2x; the 0.5x copies
(1.74 um/px, 4x too coarse for the model: cubic upsampling cannot restore the detail) stay
0.10-0.13 below the base image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from phototox.io.images import read_frames
from phototox.maps.inference import Predictor
from phototox.maps.settings import MapSettings
from phototox.models.loader import load_model
from phototox.trust.assess import Assessor
from phototox.trust.pixelsize import PixelSize, resample, scaled_shape

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data")) / "celldeath_u2os" / "images"
SOURCE_UM = 0.434
BASE_FACTOR = 0.5  # base images at 0.868 um/px
SCALES = (0.5, 0.75, 1.0, 1.5, 2.0)


def base_image(name: str) -> np.ndarray:
    frame = read_frames(DATA / name)[0]
    return resample(frame, scaled_shape(frame.shape, BASE_FACTOR))


def measure(assessor: Assessor, base: np.ndarray, base_um: float, stride: int = 32) -> dict:
    """P(sick) and map MAD per scale, before and after pixel-size handling."""
    out: dict = {"before": {}, "after": {}}
    reference = {}
    for scale in SCALES:
        frame = base if scale == 1.0 else resample(base, scaled_shape(base.shape, scale))
        true_um = base_um / scale
        t0 = time.perf_counter()
        before = assessor.predictor.analyse_frame(frame, MapSettings(stride=stride))
        t1 = time.perf_counter()
        after = assessor.analyse(frame, MapSettings(stride=stride), PixelSize(true_um, "user"), "bench")[0]
        t2 = time.perf_counter()
        for key, r, secs in (("before", before, t1 - t0), ("after", after, t2 - t1)):
            back = resample(r.sick_map, base.shape, order=1)
            out[key][scale] = {
                "p_sick": r.mean_sick_probability,
                "map": back,
                "seconds": secs,
                "pixel_size_um": true_um,
            }
            if scale == 1.0:
                reference[key] = back
    for key, per_scale in out.items():
        for v in per_scale.values():
            v["map_mad"] = float(np.abs(v.pop("map") - reference[key]).mean())
        ps = [v["p_sick"] for v in per_scale.values()]
        out[key]["spread"] = float(max(ps) - min(ps))
        ps = [v["p_sick"] for s, v in per_scale.items() if s in SCALES and s >= 0.75]
        out[key]["spread_from_075"] = float(max(ps) - min(ps))
        out[key]["max_map_mad"] = float(max(v["map_mad"] for s, v in per_scale.items() if s in SCALES))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--scan", action="store_true", help="list P(sick) of every celldeath image at 0.868 um/px")
    parser.add_argument("--model", default=None, help="model to test (default: the shipped default)")
    parser.add_argument(
        "--images",
        nargs="+",
        help="celldeath base images (default: the three whose P(sick) at 0.868 um/px is nearest 0.5, from a scan)",
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (see ../shared/data/README.md)")
        return 0
    torch.set_num_threads(max(1, torch.get_num_threads()))
    assessor = Assessor(Predictor.create(load_model(args.model), "cpu"), domain_check=False, warn=lambda line: None)
    base_um = SOURCE_UM / BASE_FACTOR
    names = list(args.images or [])
    if args.scan or not names:
        scan = {}
        for path in sorted(DATA.glob("*.png")):
            r = assessor.analyse(base_image(path.name), MapSettings(stride=32), PixelSize(base_um, "user"), path.name)[
                0
            ]
            scan[path.name] = r.mean_sick_probability
            if args.scan:
                print(f"{path.name:32s} {r.mean_sick_probability:.3f}")
        if args.scan:
            return 0
        names = sorted(scan, key=lambda n: abs(scan[n] - 0.5))[:3]
        intermediate = [n for n in names if 0.2 <= scan[n] <= 0.8]
        print(
            f"base images (P(sick) at {base_um:.3f} um/px nearest 0.5): "
            + ", ".join(f"{n} {scan[n]:.3f}" for n in names)
        )
        if len(intermediate) < 3:
            print(f"warning: only {len(intermediate)} of them lie in 0.2-0.8; the comparison is weaker")
    results = {}
    print(
        f"model: {assessor.predictor.model.label} ({assessor.model_um} um/px); base images at {base_um:.3f} um/px; dense, stride 32"
    )
    print(f"{'image':28s} {'':6s} " + " ".join(f"{s:>6g}x" for s in SCALES) + "   spread  max map MAD  spread(>=0.75x)")
    for name in names:
        res = measure(assessor, base_image(name), base_um)
        results[name] = res
        for key in ("before", "after"):
            ps = " ".join(f"{res[key][s]['p_sick']:7.3f}" for s in SCALES)
            print(
                f"{name[:28]:28s} {key:6s} {ps}   {res[key]['spread']:6.3f}  {res[key]['max_map_mad']:6.3f}       {res[key]['spread_from_075']:6.3f}"
            )
    secs = {
        k: {s: float(np.mean([results[n][k][s]["seconds"] for n in names])) for s in SCALES}
        for k in ("before", "after")
    }
    print(
        "mean seconds per image, before/after: "
        + ", ".join(f"{s:g}x {secs['before'][s]:.2f}/{secs['after'][s]:.2f}" for s in SCALES)
    )
    ok = all(results[n]["after"]["spread"] <= 0.1 and results[n]["after"]["max_map_mad"] <= 0.1 for n in names)
    print("targets (spread <= 0.1 and map MAD <= 0.1 after, all scales): " + ("met" if ok else "NOT met"))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "seconds": secs}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
