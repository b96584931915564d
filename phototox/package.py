"""Reading bioimage.io model packages (zip or folder) and zoo ids/URLs, without running their code.

phototox reads the package description (``rdf.yaml``/``bioimageio.yaml``, format 0.4 or 0.5)
itself, with ``yaml.safe_load``; it never imports the package's architecture source. A
``pytorch_state_dict`` weight entry whose architecture callable is a phototox architecture
(``DeadNet``, ``DeadNetGAP``) is loaded into our own classes with ``weights_only=True``, after
its sha256 is checked. Other classifiers with ONNX weights run through onnxruntime (exact mode
only). Zip members are read in memory; a member whose path is absolute, climbs out with ``..``
or is a link makes the whole package invalid.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import yaml

from .errors import ModelLoadError
from .images import atomic_path
from .model import ARCHITECTURES, CLASSES
from .weights import LoadedModel, model_from_payload

DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")
MAX_MEMBER_BYTES = 2 * 1024**3
ZOO_ID = re.compile(r"^[a-z]+-[a-z]+(/[0-9.]+)?$")
DEFAULT_ZOO_URL = "https://hypha.aicell.io/bioimage-io/artifacts/{id}/files/rdf.yaml"
CLASS_NAMES = {cls.__name__: name for name, cls in ARCHITECTURES.items()}


def looks_like_zoo_id(text: str) -> bool:
    """True for bioimage.io ids such as ``affable-shark`` (optionally ``/1.2``) that are not local paths."""
    return bool(ZOO_ID.match(text)) and not Path(text).exists()


def cache_dir() -> Path:
    """Where downloaded packages are kept (``PHOTOTOX_CACHE`` or ``~/.cache/phototox``)."""
    root = os.environ.get("PHOTOTOX_CACHE") or Path.home() / ".cache" / "phototox"
    return Path(root) / "zoo"


# --- package access ---------------------------------------------------------------------------

class _PackageFiles:
    """Read-only access to the files of a zip or folder package, refusing escaping paths."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.zip: zipfile.ZipFile | None = None
        self.prefix = ""
        if location.is_dir():
            names = [n for n in DESCRIPTION_NAMES if (location / n).is_file()]
        elif location.is_file():
            try:
                self.zip = zipfile.ZipFile(location)
            except (zipfile.BadZipFile, OSError) as exc:
                raise ModelLoadError(f"{location}: not a valid zip file ({exc})") from exc
            self._check_members()
            names = self._find_description()
        else:
            raise ModelLoadError(f"{location}: no such model package")
        if not names:
            raise ModelLoadError(f"{location}: no rdf.yaml or bioimageio.yaml in the package")
        self.description_name = names[0]

    def _check_members(self) -> None:
        assert self.zip is not None
        for info in self.zip.infolist():
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            mode = info.external_attr >> 16
            if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise ModelLoadError(f"{self.location}: zip member {name!r} escapes the package folder; refusing it")
            if stat.S_ISLNK(mode):
                raise ModelLoadError(f"{self.location}: zip member {name!r} is a symbolic link; refusing it")
            if info.file_size > MAX_MEMBER_BYTES:
                raise ModelLoadError(f"{self.location}: zip member {name!r} is implausibly large")

    def _find_description(self) -> list[str]:
        assert self.zip is not None
        names = self.zip.namelist()
        for wanted in DESCRIPTION_NAMES:
            if wanted in names:
                return [wanted]
        nested = [n for n in names if PurePosixPath(n).name in DESCRIPTION_NAMES and len(PurePosixPath(n).parts) == 2]
        if len(nested) == 1:
            self.prefix = str(PurePosixPath(nested[0]).parent) + "/"
            return [PurePosixPath(nested[0]).name]
        return []

    def read(self, name: str) -> bytes:
        rel = PurePosixPath(name.replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts or "://" in name:
            raise ModelLoadError(f"{self.location}: file reference {name!r} points outside the package")
        if self.zip is not None:
            try:
                return self.zip.read(self.prefix + str(rel))
            except KeyError:
                raise ModelLoadError(f"{self.location}: package lists {name!r} but does not contain it") from None
        path = self.location / rel
        if not path.resolve().is_relative_to(self.location.resolve()):
            raise ModelLoadError(f"{self.location}: file reference {name!r} points outside the package")
        if not path.is_file():
            raise ModelLoadError(f"{self.location}: package lists {name!r} but does not contain it")
        return path.read_bytes()


def read_description(location: str | os.PathLike) -> tuple[dict, _PackageFiles]:
    """Parse a package's description safely; return it and a file reader."""
    files = _PackageFiles(Path(location))
    try:
        rdf = yaml.safe_load(files.read(files.description_name))
    except yaml.YAMLError as exc:
        raise ModelLoadError(f"{location}: {files.description_name} is not valid YAML ({exc})") from exc
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise ModelLoadError(f"{location}: {files.description_name} does not describe a model (type: model)")
    if not isinstance(rdf.get("weights"), dict) or not rdf["weights"]:
        raise ModelLoadError(f"{location}: the package lists no weights")
    return rdf, files


def _checked_bytes(files: _PackageFiles, entry: dict, what: str) -> bytes:
    source = entry.get("source")
    if not isinstance(source, str):
        raise ModelLoadError(f"{files.location}: {what} weights have no source file")
    data = files.read(source)
    expected = entry.get("sha256")
    if expected and hashlib.sha256(data).hexdigest() != str(expected).lower():
        raise ModelLoadError(f"{files.location}: {source} does not match its sha256 in the package "
                             "description; the package is corrupt or has been tampered with")
    return data


def _architecture_of(entry: dict) -> tuple[str | None, dict]:
    arch = entry.get("architecture")
    if isinstance(arch, dict):  # format 0.5
        callable_name = str(arch.get("callable", ""))
        kwargs = dict(arch.get("kwargs") or {})
    elif isinstance(arch, str):  # format 0.4: "file.py:Class"
        callable_name = arch.rsplit(":", 1)[-1]
        kwargs = dict(entry.get("kwargs") or {})
    else:
        return None, {}
    kwargs.pop("softmax_output", None)  # the package wraps outputs as probabilities; phototox wants logits
    return CLASS_NAMES.get(callable_name), kwargs


def _check_preprocessing(rdf: dict, location: str) -> None:
    inputs = rdf.get("inputs") or [{}]
    steps = inputs[0].get("preprocessing") or []
    ids = [step.get("id") or step.get("name") for step in steps if isinstance(step, dict)]
    ids = [i for i in ids if i != "ensure_dtype"]
    if ids and ids != ["zero_mean_unit_variance"]:
        raise ModelLoadError(f"{location}: input preprocessing {ids} is not the per-crop zero-mean, unit-variance "
                             "normalisation phototox applies; this model cannot run here")


def load_package(location: str | os.PathLike) -> LoadedModel:
    """Load a bioimage.io classifier package (zip or folder) as a phototox model."""
    rdf, files = read_description(location)
    _check_preprocessing(rdf, str(location))
    weights = rdf["weights"]
    state_entry = weights.get("pytorch_state_dict")
    if isinstance(state_entry, dict):
        arch, kwargs = _architecture_of(state_entry)
        if arch is not None:
            data = _checked_bytes(files, state_entry, "pytorch_state_dict")
            try:
                state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except Exception as exc:
                raise ModelLoadError(f"{location}: state dict cannot be read safely ({exc})") from exc
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            loaded = model_from_payload({"arch": arch, "arch_kwargs": kwargs, "state_dict": state,
                                         "meta": {"bioimageio_name": rdf.get("name", "")}}, str(location))
            return loaded
    onnx_entry = weights.get("onnx")
    if isinstance(onnx_entry, dict):
        return _load_onnx(rdf, files, onnx_entry, str(location))
    raise ModelLoadError(f"{location}: no weights phototox can run safely (needs pytorch_state_dict of a "
                         f"phototox architecture, or onnx); found {', '.join(weights)}")


# --- ONNX classifiers -------------------------------------------------------------------------

class OnnxClassifier(torch.nn.Module):
    """Runs an ONNX classifier through onnxruntime on CPU; outputs class probabilities."""

    def __init__(self, data: bytes, source: str) -> None:
        super().__init__()
        try:
            import onnxruntime
        except ImportError as exc:
            raise ModelLoadError(f"{source}: ONNX weights need onnxruntime (pip install onnxruntime)") from exc
        try:
            self.session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"{source}: ONNX weights cannot be loaded ({exc})") from exc
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().cpu().numpy().astype(np.float32)})[0]
        out = torch.from_numpy(np.asarray(out, dtype=np.float32).reshape(len(x), -1))
        return out.to(x.device)


