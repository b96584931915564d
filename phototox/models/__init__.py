"""Everything about models: architectures, weight files, the shipped registry, bioimage.io
packages, the download cache and one backend per weight format.

=====================  ===========================================================
``architectures``      DeadNet and DeadNet-GAP (PyTorch), ``build_model``
``weights``            the phototox weight file: save, read and validate untrusted
``registry``           shipped models: read, list, verify, load, ship
``package``            bioimage.io packages, zoo ids and package URLs
``cache``              the one download cache (zoo packages, the Fiji plugin jar)
``backends``           ``TorchBackend``, ``OnnxBackend``; ``WEIGHT_PRIORITY``
``base``               ``LoadedModel``, the ``Backend`` interface
``limits``             every size/time bound on untrusted model input
``loader``             ``load_model(spec)``: a string to a ``LoadedModel``
``shipped``            the shipped weights, cards and ``registry.json`` (``models/``)
=====================  ===========================================================

Front ends turn a string into a predictor only through
:meth:`phototox.maps.inference.Predictor.from_spec`. Names below are imported lazily so that
``phototox.models.architectures`` stays importable from low-level modules.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "load_model": "loader",
    "SPEC_HELP": "loader",
    "LoadedModel": "base",
    "load_weights": "weights",
    "save_weights": "weights",
    "list_models": "registry",
    "read_registry": "registry",
    "ship": "registry",
    "verify": "registry",
    "cache_root": "cache",
    "LIMITS": "limits",
    "LoaderLimits": "limits",
}

__all__ = [
    "LIMITS",
    "SPEC_HELP",
    "LoadedModel",
    "LoaderLimits",
    "cache_root",
    "list_models",
    "load_model",
    "load_weights",
    "read_registry",
    "save_weights",
    "ship",
    "verify",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
