"""The phototox weight file: writing it, and reading it without trusting it.

A weight file is a ``torch.save`` of plain data only -- architecture name and arguments, class
names, window size, state dict and JSON-like metadata -- read back with ``weights_only=True`` so a
tampered file cannot run code. Before anything is allocated the file's size is checked against
:mod:`phototox.models.limits`, and every field's type and range against what the architecture
accepts (a payload declaring six million classes or a window of 0 is refused in one line), and its
metadata against :mod:`phototox.models.metaschema`.

Checksums: a shipped model's is its registry entry (:mod:`phototox.models.registry`), and only
that. A file outside the registry (a trained ``model.pt``) gets a ``<file>.sha256`` sidecar
written beside it by :func:`save_weights`; it is verified when present, so a copy that travels
with its sidecar is checked, and a bare file loads with its checksum shown in every output.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import warnings
from pathlib import Path

import torch
from torch import nn

from phototox.errors import ModelLoadError
from phototox.io.images import atomic_path, write_text_atomic
from phototox.models import limits as _limits
from phototox.models.architectures import ARCHITECTURES, CLASSES, TRUNK_SIDE, WINDOW, build_model
from phototox.models.backends.torch import TorchBackend
from phototox.models.base import LoadedModel
from phototox.models.metaschema import check_meta

FORMAT = "phototox-weights"
FORMAT_VERSION = 1
ARCH_KWARGS: dict[str, dict[str, type]] = {
    "deadnet": {"n_classes": int, "dropout": float},
    "deadnet-gap": {"n_classes": int, "dropout": float, "border": int},
}
"""The constructor arguments a weight file may set, per architecture, and their types."""


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_weights(
    path: str | os.PathLike,
    model: nn.Module,
    arch: str,
    arch_kwargs: dict | None = None,
    meta: dict | None = None,
    half: bool = False,
) -> str:
    """Write a weight file atomically, plus its ``.sha256`` sidecar; return the checksum."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs or {}),
        "classes": list(CLASSES),
        "window": WINDOW,
        "normalisation": "per-crop zero mean, unit variance",
        "state_dict": state,
        "meta": json.loads(json.dumps(meta or {})),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    checksum = sha256_of(path)
    write_text_atomic(path.with_name(path.name + ".sha256"), f"{checksum}  {path.name}\n")
    return checksum


def sidecar_checksum(path: Path) -> str | None:
    """The checksum in ``<file>.sha256`` beside a user's weight file, if there is one."""
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file() or sidecar.stat().st_size > 4096:
        return None
    words = sidecar.read_text(errors="replace").split()
    return words[0].lower() if words else None


def verify_checksum(path: Path, actual: str, expected: str | None) -> None:
    """Raise ModelLoadError if ``actual`` is not ``expected`` (when one is known)."""
    if expected is not None and actual != expected.lower():
        raise ModelLoadError(
            f"{path}: checksum mismatch (expected sha256 {expected[:12]}..., got {actual[:12]}...); "
            "the file is corrupt or has been modified"
        )


def load_payload_bytes(data: bytes, source: str) -> object:
    """Unpickle plain data only; one-line errors for executable content or a foreign format."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it then handles
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # weights_only refuses anything but tensors and plain containers: globals, reducers, code
        raise ModelLoadError(
            f"{source} is not a safe phototox model file (it contains executable objects); refusing it"
        ) from None
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{source}: not a loadable phototox weight file ({reason[:200]})") from None


def read_weight_payload(path: str | os.PathLike, expected_sha256: str | None = None) -> tuple[dict, str]:
    """Read, checksum and validate a weight file's payload (no code runs); return it and its sha256.

    ``expected_sha256`` comes from the registry for shipped models; otherwise a ``.sha256``
    sidecar is used when present.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    limit = _limits.current().max_weight_file_bytes
    size = path.stat().st_size
    if size > limit:
        raise ModelLoadError(
            f"{path}: {size / 1e6:.1f} MB is over the {limit / 1e6:.0f} MB limit for a model file; refusing it"
        )
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    verify_checksum(path, actual, expected_sha256 if expected_sha256 is not None else sidecar_checksum(path))
    return validate_payload(load_payload_bytes(data, str(path)), str(path)), actual


