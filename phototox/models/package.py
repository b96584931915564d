"""Reading bioimage.io model packages (zip or folder) and zoo ids/URLs, without running their code.

phototox reads the package description (``rdf.yaml``/``bioimageio.yaml``, format 0.4 or 0.5)
itself, with ``yaml.safe_load``, after checking its size; every field it uses is type-checked
(one-line error naming the field). It never imports the package's architecture source. Weights
are chosen by :data:`~phototox.models.backends.WEIGHT_PRIORITY`: ``pytorch_state_dict`` of a
phototox architecture (loaded into phototox's classes with ``weights_only=True`` after its sha256
is checked), else ``onnx`` (exact mode only). Zip members are read in memory after their declared
sizes are checked, inflated through a counting stream that stops at the limit whatever the header
declares; a member whose path is absolute, climbs out with ``..`` or is a link makes the
whole package invalid. Remote packages are downloaded into one cache entry each
(:mod:`phototox.models.cache`); every file reference is checked before any byte is written.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import urllib.parse
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import yaml

from phototox.errors import ModelLoadError
from phototox.models import cache
from phototox.models import limits as _limits
from phototox.models.architectures import ARCHITECTURES, CLASSES
from phototox.models.backends import WEIGHT_PRIORITY, OnnxBackend
from phototox.models.base import LoadedModel
from phototox.models.metaschema import check_meta
from phototox.models.weights import load_payload_bytes, model_from_payload, validate_arch_kwargs

DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")
ZOO_ID = re.compile(r"^[a-z]+(?:-[a-z]+)+(?:/[0-9]+(?:\.[0-9]+){0,3})?$")
"""A bioimage.io zoo id: ``adjective-animal``, optionally ``/VERSION`` (digits and dots)."""
ZOO_ID_LIKE = re.compile(r"^[A-Za-z]+(?:-[A-Za-z]+)+(?:/.*)?$")
DEFAULT_ZOO_URL = "https://hypha.aicell.io/bioimage-io/artifacts/{id}/files/rdf.yaml"
CLASS_NAMES = {cls.__name__: name for name, cls in ARCHITECTURES.items()}
INFLATE_CHUNK = 1 << 20
"""Bytes inflated from a zip member per read, so one read never allocates more."""


def looks_like_zoo_id(text: str) -> bool:
    """True for text shaped like a zoo id (``affable-shark``, ``affable-shark/1``) that is no local path."""
    return bool(ZOO_ID_LIKE.match(text)) and not Path(text).exists()


def check_zoo_id(text: str) -> str:
    """The id if it matches :data:`ZOO_ID` exactly, else a one-line refusal."""
    if not ZOO_ID.match(text):
        raise ModelLoadError(
            f"{text!r}: no such model file, and not a valid bioimage.io zoo id "
            "(expected adjective-animal or adjective-animal/VERSION, e.g. affable-shark/1.1)"
        )
    return text


def cache_dir() -> Path:
    """Where downloaded packages are kept (``<cache root>/zoo``)."""
    return cache.cache_root() / "zoo"


# --- typed access to description fields -------------------------------------------------------

_KINDS = {dict: "a mapping", list: "a list", str: "a string", int: "an integer"}


def field_of(container: dict, key: str, kind: type | tuple, where: str, path: str, required: bool = False):
    """``container[key]`` if of type ``kind`` (None when absent and optional), else a one-line error."""
    value = container.get(key)
    if value is None and not required:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if value is None or not isinstance(value, kinds) or isinstance(value, bool):
        wanted = " or ".join(_KINDS.get(k, k.__name__) for k in kinds)
        raise ModelLoadError(f"{where}: field '{path}' must be {wanted}, got {type(value).__name__}")
    return value


def _first_mapping(rdf: dict, key: str, where: str) -> dict:
    items = field_of(rdf, key, list, where, key) or [{}]
    if not isinstance(items[0], dict):
        raise ModelLoadError(f"{where}: field '{key}[0]' must be a mapping, got {type(items[0]).__name__}")
    return items[0]


# --- package access ---------------------------------------------------------------------------


class _PackageFiles:
    """Read-only, size-bounded access to the files of a zip or folder package."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.zip: zipfile.ZipFile | None = None
        self.prefix = ""
        limit = _limits.current()
        if location.is_dir():
            names = [n for n in DESCRIPTION_NAMES if (location / n).is_file()]
        elif location.is_file():
            if location.stat().st_size > limit.max_package_bytes:
                raise ModelLoadError(
                    f"{location}: {location.stat().st_size / 1e6:.0f} MB is over the "
                    f"{limit.max_package_bytes / 1e6:.0f} MB limit for a package"
                )
            try:
                self.zip = zipfile.ZipFile(location)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise ModelLoadError(f"{location}: not a valid zip file ({exc})") from None
            self._check_members()
            names = self._find_description()
        else:
            raise ModelLoadError(f"{location}: no such model package")
        if not names:
            raise ModelLoadError(f"{location}: no rdf.yaml or bioimageio.yaml in the package")
        self.description_name = names[0]

    def _check_members(self) -> None:
        assert self.zip is not None
        limit = _limits.current()
        infos = self.zip.infolist()
        if len(infos) > limit.max_package_members:
            raise ModelLoadError(
                f"{self.location}: {len(infos)} zip members, over the limit of {limit.max_package_members}; refusing it"
            )
        total = 0
        for info in infos:
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            mode = info.external_attr >> 16
            if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise ModelLoadError(f"{self.location}: zip member {name!r} escapes the package folder; refusing it")
            if stat.S_ISLNK(mode):
                raise ModelLoadError(f"{self.location}: zip member {name!r} is a symbolic link; refusing it")
            if info.file_size > limit.max_weight_file_bytes:
                raise ModelLoadError(
                    f"{self.location}: zip member {name!r} declares {info.file_size / 1e6:.0f} MB, "
                    f"over the {limit.max_weight_file_bytes / 1e6:.0f} MB limit; refusing it"
                )
            total += info.file_size
        if total > limit.max_package_bytes:
            raise ModelLoadError(
                f"{self.location}: members declare {total / 1e6:.0f} MB in all, over the "
                f"{limit.max_package_bytes / 1e6:.0f} MB limit; refusing it"
            )

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

    def size(self, name: str) -> int:
        """Declared (zip) or actual (folder) size of a referenced file."""
        rel = cache.check_relative(name, str(self.location))
        if self.zip is not None:
            try:
                return self.zip.getinfo(self.prefix + str(rel)).file_size
            except KeyError:
                raise ModelLoadError(f"{self.location}: package lists {name!r} but does not contain it") from None
        path = cache.safe_join(self.location, name, str(self.location))
        if not path.is_file():
            raise ModelLoadError(f"{self.location}: package lists {name!r} but does not contain it")
        return path.stat().st_size

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        """The bytes of a referenced file, refused when over ``max_bytes`` (weights limit by default)."""
        max_bytes = max_bytes or _limits.current().max_weight_file_bytes
        size = self.size(name)
        if size > max_bytes:
            raise ModelLoadError(
                f"{self.location}: {name} is {size / 1e6:.1f} MB, over the "
                f"{max_bytes / 1e6:.1f} MB limit; refusing it before reading"
            )
        rel = cache.check_relative(name, str(self.location))
        if self.zip is not None:
            try:
                return self._inflate(self.prefix + str(rel), max_bytes)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
                raise ModelLoadError(f"{self.location}: zip member {name!r} is corrupt ({exc})") from None
        return cache.safe_join(self.location, name, str(self.location)).read_bytes()

    def _inflate(self, member: str, max_bytes: int) -> bytes:
        """A zip member inflated :data:`INFLATE_CHUNK` bytes at a time, counted: refused as soon as
        more than ``max_bytes`` come out, whatever its header declares (a forged small size)."""
        assert self.zip is not None
        parts, total = [], 0
        with self.zip.open(member) as stream:
            while chunk := stream.read(INFLATE_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise ModelLoadError(
                        f"{self.location}: zip member {member!r} inflates beyond "
                        f"{max_bytes / 1e6:.1f} MB, the limit; refusing it"
                    )
                parts.append(chunk)
        return b"".join(parts)


def parse_description(data: bytes, where: str) -> dict:
    """Parse and type-check a description's top level (``type``, ``weights`` and each entry)."""
    try:
        rdf = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise ModelLoadError(f"{where}: not valid YAML ({first})") from None
    except RecursionError:
        raise ModelLoadError(f"{where}: YAML nested too deeply; refusing it") from None
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise ModelLoadError(f"{where}: does not describe a model (field 'type' must be 'model')")
    weights = field_of(rdf, "weights", dict, where, "weights", required=True)
    if not weights:
        raise ModelLoadError(f"{where}: the package lists no weights (field 'weights' is empty)")
    for key, entry in weights.items():
        if not isinstance(entry, dict):
            raise ModelLoadError(f"{where}: field 'weights.{key}' must be a mapping, got {type(entry).__name__}")
        source = field_of(entry, "source", str, where, f"weights.{key}.source", required=True)
        cache.check_relative(source, f"{where}: field 'weights.{key}.source'")
        field_of(entry, "sha256", str, where, f"weights.{key}.sha256")
    for key in ("name", "format_version"):
        field_of(rdf, key, str, where, key)
    for key in ("inputs", "outputs"):
        field_of(rdf, key, list, where, key)
    return rdf


def read_description(location: str | os.PathLike) -> tuple[dict, _PackageFiles]:
    """Parse a package's description safely; return it and a file reader."""
    files = _PackageFiles(Path(location))
    where = f"{location}: {files.description_name}"
    data = files.read(files.description_name, _limits.current().max_description_bytes)
    return parse_description(data, where), files


def _checked_bytes(files: _PackageFiles, entry: dict, what: str) -> bytes:
    source = entry["source"]
    data = files.read(source)
    expected = entry.get("sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected.lower():
        raise ModelLoadError(
            f"{files.location}: {source} does not match its sha256 in the package "
            "description; the package is corrupt or has been tampered with"
        )
    return data


def _architecture_of(entry: dict, where: str) -> tuple[str | None, dict]:
    arch = entry.get("architecture")
    if isinstance(arch, dict):  # format 0.5
        callable_name = field_of(arch, "callable", str, where, "weights.pytorch_state_dict.architecture.callable")
        kwargs = field_of(arch, "kwargs", dict, where, "weights.pytorch_state_dict.architecture.kwargs") or {}
    elif isinstance(arch, str):  # format 0.4: "file.py:Class"
        callable_name = arch.rsplit(":", 1)[-1]
        kwargs = field_of(entry, "kwargs", dict, where, "weights.pytorch_state_dict.kwargs") or {}
    else:
        return None, {}
    kwargs = dict(kwargs)
    kwargs.pop("softmax_output", None)  # the package wraps outputs as probabilities; phototox wants logits
    return CLASS_NAMES.get(str(callable_name)), kwargs


def _check_preprocessing(rdf: dict, where: str) -> None:
    steps = (
        field_of(_first_mapping(rdf, "inputs", where), "preprocessing", list, where, "inputs[0].preprocessing") or []
    )
    ids = [step.get("id") or step.get("name") for step in steps if isinstance(step, dict)]
    ids = [i for i in ids if i != "ensure_dtype"]
    if ids and ids != ["zero_mean_unit_variance"]:
        raise ModelLoadError(
            f"{where}: input preprocessing {ids} is not the per-crop zero-mean, unit-variance "
            "normalisation phototox applies; this model cannot run here"
        )


def chosen_weights(rdf: dict, where: str) -> tuple[str, dict]:
    """The first weight format of :data:`WEIGHT_PRIORITY` this package offers and phototox can run."""
    weights = rdf["weights"]
    for weight_format in WEIGHT_PRIORITY:
        entry = weights.get(weight_format)
        if entry is None:
            continue
        if weight_format == "pytorch_state_dict" and _architecture_of(entry, where)[0] is None:
            continue  # not a phototox architecture: its code would have to run
        return weight_format, entry
    raise ModelLoadError(
        f"{where}: no weights phototox can run safely (needs pytorch_state_dict of a "
        f"phototox architecture, or onnx); found {', '.join(map(str, weights))}"
    )


def load_package(location: str | os.PathLike, source: str | None = None) -> LoadedModel:
    """Load a bioimage.io classifier package (zip or folder) as a phototox model."""
    rdf, files = read_description(location)
    where = str(location)
    _check_preprocessing(rdf, where)
    weight_format, entry = chosen_weights(rdf, where)
    name = rdf.get("name") or ""
    data = _checked_bytes(files, entry, weight_format)
    checksum = hashlib.sha256(data).hexdigest()
    if weight_format == "onnx":
        return _load_onnx(rdf, data, where, source or where, checksum)
    arch, kwargs = _architecture_of(entry, where)
    arch, kwargs = validate_arch_kwargs(arch, kwargs, f"{where}: weights.pytorch_state_dict.architecture")
    state = load_payload_bytes(data, f"{where}: {entry['source']}")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelLoadError(f"{where}: {entry['source']} is not a state dict")
    return model_from_payload(
        {
            "format": "phototox-weights",
            "arch": arch,
            "arch_kwargs": kwargs,
            "state_dict": state,
            "meta": {"bioimageio_name": name},
        },
        source or where,
        checksum,
        _card_of(rdf),
    )


def _card_of(rdf: dict) -> dict:
    """Per-model metadata a package carries (phototox's own packages write it under config.phototox)."""
    config = rdf.get("config")
    mine = config.get("phototox") if isinstance(config, dict) else None
    mine = mine if isinstance(mine, dict) else {}
    card = {k: mine[k] for k in ("pixel_size_um", "pixel_size_note", "training_data", "citations") if k in mine}
    if isinstance(rdf.get("cite"), list) and "citations" not in card:
        card["citations"] = rdf["cite"]
    card["summary"] = str(rdf.get("description") or "")[:500]
    return card


# --- ONNX classifiers -------------------------------------------------------------------------


def _load_onnx(rdf: dict, data: bytes, where: str, source: str, checksum: str) -> LoadedModel:
    window = _input_window(_first_mapping(rdf, "inputs", where), where)
    n_out = _output_channels(_first_mapping(rdf, "outputs", where))
    if n_out not in (None, 2):
        raise ModelLoadError(f"{where}: output has {n_out} classes; phototox needs healthy/sick (2)")
    card = _card_of(rdf)
    meta = check_meta({"bioimageio_name": rdf.get("name", "")}, where, card)
    backend = OnnxBackend(data, where)
    return LoadedModel(backend, "onnx", {}, CLASSES, window, meta, source, checksum, card)


def _input_window(spec: dict, where: str) -> int:
    axes = spec.get("axes")
    if isinstance(axes, list) and axes and all(isinstance(a, dict) for a in axes):  # format 0.5
        sizes = {a.get("id", a.get("type")): a.get("size") for a in axes}
        for key in ("y", "x"):
            size = sizes.get(key)
            if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 4096:
                raise ModelLoadError(
                    f"{where}: field 'inputs[0].axes' {key} has no fixed size in 16..4096; "
                    "phototox needs a fixed window"
                )
        if sizes["y"] != sizes["x"]:
            raise ModelLoadError(f"{where}: input window must be square, got {sizes['y']}x{sizes['x']}")
        return int(sizes["y"])
    shape = spec.get("shape")
    if isinstance(axes, str) and isinstance(shape, list) and "y" in axes and len(shape) == len(axes):  # 0.4
        size = shape[axes.index("y")]
        if isinstance(size, int) and not isinstance(size, bool) and 16 <= size <= 4096:
            return size
    raise ModelLoadError(f"{where}: cannot read the input window size (field 'inputs[0].axes'/'shape')")


def _output_channels(spec: dict) -> int | None:
    axes = spec.get("axes")
    for axis in axes if isinstance(axes, list) else []:
        if isinstance(axis, dict) and axis.get("type") == "channel":
            names = axis.get("channel_names")
            return len(names) if isinstance(names, list) and names else None
    return None


# --- remote packages --------------------------------------------------------------------------


def fetch_remote(spec: str) -> Path:
    """Download a zoo id or package URL once into its cache entry; return the local package path.

    A description URL is fetched into memory (size-capped), parsed and checked -- every weight
    ``source`` must be a relative path inside the package -- before anything is written; then
    the description and the weights phototox will run are downloaded into the entry.
    """
    if spec.startswith(("http://", "https://")):
        url, key = spec, hashlib.sha256(spec.encode()).hexdigest()[:16]
    else:
        model_id = check_zoo_id(spec)
        url = os.environ.get("PHOTOTOX_ZOO_URL", DEFAULT_ZOO_URL).format(id=model_id)
        key = model_id.replace("/", "_")
    entry = cache.cache_entry("zoo", key)
    done = entry / ".complete"
    if done.is_file():
        target = cache.safe_join(entry, done.read_text().strip() or "package", str(done))
        if target.exists():
            return target
    name = PurePosixPath(urllib.parse.urlparse(url).path).name or "package.zip"
    limit = _limits.current()
    if name.endswith(".zip"):
        target = cache.download(url, entry, name, "the package", limit.max_package_bytes)
    else:  # a description URL: check it, then fetch it and the weights phototox will use
        data = cache.fetch_bytes(url, limit.max_description_bytes, "the model description")
        rdf = parse_description(data, url)
        weight_format, chosen = chosen_weights(rdf, url)
        package = cache.safe_join(entry, "package", url)
        sources = {"rdf.yaml": None, chosen["source"]: urllib.parse.urljoin(url, chosen["source"])}
        for reference in sources:
            cache.safe_join(package, reference, f"{url}: weights.{weight_format}.source")
        entry.mkdir(parents=True, exist_ok=True)
        cache.download_bytes(data, package, "rdf.yaml", url)
        cache.download(
            sources[chosen["source"]],
            package,
            chosen["source"],
            f"the {weight_format} weights",
            limit.max_weight_file_bytes,
        )
        target = package
    cache.write_marker(done, target.relative_to(entry).as_posix())
    return target
