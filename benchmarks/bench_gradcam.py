"""Grad-CAM cost with and without ``--reference`` in one run (issue 26: at most 2x a plain run).

A healthy (N1) and a sick (N3) celldeath field (La Greca et al. 2021) with the shipped default
model: a plain ``explain`` and one with the celldeath manifest as reference (64 crops, weights and
scale from one pass). Prints wall and CPU seconds (the machine is shared: CPU time is the steadier measure), the ratio, P(sick) and the largest shown value.

    nice -n 10 python benchmarks/bench_gradcam.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path("/work/shared/data/celldeath_u2os")


def main(out: Path) -> int:
    import numpy as np
    import tifffile

    from phototox.maps.inference import Predictor
    from phototox.training.explain import explain_image

    predictor = Predictor.from_spec(None, "cpu")
    images = [DATA / "images" / "U2_DMSO_1h_RGB_0018_N1.png", DATA / "images" / "U2_CPT2_1H_RGB_0040_N3.png"]
    rows = []
    for image in images:
        for reference in (None, str(DATA / "manifest.csv")):
            t0, c0 = time.perf_counter(), time.process_time()
            tif, _ = explain_image(
                predictor, image, out / ("ref" if reference else "plain"), reference=reference, quiet=True
            )
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            with tifffile.TiffFile(tif) as handle:
                shown = handle.asarray()
            rows.append(
                {
                    "image": image.name,
                    "reference": bool(reference),
                    "seconds": round(seconds, 1),
                    "cpu_seconds": round(cpu, 1),
                    "max_shown": round(float(np.max(shown)), 4),
                    "p99_shown": round(float(np.percentile(shown, 99)), 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    for image in images:
        for unit in ("seconds", "cpu_seconds"):
            plain, ref = (r[unit] for r in rows if r["image"] == image.name)
            print(
                f"{image.name}: --reference / plain = {ref / plain:.2f} ({unit}; the CPU is shared, CPU time is steadier)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench_gradcam")))
