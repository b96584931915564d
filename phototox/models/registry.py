"""The registry of shipped models: read, list, verify, load and write (ship) in one place.

``models/registry.json`` (installed as ``phototox/models/shipped/registry.json``) maps each
shipped model's name to its file, its sha256 -- the only checksum of a shipped model -- and what
is known about it: summary, model card, training data, citations and the pixel size (um/px) of
the training images. Every name it lists is a valid ``--model`` everywhere (``NAME`` or
``shipped:NAME``); ``default``/``shipped`` name the default entry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from phototox.errors import ModelLoadError
from phototox.io.images import atomic_path, write_text_atomic
from phototox.models import limits as _limits
from phototox.models.base import LoadedModel
from phototox.models.weights import load_weights, sha256_of

REGISTRY_FILE = "registry.json"
NAME_PATTERN = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")
"""Registry names: lower-case words joined by ``-`` or ``.`` (``deadnet-gap-celldeath-v2``)."""
MAX_SHIPPED_BYTES = 30 * 1024**2
"""Shipped weights travel in the wheel and the git history: save larger models in half precision."""
CARD_FIELDS = ("summary", "card", "pixel_size_um", "pixel_size_note", "training_data", "citations", "license")


@dataclass
class RegistryEntry:
    """One shipped model: its file, checksum and card (see :data:`CARD_FIELDS`)."""

    name: str
    file: str
    sha256: str
    arch: str
    bytes: int
    summary: str = ""
    card: str = ""
    """Model card file (Markdown) in the shipped folder."""
    pixel_size_um: float | None = None
    """Pixel size of the training images in um/px (None: no physical scale)."""
    pixel_size_note: str = ""
    training_data: dict = field(default_factory=dict)
    """``name``, ``description``, ``source`` (URL), ``citation`` (text, doi), ``license``."""
    citations: list = field(default_factory=list)
    """``{"text": ..., "doi": ...}`` to cite when the model is used."""
    license: str = "MIT"

    def card_dict(self) -> dict:
        """The per-model metadata a LoadedModel carries (card file as an absolute path)."""
        out = {k: v for k, v in asdict(self).items() if k in CARD_FIELDS}
        out["name"] = self.name
        if self.card:
            out["card_path"] = str(shipped_dir() / self.card)
        return out


@dataclass
class Registry:
    """The parsed registry: the default name and the entries in file order."""

    default: str
    entries: dict[str, RegistryEntry]
    folder: Path

    def entry(self, name: str | None = None) -> RegistryEntry:
        """The entry called ``name`` (the default when None)."""
        name = name or self.default
        if name not in self.entries:
            raise ModelLoadError(f"unknown shipped model {name!r}; shipped: {', '.join(self.entries)}")
        return self.entries[name]

    def path(self, name: str | None = None) -> Path:
        return self.folder / self.entry(name).file

    def to_json(self) -> str:
        models = {}
        for name, entry in self.entries.items():
            data = asdict(entry)
            del data["name"]
            models[name] = data
        return json.dumps({"default": self.default, "models": models}, indent=2) + "\n"


def shipped_dir() -> Path:
    """Folder holding the shipped weights, cards and registry (``models/`` in a checkout)."""
    try:
        from importlib.resources import files

        candidate = Path(str(files("phototox.models.shipped")))
        if (candidate / REGISTRY_FILE).is_file():
            return candidate
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "models"


def read_registry(folder: Path | None = None) -> Registry:
    """Parse and check ``registry.json`` (one-line errors naming the field)."""
    folder = folder or shipped_dir()
    path = folder / REGISTRY_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path}: shipped model registry not found (broken installation?)")
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ModelLoadError(f"{path}: field 'models' must be a mapping")
    entries = {}
    for name, raw in data["models"].items():
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{path}: field 'models.{name}' must be a mapping")
        try:
            entries[name] = RegistryEntry(name=name, **raw)
        except TypeError as exc:
            raise ModelLoadError(f"{path}: field 'models.{name}': {exc}") from None
    default = data.get("default")
    if not isinstance(default, str) or default not in entries:
        raise ModelLoadError(f"{path}: field 'default' names {default!r}, which is not listed")
    return Registry(default, entries, folder)


def list_models() -> list[RegistryEntry]:
    """Every shipped model, the default first."""
    registry = read_registry()
    return sorted(registry.entries.values(), key=lambda e: e.name != registry.default)


def default_name() -> str:
    return read_registry().default


def is_registered(name: str) -> bool:
    """True when ``name`` is a shipped model's name."""
    try:
        return name in read_registry().entries
    except ModelLoadError:
        return False


