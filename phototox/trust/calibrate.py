"""Calibrating on the user's control fields: workflows that run the Assessor over them.

* :func:`calibrate_model` (``phototox calibrate``): the model with domain statistics and threshold
  refitted on the control fields, their P(sick) recorded (:mod:`phototox.trust.controls` says why
  the probability itself is never refitted).
* :func:`reference_from_controls` (``phototox reference``): an 'unlike your controls' reference
  (:mod:`phototox.trust.novelty`) from the control fields' window features.

They sit above :mod:`phototox.trust.assess` (which uses the references they make), so no import
loop runs through the assessor.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import numpy as np

from phototox.errors import PhototoxError
from phototox.io.images import guard_outputs, read_frames
from phototox.io.planned import check_distinct_inputs
from phototox.maps.settings import MapSettings
from phototox.schema import Trust
from phototox.trust.controls import check_control_polarity, check_control_quality, distinct_fields, read_control_field
from phototox.trust.novelty import NoveltyReference, fit_reference, frame_window_features
from phototox.trust.pixelsize import scale_factor, to_model_scale
from phototox.trust.quality import intensity_skew


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
    alpha: float = 0.05,
) -> dict:
    """Write ``out``: the model with domain statistics refitted on controls and their P(sick) recorded.

    Each distinct control file is one field (:func:`distinct_fields`); the domain threshold is the
    conformal order statistic of the leave-one-field-out scores at false-alarm rate ``alpha``
    (:func:`phototox.trust.domain.conformal_threshold`).
    """
    from phototox.maps.inference import Predictor
    from phototox.models.loader import load_model
    from phototox.models.weights import save_weights
    from phototox.trust.assess import Assessor
    from phototox.trust.domain import compute_domain_stats

    settings = MapSettings(stride=stride, mode=mode)
    paths = [Path(p) for p in control_paths]
    check_distinct_inputs(paths)  # one file listed twice (any spelling, any link) is a mistake: refused
    paths = distinct_fields(paths, warn)  # identical copies are one field: counted once, and said so
    out = Path(out)
    if out.suffix.lower() not in (".pt", ".pth"):
        raise PhototoxError(f"{out}: the calibrated model is a weight file; name it .pt")
    sidecar = out.with_name(out.name + ".sha256")  # save_weights writes the checksum beside the model
    guard_outputs([out, sidecar], paths + ([Path(model_spec)] if model_spec and Path(model_spec).exists() else []))
    model = load_model(model_spec)
    assessor = Assessor(
        Predictor.create(model, device, engine=engine), domain_check=False, **({"warn": warn} if warn else {})
    )
    scaled, p_sick, sizes, skews = [], [], [], []
    for path in paths:
        frames, size = read_control_field(path, assessor, pixel_size_um)
        factor = scale_factor(size.um, assessor.model_um)
        sizes.append(size.describe())
        results = assessor.analyse(frames, settings, size, str(path))
        check_control_quality(path, [r.trust for r in results])
        skews.append(float(np.mean([intensity_skew(f) for f in frames])))
        p_sick.append(float(np.mean([r.mean_sick_probability for r in results])))
        # all frames of a file form one field (one leave-one-out unit)
        scaled.append([to_model_scale(f, factor, model.window, str(path)) for f in frames])
    check_control_polarity(paths, skews)
    previous = dict(model.meta.get("domain") or {})
    previous_fine = previous.get("fine_detail") or {}
    domain = compute_domain_stats(
        assessor.predictor,
        scaled,
        f"{len(paths)} user control fields",
        assessor.model_um,
        base_fine_detail=previous_fine,
        on_controls=True,
        alpha=alpha,
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
        "domain_threshold_rule": domain["rule"],
        "false_alarm_rate": domain["conformal"]["false_alarm_rate"],
        "n_fields": domain["conformal"]["n_fields"],
        "previous_fine_detail_limit": previous_fine.get("limit"),
        "fine_detail_limit": domain["fine_detail"]["limit"],
        "probability_refit": False,
        "note": "domain statistics and threshold refitted on these control fields; P(sick) itself is the "
        "model's raw output (no probability recalibration on single-class controls)",
    }
    save_weights(out, model.module, model.arch, model.arch_kwargs, meta)
    return meta["calibration"]


def reference_from_controls(
    model_spec: str | None,
    control_paths: list[str | os.PathLike],
    out: str | os.PathLike,
    pixel_size_um: float | None = None,
    device: str = "cpu",
    alpha: float = 0.05,
    kind: str = "knn",
    warn=None,
) -> NoveltyReference:
    """Write ``out`` (.npz): an 'unlike your controls' reference from control files (one field each).

    Each file is read, resampled to the model's pixel size, refused when unusable as a control
    (blank, clipped, out of focus: :func:`phototox.trust.controls.check_control_quality`), and its windows'
    features (all its frames) make one field.
    """
    from phototox.maps.inference import Predictor
    from phototox.models.loader import load_model
    from phototox.trust.assess import Assessor
    from phototox.trust.controls import check_control_quality, distinct_fields
    from phototox.trust.quality import quality_flags

    paths = [Path(p) for p in control_paths]
    check_distinct_inputs(paths)
    paths = distinct_fields(paths, warn, what="an 'unlike your controls' reference")
    out = Path(out)
    if out.suffix.lower() != ".npz":
        raise PhototoxError(f"{out}: the reference is a NumPy archive; name it .npz")
    guard_outputs([out], paths + ([Path(model_spec)] if model_spec and Path(model_spec).exists() else []))
    model = load_model(model_spec)
    assessor = Assessor(Predictor.create(model, device), domain_check=False, **({"warn": warn} if warn else {}))
    focus_reference = (model.meta.get("quality") or {}).get("focus_reference")
    per_field, sizes = [], []
    for path in paths:
        frames = read_frames(path, min_size=model.window)
        size = assessor.pixel_size(pixel_size_um, path)
        factor = scale_factor(size.um, assessor.model_um)
        sizes.append(size.describe())
        scaled = [to_model_scale(f, factor, model.window, str(path)) for f in frames]
        check_control_quality(path, [Trust().set(quality_flags(f, s, focus_reference)) for f, s in zip(frames, scaled)])
        per_field.append(np.concatenate([frame_window_features(assessor.predictor, s) for s in scaled]))
    info = {
        "model": model.source,
        "model_sha256": model.sha256 or None,
        "model_pixel_size_um": assessor.model_um,
        "controls": [p.name for p in paths],
        "control_pixel_sizes": sizes,
        "note": "'unlike your controls': novelty of windows against these control fields; not a sickness measure",
    }
    reference = fit_reference(per_field, alpha, kind, info)
    reference.save(out)
    return reference
