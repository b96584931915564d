"""One model argument for every front end.

``load_model(spec)`` accepts:

* nothing, ``default`` or ``shipped`` -- the shipped default model; ``shipped:NAME`` another one;
* a phototox weight file (``.pt``/``.pth``);
* a bioimage.io model package: a ``.zip`` or a folder with ``rdf.yaml``/``bioimageio.yaml``;
* a bioimage.io zoo id (e.g. ``affable-shark``) or an ``http(s)://`` URL of a package (downloaded
  once into the cache folder, so later runs work offline).

Nothing loaded executes code: weights are read with ``torch.load(weights_only=True)``, package
zips are checked for members escaping their folder, checksums are verified.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelLoadError
from .weights import LoadedModel, load_shipped, load_weights

SHIPPED_ALIASES = {"", "default", "shipped"}


def describe_model_spec(spec: str | None) -> str:
    """Human-readable name of a model argument."""
    return "the shipped default model" if not spec or spec in SHIPPED_ALIASES else str(spec)


def load_model(spec: str | Path | None = None) -> LoadedModel:
    """Resolve a model argument (see module docstring) to a loaded, eval-mode model."""
    text = "" if spec is None else str(spec).strip()
    if text in SHIPPED_ALIASES:
        return load_shipped()
    if text.startswith("shipped:"):
        return load_shipped(text.split(":", 1)[1])
    from . import package

    if text.startswith(("http://", "https://")) or package.looks_like_zoo_id(text):
        return package.load_package(package.fetch_remote(text))
    path = Path(text).expanduser()
    if path.is_dir() or path.suffix.lower() == ".zip":
        return package.load_package(path)
    if path.suffix.lower() in (".pt", ".pth"):
        return load_weights(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model file, package or zoo id")
    raise ModelLoadError(f"{path}: unknown model format (expected .pt, a bioimage.io .zip or folder, or a zoo id)")
