"""Analysis requests from other programs (the HTTP server, the in-process ImageJ handler).

Both front ends receive raw float32 pixels plus ``key=value`` settings and hand back a result
line (``mean_sick_probability=0.41;sick_area_fraction=0.3;label=healthy;...``) and the map.
This module is that shared path, through the front door :class:`phototox.trust.assess.Assessor`; the
line's keys are the schema's (:func:`phototox.schema.columns`).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

import numpy as np

from phototox.errors import ImageInputError, PhototoxError
from phototox.io.images import as_grey_frames
from phototox.maps.inference import FrameResult, Predictor
from phototox.maps.settings import MapSettings
from phototox.schema import columns
from phototox.trust.assess import Assessor
from phototox.trust.novelty import NoveltyReference

RESULT_KEYS = columns(line=True)
"""Keys of the result line, from the one result schema (:mod:`phototox.schema`)."""
_OPTION = re.compile(r"(\w+)=\[([^\]]*)\]|(\w+)=(\S+)|(\w+)")


def parse_imagej_options(text: str) -> dict[str, str]:
    """Parse ImageJ-style options: ``stride=32 model=[my model.pt] stack`` (flags map to '')."""
    out: dict[str, str] = {}
    for match in _OPTION.finditer(text or ""):
        if match.group(1):
            out[match.group(1).lower()] = match.group(2)
        elif match.group(3):
            out[match.group(3).lower()] = match.group(4)
        else:
            out[match.group(5).lower()] = ""
    return out


class PredictorPool:
    """Loaded predictors keyed by (model, device), shared by all requests; thread-safe.

    At most ``max_models`` predictors stay loaded; the least recently used one is dropped first.
    """

    def __init__(self, default_model: str = "default", default_device: str = "auto", max_models: int = 4) -> None:
        if max_models < 1:
            raise PhototoxError(f"max_models must be at least 1, got {max_models}")
        self.default_model, self.default_device, self.max_models = default_model, default_device, max_models
        self.reference: NoveltyReference | None = None
        """an 'unlike your controls' reference (phototox.trust.novelty), used for the model it was made with"""
        self._predictors: OrderedDict[tuple[str, str], Predictor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: str | None = None, device: str | None = None) -> Predictor:
        key = (model or self.default_model, device or self.default_device)
        with self._lock:
            if key in self._predictors:
                self._predictors.move_to_end(key)
            else:
                self._predictors[key] = Predictor.from_spec(key[0], key[1])
                while len(self._predictors) > self.max_models:
                    self._predictors.popitem(last=False)
            return self._predictors[key]

    def loaded(self) -> list[tuple[str, str]]:
        """The (model, device) keys loaded now, least recently used first."""
        with self._lock:
            return list(self._predictors)


def _number(params: dict, key: str, default, kind):
    value = params.get(key)
    if value in (None, ""):
        return default
    try:
        return kind(value)
    except ValueError:
        raise PhototoxError(f"setting {key}={value!r} is not a valid {kind.__name__}") from None


def settings_from(params: dict) -> tuple[MapSettings, float | None]:
    """Validated :class:`MapSettings` and the pixel size (um/px, or None) from request parameters (strings)."""
    return MapSettings.from_params(params), _number(params, "pixel_size", None, float)


def format_result(result: FrameResult, model: str) -> str:
    """The one-line ``key=value;...`` form of a frame result."""
    values = {**result.summary(), "model": model}
    parts = []
    for key in RESULT_KEYS:
        value = values.get(key)
        if value is None:
            value = ""
        parts.append(f"{key}={value:.6g}" if isinstance(value, float) else f"{key}={value}")
    return ";".join(p.replace("\n", " ") for p in parts)


def analyse_pixels(
    pool: PredictorPool, pixels: np.ndarray, width: int, height: int, params: dict, source: str = "image"
) -> tuple[str, np.ndarray]:
    """Analyse one frame given as flat float32 pixels; return the result line and the float32 map."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if width < 1 or height < 1 or pixels.size != width * height:
        raise ImageInputError(f"{source}: got {pixels.size} pixels for a {width}x{height} image")
    settings, pixel_size_um = settings_from(params)
    model = params.get("model") or None
    predictor = pool.get(model, params.get("device") or None)
    frame = as_grey_frames(pixels.reshape(height, width), source, min_size=predictor.window)[0]
    assessor = Assessor(predictor, warn=lambda line: None)  # the flags travel in the result line
    reference = pool.reference
    if reference is not None and reference.info.get("model_sha256") in (None, predictor.model.sha256 or None):
        assessor.novelty = reference  # its columns travel in the result line too
    result = assessor.analyse(frame, settings, assessor.pixel_size(pixel_size_um), source)[0]
    return format_result(result, predictor.model.label), result.sick_map.astype(np.float32)