def _load_onnx(rdf: dict, files: _PackageFiles, entry: dict, location: str) -> LoadedModel:
    inputs, outputs = rdf.get("inputs") or [{}], rdf.get("outputs") or [{}]
    window = _input_window(inputs[0], location)
    n_out = _output_channels(outputs[0])
    if n_out not in (None, 2):
        raise ModelLoadError(f"{location}: output has {n_out} classes; phototox needs healthy/sick (2)")
    module = OnnxClassifier(_checked_bytes(files, entry, "onnx"), location)
    return LoadedModel(module, "onnx", {}, CLASSES, window, {"bioimageio_name": rdf.get("name", "")},
                       location, outputs="probabilities")


def _input_window(spec: dict, location: str) -> int:
    axes = spec.get("axes")
    if isinstance(axes, list) and axes and isinstance(axes[0], dict):  # format 0.5
        sizes = {a.get("id", a.get("type")): a.get("size") for a in axes}
        for key in ("y", "x"):
            if not isinstance(sizes.get(key), int):
                raise ModelLoadError(f"{location}: input axis {key} has no fixed size; phototox needs a fixed window")
        if sizes["y"] != sizes["x"]:
            raise ModelLoadError(f"{location}: input window must be square, got {sizes['y']}x{sizes['x']}")
        return int(sizes["y"])
    shape = spec.get("shape")
    if isinstance(axes, str) and isinstance(shape, list):  # format 0.4, e.g. "bcyx"
        return int(shape[axes.index("y")])
    raise ModelLoadError(f"{location}: cannot read the input window size from the package")