def format_models(check: bool = False) -> str:
    """The ``phototox models`` listing: name, architecture, sha256, pixel size, summary."""
    registry = read_registry()
    lines = []
    for entry in list_models():
        mark = "*" if entry.name == registry.default else " "
        status = ""
        if check:
            try:
                verify(entry.name)
                status = " [ok]"
            except ModelLoadError as exc:
                status = f" [FAILED: {exc}]"
        pixel = f"{entry.pixel_size_um:g} um/px" if entry.pixel_size_um else "no scale"
        lines.append(
            f"{mark} {entry.name:28s} {entry.arch:12s} {entry.sha256[:16]}  {pixel:12s} {entry.summary}{status}"
        )
    lines.append(f"(* default; use any name as --model NAME; files and MODEL_CARD.md in {registry.folder})")
    return "\n".join(lines)


def verify(name: str | None = None) -> str:
    """Check a shipped file against its registered checksum; return the checksum."""
    registry = read_registry()
    entry, path = registry.entry(name), registry.path(name)
    if not path.is_file():
        raise ModelLoadError(f"{path}: shipped model {entry.name!r} is missing (broken installation?)")
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise ModelLoadError(
            f"{path}: checksum mismatch with the registry (expected {entry.sha256[:12]}..., "
            f"got {actual[:12]}...); the file is corrupt or has been modified"
        )
    return actual


def load_registered(name: str | None = None) -> LoadedModel:
    """Load a shipped model, verified against its registry checksum (its name is its source)."""
    registry = read_registry()
    entry = registry.entry(name)
    return load_weights(registry.path(entry.name), entry.sha256, source=entry.name, card=entry.card_dict())


def ship(
    weights: str | os.PathLike, name: str, folder: Path | None = None, default: bool = False, **card
) -> RegistryEntry:
    """Copy a trained weight file into the shipped folder and register it (checksum, card).

    ``card`` takes the :data:`CARD_FIELDS` (``summary``, ``pixel_size_um``, ``training_data``...).
    The registry and the copy are written atomically; a re-shipped name is replaced.
    """
    folder = Path(folder) if folder else shipped_dir()
    if not NAME_PATTERN.match(name):
        raise ModelLoadError(f"{name!r}: a model name is lower-case words joined by '-' (e.g. deadnet-gap-x-v3)")
    unknown = set(card) - set(CARD_FIELDS)
    if unknown:
        raise ModelLoadError(f"unknown model card fields: {', '.join(sorted(unknown))}")
    weights = Path(weights)
    size = weights.stat().st_size if weights.is_file() else 0
    if size > min(MAX_SHIPPED_BYTES, _limits.current().max_weight_file_bytes):
        raise ModelLoadError(
            f"{weights}: over {MAX_SHIPPED_BYTES // 1024**2} MB; save it in half precision or ship the compact model"
        )
    loaded = load_weights(weights)  # validates the format (and a sidecar checksum if present)
    target = folder / f"{name}.pt"
    with atomic_path(target) as tmp:
        shutil.copyfile(weights, tmp)
    registry = read_registry(folder) if (folder / REGISTRY_FILE).is_file() else Registry(name, {}, folder)
    entry = RegistryEntry(
        name=name, file=target.name, sha256=sha256_of(target), arch=loaded.arch, bytes=target.stat().st_size, **card
    )
    registry.entries[name] = entry
    if default or len(registry.entries) == 1:
        registry.default = name
    write_text_atomic(folder / REGISTRY_FILE, registry.to_json())
    return entry
