"""How far ``--engine bf16`` (PyTorch in bfloat16 autocast) strays from the exact engines, and its cost.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_bf16.py --frames 6 --json benchmarks/results/bf16.json

On real frames (celldeath fields, both labels, at their own 0.434 um/px, and T98G frames resampled
from 0.87 um/px; ``../shared/data`` or ``$PHOTOTOX_SHARED_DATA``) it maps each frame at stride 16 with
the shipped default model on ``torch`` (exact, float32) and on ``bf16``, and reports per frame the
max and mean |P(sick) bf16 - P(sick) float32| over the window grid, whether the frame's label at 0.5
changed, and the CPU-time ratio bf16 / float32 (one thread; median of ``--rounds`` alternating rounds).
The CPU's model and whether it has avx512_bf16 / AMX are reported beside the times: without them
PyTorch emulates bf16 and it is slower, not faster. Data: La Greca et al., PLoS ONE 2021 (celldeath,
MIT); Tsai et al., SoftwareX 9 (2019) (Usiigaci T98G, MIT). DeadNet: Richmond et al. 2017,
arXiv:1701.06109.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from phototox.io.images import read_frames  # noqa: E402
from phototox.maps.inference import Predictor  # noqa: E402
from phototox.maps.settings import MapSettings  # noqa: E402
from phototox.models.loader import load_model  # noqa: E402
from phototox.trust.pixelsize import to_model_scale  # noqa: E402

DATA = Path(os.environ.get("PHOTOTOX_SHARED_DATA", ROOT.parent / "shared" / "data"))


def cpu_flags() -> dict:
    """The CPU's model name and its bf16-related flags (Linux /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": "unknown"}
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {"model": model, **{flag: flag in flags for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}}


def real_frames(count: int) -> list[tuple[str, np.ndarray, float]]:
    """(name, frame, pixel size um) for celldeath fields of both labels and T98G frames."""
    frames = []
    manifest = DATA / "celldeath_u2os" / "manifest.csv"
    if manifest.is_file():
        with manifest.open() as handle:
            rows = list(csv.DictReader(handle))
        by_label = {label: [r for r in rows if r["label"] == label] for label in ("healthy", "sick")}
        for k in range(count // 2):
            for label in ("healthy", "sick"):
                if k < len(by_label[label]):
                    row = by_label[label][k]
                    frames.append(
                        (
                            f"celldeath {label} {Path(row['path']).name}",
                            read_frames(manifest.parent / row["path"])[0],
                            0.434,
                        )
                    )
    t98g = sorted((DATA / "usiigaci_t98g_phase" / "frames").glob("*.tif"))
    for path in t98g[:: max(1, len(t98g) // 2)][:2]:
        frames.append((f"T98G {path.name}", read_frames(path)[0], 0.87))
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6, help="celldeath fields (half of each label)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    frames = real_frames(args.frames)
    if not frames:
        print("no real frames: ../shared/data (or PHOTOTOX_SHARED_DATA) is absent", file=sys.stderr)
        return 2
    model = load_model("default")
    exact, bf16 = Predictor.create(model, "cpu", engine="torch"), Predictor.create(model, "cpu", engine="bf16")
    settings = MapSettings(stride=16)
    rows, ratios = [], []
    for name, frame, pixel_um in frames:
        scaled = to_model_scale(frame.astype(np.float32), pixel_um / model.pixel_size_um, model.window, name)
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        grids = {}
        for _ in range(args.rounds):
            for key, predictor in (("fp32", exact), ("bf16", bf16)):
                start = time.process_time()
                result = predictor.analyse_frame(scaled, settings)
                times[key].append(time.process_time() - start)
                grids[key] = (result.grid, result.engine, result.mean_sick_probability)
        diff = np.abs(grids["bf16"][0] - grids["fp32"][0])
        ratio = statistics.median(times["bf16"]) / statistics.median(times["fp32"])
        ratios.append(ratio)
        rows.append(
            {
                "frame": name,
                "pixel_size_um": pixel_um,
                "windows": int(diff.size),
                "max_abs_diff": float(diff.max()),
                "mean_abs_diff": float(diff.mean()),
                "mean_p_fp32": float(grids["fp32"][2]),
                "mean_p_bf16": float(grids["bf16"][2]),
                "label_changed": bool((grids["fp32"][2] >= 0.5) != (grids["bf16"][2] >= 0.5)),
                "cpu_s_fp32": statistics.median(times["fp32"]),
                "cpu_s_bf16": statistics.median(times["bf16"]),
                "engines": [grids["fp32"][1], grids["bf16"][1]],
            }
        )
        print(
            f"{name}: max |dP| {diff.max():.4f}, mean {diff.mean():.5f}; mean P {grids['fp32'][2]:.3f} -> "
            f"{grids['bf16'][2]:.3f}; CPU bf16/fp32 {ratio:.2f}x"
        )
    report = {
        "cpu": cpu_flags(),
        "threads": torch.get_num_threads(),
        "load": os.getloadavg(),
        "model": model.source,
        "frames": rows,
        "max_abs_diff": max(r["max_abs_diff"] for r in rows),
        "labels_changed": sum(r["label_changed"] for r in rows),
        "median_cpu_ratio": statistics.median(ratios),
    }
    print(json.dumps({k: v for k, v in report.items() if k != "frames"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
