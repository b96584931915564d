"""The domain check on sets: held-out celldeath fields, six kinds of strange image, T98G frames.

    python benchmarks/bench_domain.py [--json benchmarks/results/domain.json]

Shipped celldeath model (statistics fitted on its 24 TRAINING fields; threshold = max
leave-one-image-out score x 1.1). Sets, all built from the 11 held-out (validation) celldeath
fields (La Greca et al. 2021): the fields themselves (none should be flagged), and copies made
strange -- inverted contrast, heavy blur (Gaussian sigma 8 px), fluorescence-like sparse bright
spots on a dark background (the brightest 0.5% of high-passed pixels as spots), pure noise (the
field's mean and SD), 4x wrong pixel size both ways (a 4x smaller copy, and a 4x enlarged central
crop, both analysed as if at 0.434 um/px). Target: every held-out field unflagged, >= 90% of each
strange kind flagged. A flag is either check of :mod:`phototox.trust.domain` failing (trunk score above
its threshold, or fine detail above its limit). Also reported, as a second in-domain set: copies of
the held-out fields resampled by 0.5x and 2x and analysed at their TRUE pixel size (brought back to
the model's scale as ``predict`` does); they should stay unflagged. Then the T98G time-lapse (Tsai
et al. 2019; 0.87 um/px given): flag rate of frames t20-t37 before and after ``calibrate`` on
frames t01, t05, t09, t13 (held apart).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from phototox.io.images import read_frames
from phototox.io.manifest import read_manifest
from phototox.maps.inference import Predictor
from phototox.models.loader import load_model
from phototox.trust.domain import DomainStats, DomainVerdict, domain_features
from phototox.trust.pixelsize import resample, scale_factor, scaled_shape, to_model_scale

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data"))
CELLDEATH = SHARED / "celldeath_u2os"
T98G = SHARED / "usiigaci_t98g_phase" / "frames"
T98G_UM = 0.87


def _spots(f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    high = f - ndimage.gaussian_filter(f, 10)
    mask = high > np.percentile(high, 99.5)
    return (ndimage.gaussian_filter(mask.astype(np.float32) * 200, 2) + 5 + rng.normal(0, 1, f.shape)).astype(
        np.float32
    )


def _enlarged_crop(f: np.ndarray) -> np.ndarray:
    h, w = f.shape
    crop = f[h // 2 - h // 8 : h // 2 + h // 8, w // 2 - w // 8 : w // 2 + w // 8]
    return resample(crop, (h, w))


STRANGE = {
    "inverted contrast": lambda f, rng: f.max() - f,
    "heavy blur": lambda f, rng: ndimage.gaussian_filter(f, 8),
    "sparse bright spots": _spots,
    "pure noise": lambda f, rng: rng.normal(f.mean(), f.std(), f.shape).astype(np.float32),
    "4x too coarse": lambda f, rng: resample(f, scaled_shape(f.shape, 0.25)),
    "4x too fine": lambda f, rng: _enlarged_crop(f),
}


def held_out_fields(model) -> list[tuple[str, np.ndarray]]:
    """The celldeath fields the model did not train on (its validation groups)."""
    train = set(model.meta.get("train_groups") or [])
    return [
        (s.path.name, read_frames(s.path)[0]) for s in read_manifest(CELLDEATH / "manifest.csv") if s.group not in train
    ]


def verdicts_of(predictor: Predictor, stats: DomainStats, frames: list[np.ndarray]) -> list[DomainVerdict]:
    return [stats.verdict(domain_features(predictor, f)) for f in frames]


def flag_rate(predictor: Predictor, stats: DomainStats, frames: list[np.ndarray]) -> tuple[float, dict]:
    """Share of frames flagged out of domain, and the extremes of both checks' values."""
    verdicts = verdicts_of(predictor, stats, frames)
    scores = [v.score for v in verdicts]
    fine = [v.fine_detail for v in verdicts]
    extremes = {
        "min_score": min(scores),
        "max_score": max(scores),
        "min_fine_detail": min(fine),
        "max_fine_detail": max(fine),
        "flagged_by_score": float(np.mean([v.score > v.threshold for v in verdicts])),
        "flagged_by_fine_detail": float(np.mean([v.too_fine for v in verdicts])),
    }
    return float(np.mean([v.out_of_domain for v in verdicts])), extremes


def _true_size_copy(f: np.ndarray, zoom: float, window: int) -> np.ndarray:
    """``f`` resampled by ``zoom`` (a different pixel size), then brought back to the model's scale."""
    return to_model_scale(resample(f, scaled_shape(f.shape, zoom)), 1 / zoom, window)


