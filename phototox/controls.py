"""The user's own control fields as the reference: comparison and ``phototox calibrate``.

Every phototoxicity experiment has unexposed (or minimally exposed) control fields. Two uses:

* :class:`ControlReference` -- each image's P(sick) minus the mean P(sick) of the control fields,
  with a 95% percentile-bootstrap interval over control fields (the controls are resampled; the
  image's own number is taken as given). This answers "is this field sicker than my controls?"
  on the user's microscope, which the absolute P(sick) of a model trained elsewhere cannot.
* :func:`calibrate_model` -- refits the domain statistics and threshold on the control fields
  (so "in domain" means "like my controls") and records the control P(sick) distribution in the
  new model file's ``meta["calibration"]``. It never refits the probability itself: controls
  carry one class only, and a probability map fitted on confounded data would sharpen a batch
  detector (issue 11); the absolute P(sick) stays the model's raw output.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import PhototoxError
from .settings import MapSettings

N_BOOT = 2000
MIN_CONTROLS = 3


@dataclass
class ControlReference:
    """Mean P(sick) of control fields and its bootstrap distribution."""

    values: np.ndarray
    source: str
    n_boot: int = N_BOOT
    seed: int = 0

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.size < 2 or not np.isfinite(self.values).all():
            raise PhototoxError(f"{self.source}: need at least 2 control fields with a P(sick), got {self.values.size}")
        rng = np.random.default_rng(self.seed)
        picks = rng.integers(0, self.values.size, size=(self.n_boot, self.values.size))
        self.boot_means = self.values[picks].mean(axis=1)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    def compare(self, p_sick: float) -> dict:
        """Difference to the controls' mean P(sick) with its 95% interval."""
        low, high = np.percentile(p_sick - self.boot_means, [2.5, 97.5])
        return {
            "vs_controls": round(float(p_sick - self.mean), 4),
            "vs_controls_low": round(float(low), 4),
            "vs_controls_high": round(float(high), 4),
        }

    @classmethod
    def from_meta(cls, meta: dict) -> ControlReference | None:
        cal = meta.get("calibration") or {}
        values = cal.get("control_p_sick")
        return cls(np.asarray(values), "the model's recorded controls") if values else None


def _read(path: Path, assessor, pixel_size_um: float | None):
    from .images import read_frames

    frames = read_frames(path, min_size=assessor.predictor.window)
    size = assessor.pixel_size(pixel_size_um, path)
    return frames, size


def control_reference(
    paths: list[Path], assessor, settings: MapSettings, pixel_size_um: float | None = None
) -> ControlReference:
    """P(sick) of each control file (mean over its frames), as a reference for other images."""
    values = []
    for path in paths:
        frames, size = _read(path, assessor, pixel_size_um)
        results = assessor.analyse(frames, settings, size, str(path))
        values.append(float(np.mean([r.mean_sick_probability for r in results])))
    return ControlReference(np.asarray(values), f"{len(paths)} control files")


def calibrate_model(
    model_spec: str,
    control_paths: list[str | os.PathLike],
    out: str | os.PathLike,
    pixel_size_um: float | None = None,
    device: str = "cpu",
    stride: int = 32,
    mode: str = "dense",
    warn=None,
    engine: str = "auto",
) -> dict:
    """Write ``out``: the model with domain statistics refitted on controls and their P(sick) recorded."""
    from .assess import Assessor
    from .domain import compute_domain_stats
    from .images import guard_outputs
    from .inference import Predictor
    from .models.loader import load_model
    from .models.weights import save_weights
    from .pixelsize import scale_factor, to_model_scale
    from .planned import check_distinct_inputs

    settings = MapSettings(stride=stride, mode=mode)
    paths = [Path(p) for p in control_paths]
    for path in paths:
        if not path.is_file():
            raise PhototoxError(f"{path}: no such control file")
    check_distinct_inputs(paths)  # one field given twice would weigh double and shrink the spread
    if len(paths) < MIN_CONTROLS:
        raise PhototoxError(f"calibrate needs at least {MIN_CONTROLS} control fields (files), got {len(paths)}")
    out = Path(out)
    if out.suffix.lower() not in (".pt", ".pth"):
        raise PhototoxError(f"{out}: the calibrated model is a weight file; name it .pt")
    sidecar = out.with_name(out.name + ".sha256")  # save_weights writes the checksum beside the model
    guard_outputs([out, sidecar], paths + ([Path(model_spec)] if model_spec and Path(model_spec).exists() else []))
    model = load_model(model_spec)
    assessor = Assessor(
        Predictor.create(model, device, engine=engine), domain_check=False, **({"warn": warn} if warn else {})
    )
    scaled, p_sick, sizes = [], [], []
    for path in paths:
        frames, size = _read(path, assessor, pixel_size_um)
        factor = scale_factor(size.um, assessor.model_um)
        sizes.append(size.describe())
        per_frame = [r.mean_sick_probability for r in assessor.analyse(frames, settings, size, str(path))]
        p_sick.append(float(np.mean(per_frame)))
        # all frames of a file form one field (one leave-one-out unit)
        scaled.append([to_model_scale(f, factor, model.window, str(path)) for f in frames])
    previous = dict(model.meta.get("domain") or {})
    previous_fine = previous.get("fine_detail") or {}
    domain = compute_domain_stats(
        assessor.predictor,
        scaled,
        f"{len(paths)} user control fields",
        assessor.model_um,
        base_fine_detail=previous_fine,
        on_controls=True,
    )
    meta = dict(model.meta)
    meta["domain"] = domain
    meta["calibration"] = {
        "kind": "user controls",
        "made": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "base_model": model.label,
        "base_source": model.source,
        "base_sha256": model.sha256 or None,
        "controls": [p.name for p in paths],
        "control_pixel_sizes": sizes,
        "control_p_sick": [round(v, 5) for v in p_sick],
        "previous_domain_threshold": previous.get("threshold"),
        "domain_threshold": domain["threshold"],
        "previous_fine_detail_limit": previous_fine.get("limit"),
        "fine_detail_limit": domain["fine_detail"]["limit"],
        "probability_refit": False,
        "note": "domain statistics and threshold refitted on these control fields; P(sick) itself is the "
        "model's raw output (no probability recalibration on single-class controls)",
    }
    save_weights(out, model.module, model.arch, model.arch_kwargs, meta)
    return meta["calibration"]
