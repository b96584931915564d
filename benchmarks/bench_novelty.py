"""'Unlike your controls' (phototox.trust.novelty): held-out false alarms, nuisances, detection.

For each set of healthy fields (synthetic dose 0; celldeath N1, La Greca et al. 2021; T98G
quadrants x frame blocks, Tsai et al. 2019) every field is held out in turn, the reference is
fitted on the others (leave-one-field-out null inside, alpha 0.1) and the held-out field is
flagged when any of its windows is beyond the line. The observed rate is compared with the rate
the line states (``1 - rank/(k+1)``). The same held-out field after a nuisance that is not damage
(defocus, illumination drift, a density change) gives the rate under nuisance; damaged fields
(synthetic doses; celldeath N3, the other replicate batch, labelled so) against a reference
fitted on all healthy fields give detection. Features come once per image from the dense pass
(shipped default model), cached in /tmp.

    nice -n 10 python benchmarks/bench_novelty.py > /tmp/bench_novelty.log 2>&1 &
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's phototox, not an installed one
DATA = ROOT.parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
CACHE = Path("/tmp/bench_novelty_features.npz")
OUT = ROOT / "benchmarks" / "results" / "novelty.json"
ALPHA = 0.1


def defocus(frame: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(frame.astype(np.float32), 2.0)


def drift(frame: np.ndarray) -> np.ndarray:
    """Illumination falling linearly from 1.25 to 0.75 across the field (a vignette-like drift)."""
    ramp = np.linspace(1.25, 0.75, frame.shape[1], dtype=np.float32)[None, :]
    return frame.astype(np.float32) * ramp


def extract() -> dict[str, np.ndarray]:
    """Window features (n, 128) of every field and variant, keyed 'set/kind/name'."""
    from phototox.io.images import read_frames
    from phototox.maps.inference import Predictor
    from phototox.synth.fields import render_field
    from phototox.trust.novelty import frame_window_features
    from phototox.trust.pixelsize import scale_factor, to_model_scale

    predictor = Predictor.from_spec(None, "cpu")
    um = predictor.model.meta.get("pixel_size_um")
    feats: dict[str, np.ndarray] = {}

    def add(key: str, scaled: np.ndarray) -> None:
        feats[key] = frame_window_features(predictor, scaled.astype(np.float32))

    t0 = time.perf_counter()
    for seed in range(20):
        f = render_field(512, 512, 0.0, seed=1000 + seed).image.astype(np.float32)
        add(f"synth/healthy/{seed}", f)
        add(f"synth/defocus/{seed}", defocus(f))
        add(f"synth/drift/{seed}", drift(f))
        add(f"synth/sparse/{seed}", render_field(512, 512, 0.0, seed=1000 + seed, cells_per_megapixel=60).image)
        add(f"synth/dense/{seed}", render_field(512, 512, 0.0, seed=1000 + seed, cells_per_megapixel=170).image)
    for dose in (0.3, 0.5, 0.7, 1.0):
        for k in range(4):
            add(f"synth/dose{dose:g}/{k}", render_field(512, 512, dose, seed=2000 + k).image)
    print(f"synthetic features: {time.perf_counter() - t0:.0f} s", flush=True)
    manifest = DATA / "celldeath_u2os" / "manifest.csv"
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        frame = read_frames(DATA / "celldeath_u2os" / row["path"])[0].astype(np.float32)
        name = Path(row["path"]).stem
        if row["replicate"] == "N1":
            add(f"celldeath/healthy/{name}", frame)
            add(f"celldeath/defocus/{name}", defocus(frame))
            add(f"celldeath/drift/{name}", drift(frame))
        else:
            add(f"celldeath/N3/{name}", frame)
    print(f"+ celldeath features: {time.perf_counter() - t0:.0f} s", flush=True)
    frames = sorted((DATA / "usiigaci_t98g_phase" / "frames").glob("*.tif"))
    factor = scale_factor(0.87, um)
    for block, index in enumerate((0, 12, 24, 36)):
        frame = to_model_scale(read_frames(frames[index])[0].astype(np.float32), factor, 220, "t98g")
        h, w = frame.shape[0] // 2, frame.shape[1] // 2
        for q, (y, x) in enumerate(((0, 0), (0, w), (h, 0), (h, w))):
            quadrant = frame[y : y + h, x : x + w]
            add(f"t98g/healthy/b{block}q{q}", quadrant)
            add(f"t98g/defocus/b{block}q{q}", defocus(quadrant))
            add(f"t98g/drift/b{block}q{q}", drift(quadrant))
    print(f"+ T98G features: {time.perf_counter() - t0:.0f} s", flush=True)
    return feats


def group(feats: dict[str, np.ndarray], dataset: str, kind: str) -> dict[str, np.ndarray]:
    prefix = f"{dataset}/{kind}/"
    return {k[len(prefix) :]: v for k, v in feats.items() if k.startswith(prefix)}


def evaluate(feats: dict[str, np.ndarray], kind: str, transform: str) -> dict:
    from phototox.trust.novelty import fit_reference, wilson

    def tx(x: np.ndarray) -> np.ndarray:
        return np.log1p(np.maximum(x, 0)) if transform == "log1p" else x

    out: dict = {}
    for dataset, nuisances, damaged in (
        ("synth", ("defocus", "drift", "sparse", "dense"), ("dose0.3", "dose0.5", "dose0.7", "dose1")),
        ("celldeath", ("defocus", "drift"), ("N3",)),
        ("t98g", ("defocus", "drift"), ()),
    ):
        healthy = group(feats, dataset, "healthy")
        names = sorted(healthy)
        if not names:
            continue
        flags: dict[str, list[bool]] = {"held-out healthy": []}
        flags |= {n: [] for n in nuisances}
        rates = []
        for name in names:
            ref = fit_reference([tx(healthy[n]) for n in names if n != name], ALPHA, kind)
            rates.append(ref.rate)
            flags["held-out healthy"].append(bool(ref.window_scores(tx(healthy[name])).max() > ref.threshold))
            for nuisance in nuisances:
                variant = group(feats, dataset, nuisance)[name]
                flags[nuisance].append(bool(ref.window_scores(tx(variant)).max() > ref.threshold))
        stated = float(np.mean(rates))
        entry: dict = {"fields": len(names), "stated_rate": round(stated, 4)}
        for what, values in flags.items():
            rate = float(np.mean(values))
            low, high = wilson(rate, len(values))
            entry[what] = {
                "flagged": f"{sum(values)}/{len(values)}",
                "rate": round(rate, 3),
                "ci95": [round(low, 3), round(high, 3)],
            }
        full = fit_reference([tx(healthy[n]) for n in names], ALPHA, kind)
        for d in damaged:
            fields = group(feats, dataset, d)
            scores = [full.window_scores(tx(f)) for f in fields.values()]
            entry[d] = {
                "fields_flagged": f"{sum(s.max() > full.threshold for s in scores)}/{len(scores)}",
                "mean_fraction_beyond": round(float(np.mean([np.mean(s > full.threshold) for s in scores])), 3),
                "stated_rate": full.rate,
            }
        entry["healthy_fraction_beyond_in_fit"] = round(
            float(np.mean([np.mean(full.window_scores(tx(healthy[n])) > full.threshold) for n in names])), 4
        )
        out[dataset] = entry
    return out


def main() -> int:
    if CACHE.exists():
        with np.load(CACHE) as data:
            feats = {k: data[k] for k in data.files}
    else:
        feats = extract()
        np.savez(CACHE, **feats)
    results = {}
    for kind, transform in (("gaussian", "raw"), ("gaussian", "log1p"), ("knn", "raw")):
        t0 = time.perf_counter()
        results[f"{kind}/{transform}"] = evaluate(feats, kind, transform)
        print(f"{kind}/{transform} ({time.perf_counter() - t0:.0f} s):", flush=True)
        print(json.dumps(results[f"{kind}/{transform}"], indent=1), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"alpha": ALPHA, "cpu": "2-core AMD EPYC, shared", "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
