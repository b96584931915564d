"""Arguments of ``phototox timecourse`` and their translation into :class:`TimecourseSettings`."""

from __future__ import annotations

import argparse
import math

from phototox.errors import PhototoxError
from phototox.maps.settings import MapSettings
from phototox.timecourse.io import INTERVAL_RANGE_MIN
from phototox.timecourse.mitosis import MitosisSettings
from phototox.timecourse.onset import OnsetSettings
from phototox.timecourse.pipeline import TimecourseSettings

# the defaults live in the settings objects; the options only expose them
MAP, ONSET, MITOSIS = MapSettings(), OnsetSettings(), MitosisSettings()
MAX_SPLIT = 32
"""Most pseudo-fields per side of ``--split`` (each must also keep at least 64 px a side)."""
"""Plausible ``--interval`` between frames, minutes: 60 ms to one week."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="STACK_OR_FOLDER",
        help="one field each: a multi-frame TIFF, or a folder of frames (sorted by the numbers in their names)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--interval",
        type=float,
        help=f"minutes between frames, {INTERVAL_RANGE_MIN[0]:g}-{INTERVAL_RANGE_MIN[1]:g} "
        "(default: from the file's metadata)",
    )
    p.add_argument("--pixel-size", type=float, help="micrometres per pixel (default: from the file's metadata)")
    p.add_argument(
        "--doses",
        help="CSV: field, irradiance_mW_per_cm2, exposure_ms, wavelength_nm[, frames]; "
        "fields with irradiance 0 are the controls",
    )
    p.add_argument(
        "--split",
        default="1x1",
        help=f"cut each field into ROWSxCOLS pseudo-fields, e.g. 2x2 quadrants (1..{MAX_SPLIT} a side, each at least 64 px)",
    )
    p.add_argument("--model", default="default", help="model for P(sick) (see 'phototox map --help')")
    p.add_argument("--no-sickness", action="store_true", help="skip DeadNet's P(sick); activity measures only")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument(
        "--stride", type=int, default=MAP.stride, help=f"dense map window step in pixels (default {MAP.stride})"
    )
    p.add_argument("--threshold", type=float, default=MAP.threshold, help="P(sick) threshold for the sick area")
    p.add_argument(
        "--flow",
        choices=("ilk", "tvl1"),
        default="ilk",
        help="scikit-image optical flow: iterative Lucas-Kanade (default, fast) or TV-L1",
    )
    p.add_argument(
        "--false-onset-rate",
        type=float,
        default=ONSET.alpha,
        help="family-wise rate of false onsets per measure over all frames and exposed fields (default 0.05)",
    )
    p.add_argument(
        "--persistence",
        type=int,
        default=ONSET.persistence,
        help="consecutive frames a departure must last (default %(default)s, chosen on synthetic null series)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=TimecourseSettings.margin,
        help="non-inferiority margin: the largest harm accepted, as a fraction of the controls' mean growth, "
        "motility or division rate (default 0.2 = 20%%)",
    )
    p.add_argument(
        "--baseline-frames",
        type=int,
        default=ONSET.baseline_frames,
        help="each field is taken relative to its first N frames before comparing (0: absolute)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=ONSET.n_boot,
        help="bootstrap resamples of the dose comparisons with 5+ fields per arm (0: the default 4000)",
    )
    p.add_argument(
        "--mitosis-min-diameter", type=float, default=MITOSIS.min_diameter_um, help="um, rounded cell with its halo"
    )
    p.add_argument("--mitosis-max-diameter", type=float, default=MITOSIS.max_diameter_um, help="um")
    p.add_argument(
        "--mitosis-max-minutes",
        type=float,
        default=MITOSIS.max_rounding_min,
        help="rounding lasting longer is a persistent round object, not a division",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=TimecourseSettings.workers,
        help="processes measuring motion, confluence and rounding, one field each at a time (1: this process; "
        "at most one per field, so split a single stack with --split to gain); each holds one field's frames. "
        "P(sick) runs afterwards in this process (default %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=ONSET.seed,
        help="random seed of the bootstrap intervals of the dose comparisons (default 0)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")


def parse_split(text: str) -> tuple[int, int]:
    """``ROWSxCOLS``, each 1..:data:`MAX_SPLIT`, checked before any image is read."""
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise PhototoxError(f"--split must look like 2x2 (rows x columns), got {text[:40]!r}") from None
    if not (1 <= rows <= MAX_SPLIT and 1 <= cols <= MAX_SPLIT):
        raise PhototoxError(f"--split {text[:40]}: rows and columns must each be 1..{MAX_SPLIT}")
    return rows, cols


def check_interval(minutes: float | None) -> float | None:
    """``--interval`` if absent or within :data:`INTERVAL_RANGE_MIN`, else one line."""
    low, high = INTERVAL_RANGE_MIN
    if minutes is not None and not low <= minutes <= high:  # NaN fails both comparisons
        raise PhototoxError(f"--interval must be {low:g}-{high:g} minutes between frames, got {minutes:g}")
    return minutes


def settings_from_args(args: argparse.Namespace) -> TimecourseSettings:
    if (
        (args.persistence is not None and args.persistence < 1)
        or args.baseline_frames < 0
        or args.bootstrap < 0
        or not 0 < args.false_onset_rate < 1
        or not args.margin > 0
        or args.workers < 1
    ):
        raise PhototoxError(
            "--persistence and --workers must be >= 1, --baseline-frames and --bootstrap >= 0, "
            "--false-onset-rate between 0 and 1, --margin > 0"
        )
    _check_mitosis(args)
    return TimecourseSettings(
        interval_min=check_interval(args.interval),
        pixel_um=args.pixel_size,
        split=parse_split(args.split),
        doses=args.doses,
        model=None if args.no_sickness else args.model,
        device=args.device,
        stride=args.stride,
        threshold=args.threshold,
        flow_method=args.flow,
        workers=args.workers,
        margin=args.margin,
        onset=OnsetSettings(
            alpha=args.false_onset_rate,
            persistence=args.persistence,
            baseline_frames=args.baseline_frames,
            n_boot=args.bootstrap,
            seed=args.seed,
        ),
        mitosis=MitosisSettings(
            min_diameter_um=args.mitosis_min_diameter,
            max_diameter_um=args.mitosis_max_diameter,
            max_rounding_min=args.mitosis_max_minutes,
        ),
    )


def _check_mitosis(args: argparse.Namespace) -> None:
    """Refuse rounding-detector sizes and durations that are not positive finite numbers (min < max)."""
    low, high, minutes = args.mitosis_min_diameter, args.mitosis_max_diameter, args.mitosis_max_minutes
    for option, value in (
        ("--mitosis-min-diameter", low),
        ("--mitosis-max-diameter", high),
        ("--mitosis-max-minutes", minutes),
    ):
        if not math.isfinite(value) or value <= 0:
            raise PhototoxError(f"{option} must be a positive number, got {value:g}")
    if low >= high:
        raise PhototoxError(f"--mitosis-min-diameter ({low:g}) must be below --mitosis-max-diameter ({high:g})")