def _is_state_dict(value: object) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def validate_arch_kwargs(arch: object, kwargs: object, source: str) -> tuple[str, dict]:
    """Check an architecture name and its arguments against :data:`ARCH_KWARGS` (types, ranges)."""
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ModelLoadError(
            f"{source}: field 'arch' must be one of {', '.join(sorted(ARCHITECTURES))}, got {str(arch)[:60]!r}"
        )
    if not isinstance(kwargs, dict):
        raise ModelLoadError(f"{source}: field 'arch_kwargs' must be a mapping, got {type(kwargs).__name__}")
    allowed = ARCH_KWARGS[arch]
    for key, value in kwargs.items():
        kind = allowed.get(key) if isinstance(key, str) else None
        if kind is None:
            raise ModelLoadError(f"{source}: field 'arch_kwargs.{str(key)[:40]}' is not an argument of {arch}")
        ok = isinstance(value, (int, float)) if kind is float else isinstance(value, int)
        if isinstance(value, bool) or not ok:
            raise ModelLoadError(
                f"{source}: field 'arch_kwargs.{key}' must be a {kind.__name__}, got {type(value).__name__}"
            )
    if kwargs.get("n_classes", len(CLASSES)) != len(CLASSES):
        raise ModelLoadError(
            f"{source}: field 'arch_kwargs.n_classes' must be {len(CLASSES)} "
            f"({'/'.join(CLASSES)}), got {kwargs['n_classes']}"
        )
    if not 0.0 <= kwargs.get("dropout", 0.5) < 1.0:
        raise ModelLoadError(f"{source}: field 'arch_kwargs.dropout' must lie in [0, 1), got {kwargs['dropout']}")
    if not 0 <= kwargs.get("border", 0) < TRUNK_SIDE // 2:
        raise ModelLoadError(
            f"{source}: field 'arch_kwargs.border' must be 0..{TRUNK_SIDE // 2 - 1}, got {kwargs['border']}"
        )
    return arch, dict(kwargs)


def validate_payload(payload: object, source: str) -> dict:
    """The payload as a checked dict; a one-line ModelLoadError naming the first bad field."""
    if isinstance(payload, dict) and _is_state_dict(payload):  # a bare DeadNet state dict
        payload = {
            "format": "bare-state-dict",
            "state_dict": payload,
            "arch": guess_arch(payload, source),
            "arch_kwargs": {},
            "meta": {},
        }
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, "bare-state-dict"):
        raise ModelLoadError(f"{source}: not a phototox weight file (no '{FORMAT}' header)")
    version = payload.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ModelLoadError(
            f"{source}: field 'format_version' must be an integer <= {FORMAT_VERSION}, "
            f"got {str(version)[:40]!r} (written by a newer phototox?)"
        )
    arch, kwargs = validate_arch_kwargs(payload.get("arch"), payload.get("arch_kwargs", {}), source)
    classes = payload.get("classes", list(CLASSES))
    if not isinstance(classes, (list, tuple)) or tuple(classes) != CLASSES:
        raise ModelLoadError(f"{source}: field 'classes' must be {list(CLASSES)}, got {str(classes)[:80]}")
    window = payload.get("window", WINDOW)
    if not isinstance(window, int) or isinstance(window, bool) or window != WINDOW:
        raise ModelLoadError(
            f"{source}: field 'window' must be {WINDOW} (the architecture's crop), got {str(window)[:40]!r}"
        )
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not _is_state_dict(state):
        raise ModelLoadError(f"{source}: field 'state_dict' must map parameter names to tensors")
    if len(state) > _limits.current().max_state_tensors:
        raise ModelLoadError(f"{source}: field 'state_dict' holds {len(state)} tensors; refusing it")
    meta = payload.get("meta", {})
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{source}: field 'meta' must be a mapping, got {type(meta).__name__}")
    return {**payload, "arch": arch, "arch_kwargs": kwargs, "classes": list(CLASSES), "window": WINDOW, "meta": meta}


def guess_arch(state_dict: dict, source: str = "state dict") -> str:
    """Tell the architecture from a bare state dict's keys."""
    if "fc1.weight" in state_dict:
        return "deadnet"
    if "fc.weight" in state_dict:
        return "deadnet-gap"
    raise ModelLoadError(f"{source}: state dict matches no known architecture (expected DeadNet keys)")


def build_checked(arch: str, kwargs: dict, state: dict, source: str) -> nn.Module:
    """Build a validated architecture and load ``state`` strictly, shapes compared first."""
    module = build_model(arch, **kwargs)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelLoadError(
            f"{source}: weights do not fit architecture {arch!r} (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelLoadError(
                f"{source}: weight {key!r} has shape {tuple(state[key].shape)}, "
                f"architecture {arch!r} needs {tuple(tensor.shape)}"
            )
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return module.eval()


def model_from_payload(payload: dict, source: str, sha256: str = "", card: dict | None = None) -> LoadedModel:
    """A LoadedModel (torch backend) from a payload checked by :func:`validate_payload`."""
    payload = validate_payload(payload, source)
    meta = dict(check_meta(payload["meta"], source, card))
    if card is None:
        stored = meta.get("card")
        card = stored if isinstance(stored, dict) else {}
    module = build_checked(payload["arch"], payload["arch_kwargs"], payload["state_dict"], source)
    return LoadedModel(
        TorchBackend(module), payload["arch"], payload["arch_kwargs"], CLASSES, WINDOW, meta, source, sha256, dict(card)
    )


def load_weights(
    path: str | os.PathLike, expected_sha256: str | None = None, source: str | None = None, card: dict | None = None
) -> LoadedModel:
    """Load a phototox weight file (or a bare DeadNet state dict) safely."""
    payload, checksum = read_weight_payload(path, expected_sha256)
    return model_from_payload(payload, source or str(path), checksum, card)
