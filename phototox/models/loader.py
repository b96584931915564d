"""One model argument for every front end: ``load_model(spec)``.

``spec`` may be:

* nothing, ``default`` or ``shipped`` -- the shipped default model;
* the name of any shipped model (``phototox models`` lists them), bare or as ``shipped:NAME``;
* a phototox weight file (``.pt``/``.pth``);
* a bioimage.io model package: a ``.zip`` or a folder with ``rdf.yaml``/``bioimageio.yaml``;
* a bioimage.io zoo id (e.g. ``affable-shark``) or an ``http(s)://`` URL of a package
  (downloaded once into the cache, so later runs work offline).

Nothing loaded executes code: weights are read with ``torch.load(weights_only=True)`` after size,
field and checksum checks; package zips are checked for members escaping their folder; downloads
are bounded (:mod:`phototox.models.limits`). Front ends go through
:meth:`phototox.maps.inference.Predictor.from_spec`, which calls this.
"""

from __future__ import annotations

from pathlib import Path

from phototox.errors import ModelLoadError
from phototox.models import registry
from phototox.models.base import LoadedModel
from phototox.models.weights import load_weights

SHIPPED_ALIASES = {"", "default", "shipped"}
SPEC_HELP = (
    "a shipped model's name (see `phototox models`; default: the shipped default), a .pt weight "
    "file, a bioimage.io package (.zip or folder), a zoo id or a package URL"
)


def spec_kind(spec: str | Path | None = None) -> str:
    """What a model argument names, checked without loading or downloading anything.

    One of ``shipped``, ``url``, ``package``, ``weights``, ``zoo``; a one-line
    :class:`ModelLoadError` when it names nothing phototox can load. Front ends that validate
    settings before a run (CellProfiler) ask this, so they accept exactly what :func:`load_model` does.
    """
    text = "" if spec is None else str(spec).strip()
    if text in SHIPPED_ALIASES or text.startswith("shipped:") or registry.is_registered(text):
        return "shipped"
    from phototox.models import package

    if text.startswith(("http://", "https://")):
        return "url"
    path = Path(text).expanduser()
    if path.is_dir():
        return "package"
    if path.suffix.lower() in (".zip", ".pt", ".pth") and not path.exists():
        raise ModelLoadError(f"{path}: no such file or folder")
    if path.suffix.lower() == ".zip":
        return "package"
    if path.suffix.lower() in (".pt", ".pth"):
        return "weights"
    if path.exists():
        raise ModelLoadError(f"{path}: unknown model format (expected .pt, a bioimage.io .zip or folder, or a zoo id)")
    if package.looks_like_zoo_id(text):
        return "zoo"
    names = ", ".join(e.name for e in registry.list_models())
    raise ModelLoadError(f"{text}: no such file or folder, shipped model ({names}), zoo id or URL")


def load_model(spec: str | Path | None = None) -> LoadedModel:
    """Resolve a model argument (see module docstring) to a loaded, eval-mode model."""
    text = "" if spec is None else str(spec).strip()
    kind = spec_kind(text)
    if kind == "shipped":
        if text in SHIPPED_ALIASES:
            return registry.load_registered()
        return registry.load_registered(text.split(":", 1)[1] if text.startswith("shipped:") else text)
    from phototox.models import package

    if kind in ("url", "zoo"):
        return package.load_package(package.fetch_remote(text), source=text)
    path = Path(text).expanduser()
    return package.load_package(path) if kind == "package" else load_weights(path)
