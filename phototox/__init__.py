"""phototox: is the light used to image these cells harming them, and where?

A reimplementation and extension of DeadNet (Richmond, Jost, Lake, Spiller, Baker and Vass,
"DeadNet: Identifying Phototoxicity from Label-free Microscopy Images of Cells using Deep
ConvNets", 2017, arXiv:1701.06109). The core library knows nothing of its front ends
(CellProfiler, Fiji, bioimage.io, napari); they all call :class:`phototox.maps.inference.Predictor`
through :class:`phototox.trust.assess.Assessor`.

The public API (the README's Python example)::

    import phototox

    model = phototox.load_model()                      # shipped default; a name, file or URL
    assessor = phototox.Assessor(phototox.Predictor.create(model))
    frames = phototox.read_image("field.tif")          # float32 (T, H, W)
    size = assessor.pixel_size(0.65, "field.tif")      # um/px: given, else the file's, else assumed
    results = assessor.analyse(frames, phototox.MapSettings(), size, source="field.tif")

Everything else is importable from its folder (``phototox.io``, ``maps``, ``trust``, ``results``,
``stats``, ``training``, ``timecourse``, ...; CONTRIBUTING.md shows the layout) but may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
CITATION = (
    "Richmond D, Jost AP-T, Lake T, Spiller D, Baker J, Vass J. DeadNet: Identifying phototoxicity "
    "from label-free microscopy images of cells using deep ConvNets. arXiv:1701.06109 (2017)."
)

_PUBLIC = {
    "load_model": ("phototox.models.loader", "load_model"),
    "Predictor": ("phototox.maps.inference", "Predictor"),
    "MapSettings": ("phototox.maps.settings", "MapSettings"),
    "Assessor": ("phototox.trust.assess", "Assessor"),
    "read_image": ("phototox.io.images", "read_frames"),
    "PhototoxError": ("phototox.errors", "PhototoxError"),
}
"""Public name -> (module, attribute). Resolved on first use: ``import phototox`` stays light (the
command line's start-up must not load torch)."""

__all__ = [
    "CITATION",
    "Assessor",
    "MapSettings",
    "PhototoxError",
    "Predictor",
    "__version__",
    "load_model",
    "read_image",
]

if TYPE_CHECKING:
    from phototox.errors import PhototoxError
    from phototox.io.images import read_frames as read_image
    from phototox.maps.inference import Predictor
    from phototox.maps.settings import MapSettings
    from phototox.models.loader import load_model
    from phototox.trust.assess import Assessor


def __getattr__(name: str) -> Any:
    """The public API, imported lazily (start-up cost: most of it loads torch)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'phototox' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
