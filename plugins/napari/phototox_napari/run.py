"""The Qt-free half of the napari plugin: a layer's array and scale in, maps and trust verdicts out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from phototox.io.imagemeta import check_plausible
from phototox.io.images import as_grey_frames
from phototox.maps.inference import FrameResult, Predictor
from phototox.maps.settings import MapSettings
from phototox.trust.assess import Assessor
from phototox.trust.controls import ControlReference
from phototox.trust.novelty import NoveltyReference
from phototox.trust.pixelsize import PixelSize

PIXEL_SIZE_HINT = "set the layer's scale in µm per pixel, or the widget's 'Pixel size (µm)'"
"""How napari users give the pixel size (ends the assumed-pixel-size warning)."""
COLOUR_HINT = " (in napari: split the layer into channels and select the grey phase-contrast one)"
LENGTH_UNITS_UM = {"micrometer": 1.0, "micron": 1.0, "um": 1.0, "µm": 1.0, "nanometer": 1e-3, "nm": 1e-3,
                   "millimeter": 1e3, "mm": 1e3}  # fmt: skip


def layer_pixel_size(scale: Sequence[float], units: Sequence[object] | None = None) -> tuple[float | None, str]:
    """The pixel size (µm/px) a napari layer's scale states, and where it came from (``None``: none).

    The last two axes are Y and X; with length units (napari >= 0.6 ``layer.units``) the scale is
    converted to µm; without (``pixel``), a scale other than 1 is read as µm per pixel, napari's
    convention for microscopy readers; a scale of 1 states nothing. Anisotropic Y/X is refused.
    """
    y, x = float(scale[-2]), float(scale[-1])
    if not np.isclose(y, x, rtol=1e-3):
        raise ValueError(f"layer scale: Y ({y:g}) and X ({x:g}) differ; phototox needs square pixels")
    unit = str(units[-1]) if units else "pixel"
    if unit in LENGTH_UNITS_UM:
        return check_plausible(x * LENGTH_UNITS_UM[unit], "layer scale"), f"layer scale ({unit})"
    if np.isclose(x, 1.0):
        return None, ""
    return check_plausible(x, "layer scale"), "layer scale (read as µm)"


@dataclass
class LayerRun:
    """What one run on a layer produced: maps shaped like the layer (no channel axis) and the verdicts."""

    maps: np.ndarray
    results: list[FrameResult]
    model: str
    warnings: list[str] = field(default_factory=list)
    unlike: np.ndarray | None = None
    """'unlike your controls' maps (window novelty / the reference's line; > 1 beyond it), with a reference"""

    def verdict_lines(self) -> list[str]:
        """What the widget shows: model, pixel size and its source, per-frame P(sick), domain and quality flags."""
        first = self.results[0].trust
        size = (
            "pixel size unknown (the model records none)"
            if first.pixel_size_um is None
            else f"pixel size {first.pixel_size_um:g} µm/px ({first.pixel_size_source}); model's "
            f"{first.model_pixel_size_um if first.model_pixel_size_um is not None else 'unknown'} µm/px"
        )
        lines = [f"model {self.model}", size]
        for i, r in enumerate(self.results):
            t = r.trust
            where = f"frame {i}: " if len(self.results) > 1 else ""
            quality = [k.replace("_", " ") for k in t.flags if k != "out_of_domain"]
            domain = (
                "domain not checked"
                if t.out_of_domain is None
                else "OUT OF DOMAIN (unlike the training images: do not trust P(sick))"
                if t.out_of_domain
                else "in the model's domain"
            )
            domain += f"; quality: {', '.join(quality).upper()}" if quality else ""
            lines.append(
                f"{where}mean P(sick) {r.mean_sick_probability:.3f} -> {r.label}; "
                f"{100 * r.sick_area_fraction:.0f}% of the field has P(sick) >= {r.threshold:g}; {domain}"
            )
            if t.unlike_controls_fraction is not None:
                lines.append(
                    f"{where}unlike your controls (not 'sick'): {100 * t.unlike_controls_fraction:.0f}% of windows "
                    f"beyond the line [95% interval {100 * (t.unlike_controls_low or 0):.0f}-"
                    f"{100 * (t.unlike_controls_high or 0):.0f}%], p = {t.unlike_controls_p_value:.3g} (a field like "
                    f"the controls crosses the line at most {100 * (t.unlike_controls_rate or 0):.0f}% of the time)"
                )
        if first.vs_controls_verdict:
            interval = (
                f", 95% prediction interval [{first.vs_controls_low:+.3f}, {first.vs_controls_high:+.3f}]"
                if first.vs_controls_low is not None and first.vs_controls_high is not None
                else ""
            )
            lines.append(
                f"against your controls: {first.vs_controls_verdict} (difference {first.vs_controls:+.3f}{interval})"
            )
        return [*lines, *self.warnings]


def _pixel_size(assessor: Assessor, user_um: float | None, layer_um: float | None, layer_source: str) -> PixelSize:
    if user_um is None and layer_um is not None:
        return PixelSize(layer_um, layer_source)
    return assessor.pixel_size(user_um)


def analyse_layer_data(
    data: np.ndarray,
    predictor: Predictor,
    settings: MapSettings,
    name: str = "layer",
    *,
    rgb: bool = False,
    scale: Sequence[float] = (1.0, 1.0),
    units: Sequence[object] | None = None,
    pixel_size_um: float | None = None,
    controls: Sequence[tuple[np.ndarray, Sequence[float], Sequence[object] | None, bool]] = (),
    progress: Callable[[int], None] | None = None,
    reference: NoveltyReference | None = None,
) -> LayerRun:
    """Run phototox on one napari image layer's data (``(H, W)``, ``(T, H, W)``, RGB with ``rgb``).

    ``pixel_size_um`` (the widget's setting) wins over the layer's scale; without either the model's
    is assumed and the run says so. ``controls`` are other layers (data, scale, units, rgb): each
    one control field, the layer is compared with them (at least 2). ``progress`` gets 1 per frame.
    ``reference`` (from ``phototox reference``, made with this model) adds the 'unlike your
    controls' maps and columns, as ``phototox map --reference`` does.
    """
    warnings: list[str] = []
    assessor = Assessor(predictor, warn=warnings.append, pixel_size_hint=PIXEL_SIZE_HINT)
    if reference is not None:
        reference.check_model(predictor.model)  # a reference made with another model: one line, before any work
        assessor.novelty = reference
    if controls:
        values = []
        for i, (c_data, c_scale, c_units, _c_rgb) in enumerate(controls):
            c_frames = as_grey_frames(np.asarray(c_data), f"control layer {i}", "refuse", predictor.window, COLOUR_HINT)
            um, source = layer_pixel_size(c_scale, c_units)
            results = assessor.analyse(c_frames, settings, _pixel_size(assessor, pixel_size_um, um, source))
            values.append(float(np.mean([r.mean_sick_probability for r in results])))
        assessor.controls = ControlReference(np.asarray(values), f"{len(values)} control layers")
    frames = as_grey_frames(np.asarray(data), name, "refuse", predictor.window, COLOUR_HINT)
    um, source = layer_pixel_size(scale, units)
    size = _pixel_size(assessor, pixel_size_um, um, source)
    results = assessor.analyse(frames, settings, size, name, progress=progress)
    maps = np.stack([r.sick_map for r in results]).astype(np.float32)
    spatial = np.asarray(data).shape[:-1] if rgb else np.asarray(data).shape
    unlike = None
    if reference is not None:
        unlike = np.stack([np.asarray(r.novelty_map, np.float32) for r in results]).reshape(spatial)
    return LayerRun(maps.reshape(spatial), results, predictor.model.label, warnings, unlike)


def calibrate_on_layers(
    model_spec: str | None,
    controls: Sequence[tuple[np.ndarray, Sequence[float], Sequence[object] | None, bool]],
    out: str,
    pixel_size_um: float | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict:
    """``phototox calibrate`` on control layers (data, scale, units, rgb): each layer one field.

    Each layer is written to a temporary TIFF carrying its pixel size (the widget's value, else the
    layer's scale, else none: the model's is then assumed, as the command line does) and handed to
    :func:`phototox.trust.controls.calibrate_model`, the one calibration; ``out`` is the new model file.
    """
    import tempfile
    from pathlib import Path

    from phototox.errors import PhototoxError
    from phototox.io.images import write_tiff_atomic
    from phototox.trust.controls import calibrate_model

    if not out:
        raise PhototoxError("'Save calibrated model as': give a .pt file name first")
    with tempfile.TemporaryDirectory(prefix="phototox-napari-") as tmp:
        paths = []
        for i, (data, scale, units, _rgb) in enumerate(controls):
            frames = as_grey_frames(np.asarray(data), f"control layer {i}", "refuse", 1, COLOUR_HINT)
            um, _source = layer_pixel_size(scale, units)
            um = pixel_size_um if pixel_size_um is not None else um
            extra = {} if um is None else {"resolution": (1 / um, 1 / um), "imagej": True, "metadata": {"unit": "um"}}
            path = Path(tmp) / f"control_layer_{i}.tif"
            write_tiff_atomic(path, frames if len(frames) > 1 else frames[0], **extra)
            paths.append(path)
        return calibrate_model(model_spec or "default", paths, out, warn=warn)