def sets_report(predictor: Predictor, seed: int = 0, n_strange: int | None = None) -> dict:
    stats = DomainStats.from_meta(predictor.model.meta)
    fields = held_out_fields(predictor.model)
    rng = np.random.default_rng(seed)
    out = {"threshold": stats.threshold, "fine_detail_limit": stats.fine_detail_limit}
    rate, extremes = flag_rate(predictor, stats, [f for _, f in fields])
    out["held-out celldeath fields"] = {"n": len(fields), "flagged": rate, **extremes}
    sources = fields[:n_strange] if n_strange else fields
    for zoom in (0.5, 2.0):
        rate, extremes = flag_rate(predictor, stats, [_true_size_copy(f, zoom, predictor.window) for _, f in sources])
        out[f"{zoom:g}x copies at true size"] = {"n": len(sources), "flagged": rate, **extremes}
    for kind, make in STRANGE.items():
        rate, extremes = flag_rate(predictor, stats, [make(f, rng) for _, f in sources])
        out[kind] = {"n": len(sources), "flagged": rate, **extremes}
    return out


def t98g_report(model_spec: str = "default") -> dict:
    """T98G flag rate of t20-t37 before and after calibrating on t01, t05, t09, t13."""
    from phototox.trust.controls import calibrate_model

    frames = sorted(T98G.glob("*.tif"))
    controls = [p for p in frames if 1 <= int(p.stem[-2:]) <= 13][::4]
    tested = [p for p in frames if int(p.stem[-2:]) >= 20]
    out = {"controls": [p.name for p in controls], "tested": len(tested)}
    with tempfile.TemporaryDirectory() as tmp:
        calibrated = Path(tmp) / "t98g.pt"
        record = calibrate_model(model_spec, controls, calibrated, T98G_UM, warn=lambda line: None)
        for key, spec in (("before", model_spec), ("after", str(calibrated))):
            predictor = Predictor.create(load_model(spec), "cpu")
            stats = DomainStats.from_meta(predictor.model.meta)
            factor = scale_factor(T98G_UM, predictor.model.meta.get("pixel_size_um"))
            scaled = [to_model_scale(read_frames(p)[0], factor, predictor.window) for p in tested]
            verdicts = verdicts_of(predictor, stats, scaled)
            out[key] = {
                "threshold": stats.threshold,
                "fine_detail_limit": stats.fine_detail_limit,
                "flagged": float(np.mean([v.out_of_domain for v in verdicts])),
                "median_score": float(np.median([v.score for v in verdicts])),
                "max_fine_detail": max(v.fine_detail for v in verdicts),
            }
    out["control_p_sick"] = record["control_p_sick"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--model", default="default", help="model to test (default: the shipped default)")
    parser.add_argument("--no-t98g", action="store_true")
    parser.add_argument("--only-t98g", action="store_true")
    args = parser.parse_args()
    if not CELLDEATH.is_dir():
        print(f"skipped: {CELLDEATH} not found (see ../shared/data/README.md)")
        return 0
    report = (
        {}
        if args.only_t98g
        else sets_report(Predictor.create(load_model(None if args.model == "default" else args.model), "cpu"))
    )
    if report:
        print(
            f"model {args.model}: domain threshold {report['threshold']:.3f}, fine-detail limit "
            f"{report['fine_detail_limit']}"
        )
    for kind, v in report.items():
        if isinstance(v, dict):
            print(
                f"  {kind:30s} n={v['n']:3d}  flagged {100 * v['flagged']:5.1f}%  (by score "
                f"{100 * v['flagged_by_score']:5.1f}%, by fine detail {100 * v['flagged_by_fine_detail']:5.1f}%; "
                f"score {v['min_score']:.2f}-{v['max_score']:.2f}, fine detail "
                f"{v['min_fine_detail']:.2f}-{v['max_fine_detail']:.2f})"
            )
    if not args.no_t98g and T98G.is_dir():
        t = t98g_report(args.model)
        report["t98g"] = t
        print(
            f"T98G frames t20-t37 at 0.87 um/px (n={t['tested']}): flagged {100 * t['before']['flagged']:.0f}% "
            f"before calibrate (threshold {t['before']['threshold']:.2f}, median score "
            f"{t['before']['median_score']:.2f}; fine-detail limit {t['before']['fine_detail_limit']}, max "
            f"{t['before']['max_fine_detail']:.2f}), {100 * t['after']['flagged']:.0f}% after calibrate on "
            f"{len(t['controls'])} frames t01-t13 (threshold {t['after']['threshold']:.2f}, median score "
            f"{t['after']['median_score']:.2f}; fine-detail limit {t['after']['fine_detail_limit']}); "
            f"control P(sick) {', '.join(f'{v:.2f}' for v in t['control_p_sick'])}"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
