"""Does the model follow optics instead of cells? P(sick) under changes of the look alone.

    python benchmarks/bench_optics.py [--models M1 M2 ...] [--json benchmarks/results/optics.json]

The celldeath data (La Greca et al. 2021) confound label with replicate, and the replicates differ
in contrast and sharpness (``phototox audit``: acquisition statistics alone separate the labels).
This asks, on each model's held-out celldeath fields, how much P(sick) moves when only the look of
a field changes, the cells staying the same:

- *other replicate's look*: the field's grey-level histogram matched to that of a training field of
  the other label (skimage ``match_histograms``), i.e. the batch cue swapped;
- contrast x0.7 / x1.4 about the mean, gamma 0.7 / 1.4, Gaussian blur sigma 1.5 and 3, unsharp
  masking (amount 1.5), a 30% linear illumination gradient, additive noise (5% of the range).

Reported per model and change: mean |change in P(sick)| and the fraction of fields whose call
(P(sick) >= 0.5) flips. A model that reads the cells keeps its call under all of them; the first
row is the direct test of the confound. Dense maps, stride 32, at the model's pixel size
(0.434 um/px: the fields are used as they are).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.exposure import match_histograms

from phototox.io.images import read_frames
from phototox.io.manifest import read_manifest
from phototox.maps.inference import Predictor
from phototox.maps.settings import MapSettings
from phototox.models.loader import load_model

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data"))
MANIFEST = SHARED / "celldeath_u2os" / "manifest.csv"


def _contrast(f: np.ndarray, gain: float) -> np.ndarray:
    return (f.mean() + gain * (f - f.mean())).astype(np.float32)


def _gamma(f: np.ndarray, gamma: float) -> np.ndarray:
    low, high = float(f.min()), float(f.max())
    return (low + (high - low) * ((f - low) / max(high - low, 1e-6)) ** gamma).astype(np.float32)


def _gradient(f: np.ndarray) -> np.ndarray:
    ramp = np.linspace(0.85, 1.15, f.shape[1], dtype=np.float32)[None, :]
    return f * ramp


def _noise(f: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (f + rng.normal(0, 0.05 * float(np.ptp(f)), f.shape)).astype(np.float32)


def _unsharp(f: np.ndarray) -> np.ndarray:
    return (f + 1.5 * (f - ndimage.gaussian_filter(f, 2.0))).astype(np.float32)


CHANGES = {
    "contrast x0.7": lambda f: _contrast(f, 0.7),
    "contrast x1.4": lambda f: _contrast(f, 1.4),
    "gamma 0.7": lambda f: _gamma(f, 0.7),
    "gamma 1.4": lambda f: _gamma(f, 1.4),
    "blur sigma 1.5": lambda f: ndimage.gaussian_filter(f, 1.5),
    "blur sigma 3": lambda f: ndimage.gaussian_filter(f, 3.0),
    "unsharp 1.5": _unsharp,
    "illumination gradient 30%": _gradient,
    "noise 5%": _noise,
}


def measure(spec: str) -> dict:
    """P(sick) of each held-out field as it is and under each change of look."""
    model = load_model(None if spec == "default" else spec)
    predictor = Predictor.create(model, "cpu")
    samples = read_manifest(MANIFEST)
    trained = set(model.meta.get("train_groups") or [])
    held_out = [s for s in samples if s.group not in trained]
    # a training field of each label supplies the other replicate's histogram
    reference = {
        label: read_frames(next(s.path for s in samples if s.group in trained and s.label == label))[0]
        for label in (0, 1)
    }

    def p_sick(frame: np.ndarray) -> float:
        return float(predictor.analyse_frame(frame.astype(np.float32), MapSettings(stride=32)).mean_sick_probability)

    fields = []
    for sample in held_out:
        frame = read_frames(sample.path)[0]
        other = reference[1 - sample.label]
        changed = {"other replicate's look": match_histograms(frame, other).astype(np.float32)}
        changed.update({name: change(frame) for name, change in CHANGES.items()})
        row = {"image": sample.path.name, "label": ("healthy", "sick")[sample.label], "p_sick": p_sick(frame)}
        row.update({name: p_sick(image) for name, image in changed.items()})
        fields.append(row)
        print(f"  {spec}: {sample.path.name} done", file=sys.stderr)
    summary = {}
    for name in ["other replicate's look", *CHANGES]:
        deltas = np.array([abs(r[name] - r["p_sick"]) for r in fields])
        flips = np.array([(r[name] >= 0.5) != (r["p_sick"] >= 0.5) for r in fields])
        summary[name] = {"mean_abs_change": float(deltas.mean()), "flip_rate": float(flips.mean())}
    return {"model": model.label, "fields": fields, "summary": summary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["shipped:deadnet-gap-celldeath-v2", "default"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not MANIFEST.is_file():
        print(f"skipped: {MANIFEST} not found (see ../shared/data/README.md)")
        return 0
    results = [measure(spec) for spec in args.models]
    names = ["other replicate's look", *CHANGES]
    print("| change of look | " + " | ".join(f"{r['model']}: mean abs dP, flips" for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        cells = [f"{r['summary'][name]['mean_abs_change']:.3f}, {r['summary'][name]['flip_rate']:.0%}" for r in results]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
