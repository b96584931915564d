"""What produced a result: the phototox version and the model's name and checksum, for every output."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from phototox import __version__

PROVENANCE_FIELDS = ("phototox_version", "model_name", "model_sha256")


@lru_cache(maxsize=32)
def _checksum(path: str, mtime_ns: int, size: int) -> str:
    from phototox.models.weights import sha256_of

    return sha256_of(path)


def model_checksum(source: str) -> str:
    """SHA-256 of the file a model was loaded from (a package folder: its weights file); '' if unknown."""
    path = Path(source) if source else None
    if path is None or not path.exists():
        return ""
    if path.is_dir():
        candidates = sorted(path.glob("weights.pt")) or sorted(path.glob("*.pt"))
        if not candidates:
            return ""
        path = candidates[0]
    stat = path.stat()
    return _checksum(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def model_name(loaded) -> str:
    """A model's name: its recorded name, its registry name (shipped models), or its file name."""
    meta = getattr(loaded, "meta", None) or {}
    if meta.get("name"):
        return str(meta["name"])
    source = str(getattr(loaded, "source", "") or "")
    path = Path(source)
    if not path.exists():
        return source or "unknown model"  # a registry name, zoo id or URL
    if path.name in ("model.pt", "weights.pt") and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name


def provenance(loaded) -> dict[str, str]:
    """``{phototox_version, model_name, model_sha256}`` of a :class:`~phototox.models.base.LoadedModel`."""

    sha = getattr(loaded, "sha256", "") or model_checksum(str(getattr(loaded, "source", "") or ""))
    return {"phototox_version": __version__, "model_name": model_name(loaded), "model_sha256": sha}
