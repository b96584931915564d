"""Saving and loading phototox weight files safely, and finding the shipped model.

A weight file is a ``torch.save`` of plain data only -- architecture name and arguments, class
names, window size, state dict and JSON-like metadata -- read back with ``weights_only=True`` so a
tampered file cannot run code. A ``<file>.sha256`` sidecar (and, for shipped weights, the
registry in ``models/registry.json``) is checked before the file is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import ModelLoadError
from .images import atomic_path, write_text_atomic
from .model import CLASSES, WINDOW, build_model

FORMAT = "phototox-weights"
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A ready-to-use classifier and what is known about it."""

    module: nn.Module
    arch: str
    arch_kwargs: dict
    classes: tuple[str, ...] = CLASSES
    window: int = WINDOW
    meta: dict = field(default_factory=dict)
    source: str = ""
    outputs: str = "logits"  # or "probabilities" (e.g. ONNX classifiers from the zoo)

    def sick_probability(self, output: torch.Tensor) -> torch.Tensor:
        """Sick-class probability from the module's (N, 2) output."""
        output = output.float()
        return (torch.softmax(output, dim=1) if self.outputs == "logits" else output)[:, 1]

    def to(self, device: torch.device | str) -> "LoadedModel":
        self.module.to(device)
        return self


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_weights(path: str | os.PathLike, model: nn.Module, arch: str, arch_kwargs: dict | None = None,
                 meta: dict | None = None, half: bool = False) -> str:
    """Write a weight file atomically, plus its ``.sha256`` sidecar; return the checksum."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "arch": arch,
        "arch_kwargs": dict(arch_kwargs or {}), "classes": list(CLASSES), "window": WINDOW,
        "normalisation": "per-crop zero mean, unit variance", "state_dict": state,
        "meta": json.loads(json.dumps(meta or {})),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    checksum = sha256_of(path)
    write_text_atomic(path.with_name(path.name + ".sha256"), f"{checksum}  {path.name}\n")
    return checksum


def verify_checksum(path: Path, expected: str | None) -> None:
    """Raise ModelLoadError if ``path`` does not hash to ``expected`` (or its sidecar's value)."""
    sidecar = path.with_name(path.name + ".sha256")
    if expected is None and sidecar.is_file():
        expected = sidecar.read_text().split()[0] if sidecar.read_text().strip() else None
    if expected is None:
        return
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ModelLoadError(
            f"{path}: checksum mismatch (expected sha256 {expected[:12]}..., got {actual[:12]}...); "
            "the file is corrupt or has been modified"
        )


def read_weight_payload(path: str | os.PathLike, expected_sha256: str | None = None) -> dict:
    """Load and validate the plain-data payload of a weight file (no code is executed)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    verify_checksum(path, expected_sha256)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a loadable phototox weight file ({type(exc).__name__}: {exc})") from exc
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return payload
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return {"format": "bare-state-dict", "state_dict": payload, "arch": None, "arch_kwargs": {}, "meta": {}}
    raise ModelLoadError(f"{path}: not a phototox weight file (no '{FORMAT}' header)")


def guess_arch(state_dict: dict) -> str:
    """Tell the architecture from a bare state dict's keys."""
    if "fc1.weight" in state_dict:
        return "deadnet"
    if "fc.weight" in state_dict:
        return "deadnet-gap"
    raise ModelLoadError("state dict matches no known architecture (expected DeadNet keys)")


def model_from_payload(payload: dict, source: str) -> LoadedModel:
    """Build the module and load the state dict strictly."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    arch = payload.get("arch") or guess_arch(state)
    kwargs = dict(payload.get("arch_kwargs") or {})
    try:
        module = build_model(arch, **kwargs)
        module.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ModelLoadError(f"{source}: weights do not fit architecture {arch!r}: {exc}") from exc
    module.eval()
    classes = tuple(payload.get("classes") or CLASSES)
    if classes != CLASSES:
        raise ModelLoadError(f"{source}: classes {classes} are not {CLASSES}")
    return LoadedModel(module, arch, kwargs, classes, int(payload.get("window", WINDOW)),
                       dict(payload.get("meta") or {}), source)


def load_weights(path: str | os.PathLike, expected_sha256: str | None = None) -> LoadedModel:
    """Load a phototox weight file (or a bare DeadNet state dict) safely."""
    return model_from_payload(read_weight_payload(path, expected_sha256), str(path))


# --- the shipped model ------------------------------------------------------------------------

def shipped_models_dir() -> Path:
    """Folder holding the shipped weights (``models/`` in a checkout, ``phototox_models`` installed)."""
    try:
        from importlib.resources import files

        candidate = Path(str(files("phototox_models")))
        if (candidate / "registry.json").is_file():
            return candidate
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[1] / "models"


def shipped_registry() -> dict:
    """The ``models/registry.json`` entries: name -> file, sha256, arch, summary."""
    registry = shipped_models_dir() / "registry.json"
    if not registry.is_file():
        raise ModelLoadError(f"{registry}: shipped model registry not found (broken installation?)")
    return json.loads(registry.read_text())


def shipped_model_path(name: str | None = None) -> tuple[Path, str]:
    """Path and expected checksum of a shipped model (the default when ``name`` is None)."""
    registry = shipped_registry()
    name = name or registry["default"]
    if name not in registry["models"]:
        raise ModelLoadError(f"unknown shipped model {name!r}; shipped: {', '.join(registry['models'])}")
    entry = registry["models"][name]
    return shipped_models_dir() / entry["file"], entry["sha256"]


def load_shipped(name: str | None = None) -> LoadedModel:
    """Load a shipped model, verifying its registered checksum."""
    path, checksum = shipped_model_path(name)
    return load_weights(path, checksum)