def _output_channels(spec: dict) -> int | None:
    for axis in spec.get("axes") or []:
        if isinstance(axis, dict) and axis.get("type") == "channel":
            names = axis.get("channel_names") or []
            return len(names) or None
    return None


# --- remote packages --------------------------------------------------------------------------

def _download(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                while chunk := response.read(1 << 20):
                    handle.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelLoadError(f"cannot download {url} ({reason}); a zoo model needs the network the first "
                             f"time, after which it is cached in {cache_dir()}") from exc


def fetch_remote(spec: str) -> Path:
    """Download a zoo id or package URL once into the cache; return the local package path."""
    if looks_like_zoo_id(spec):
        model_id = spec
        url = os.environ.get("PHOTOTOX_ZOO_URL", DEFAULT_ZOO_URL).format(id=spec)
    else:
        model_id = hashlib.sha256(spec.encode()).hexdigest()[:16]
        url = spec
    folder = cache_dir() / model_id.replace("/", "_")
    done = folder / ".complete"
    if done.is_file():
        target = Path(done.read_text().strip())
        if target.exists():
            return target
    folder.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(urllib.parse.urlparse(url).path).name or "package.zip"
    if name.endswith(".zip"):
        target = folder / name
        _download(url, target)
    else:  # a description URL: fetch it and the weight files it lists
        target = folder / "package"
        description = target / "rdf.yaml"
        _download(url, description)
        rdf, _ = read_description(target)
        for entry in rdf["weights"].values():
            source = entry.get("source") if isinstance(entry, dict) else None
            if isinstance(source, str) and "://" not in source and ".." not in source:
                _download(urllib.parse.urljoin(url, source), target / source)
    done.write_text(str(target))
    return target
