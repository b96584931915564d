"""Property fuzz (issue #23): model metadata, bioimage.io descriptions and OME-Zarr attributes.

Whatever the input: a result or a one-line PhototoxError, never another exception, and nothing
written anywhere but the cache. Deterministic (``derandomize=True``, fixed example counts), so CI
sees the same inputs every run; about 25 s on two cores.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phototox.errors import PhototoxError
from phototox.maps.normalise import contract_of
from phototox.models.architectures import build_model
from phototox.models.metaschema import DOMAIN_FEATURES
from phototox.models.package import load_package, parse_description
from phototox.models.weights import FORMAT, model_from_payload
from phototox.screens.zarrio import open_ome_zarr, write_ome_zarr
from phototox.trust.controls import ControlReference
from phototox.trust.domain import DomainStats
from phototox.trust.pixelsize import model_pixel_size, resolve_pixel_size

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, 3, 221, 222, 20001, 0.02, 1e-5, 0.434, 1e308, -1.0])
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def one_line_refusal(exc: PhototoxError) -> None:
    message = str(exc)
    assert message and "\n" not in message, message


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- model meta -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gap_state() -> dict:
    torch.manual_seed(0)
    return build_model("deadnet-gap").state_dict()


def _domain(draw) -> dict:
    n = draw(st.sampled_from([DOMAIN_FEATURES, DOMAIN_FEATURES, 3]))
    domain = {"mean": [0.0] * n, "precision": np.eye(n).tolist(), "threshold": draw(SCALARS)}
    if draw(st.booleans()):
        domain["fine_detail"] = {"limit": draw(SCALARS), "range": draw(JSON)}
    return domain


@st.composite
def metas(draw) -> dict:
    """Meta dicts shaped like real ones, each field possibly replaced by anything."""
    fields = {
        "pixel_size_um": SCALARS,
        "normalisation": st.fixed_dictionaries({"kind": st.sampled_from(["box", "crop", "x"]), "size": SCALARS}) | JSON,
        "domain": JSON,
        "calibration": st.fixed_dictionaries({"control_p_sick": st.lists(SCALARS, max_size=5)}) | JSON,
        "quality": st.fixed_dictionaries({"focus_reference": SCALARS}) | JSON,
        "card": st.fixed_dictionaries({"pixel_size_um": SCALARS}) | JSON,
        "other": JSON,
    }
    meta = {}
    for name, strategy in fields.items():
        if draw(st.booleans()):
            meta[name] = draw(strategy)
    if draw(st.booleans()):
        meta["domain"] = _domain(draw)
    return meta


def _use(model) -> None:
    """What inference reads from the metadata, once it has loaded."""
    contract_of(model)
    model_pixel_size(model.meta)
    _ = model.pixel_size_um
    DomainStats.from_meta(model.meta)
    ControlReference.from_meta(model.meta)
    resolve_pixel_size(None, None, model_pixel_size(model.meta))


@settings(FUZZ, max_examples=300)
@given(meta=metas())
def test_model_meta_loads_or_is_one_line(gap_state, meta):
    payload = {"format": FORMAT, "arch": "deadnet-gap", "arch_kwargs": {"border": 3}, "state_dict": gap_state}
    try:
        _use(model_from_payload({**payload, "meta": meta}, "fuzz.pt"))
    except PhototoxError as exc:
        one_line_refusal(exc)


# --- bioimage.io descriptions -----------------------------------------------------------------


@pytest.fixture(scope="module")
def package(tmp_path_factory, gap_state) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("pkg")
    buffer = io.BytesIO()
    torch.save(gap_state, buffer)
    (folder / "weights.pt").write_bytes(buffer.getvalue())
    rdf = {
        "type": "model",
        "format_version": "0.5.3",
        "name": "fuzz",
        "inputs": [
            {
                "id": "phase",
                "axes": [{"type": "batch"}, {"type": "space", "id": "y", "size": 220}],
                "preprocessing": [{"id": "zero_mean_unit_variance"}],
            }
        ],
        "weights": {
            "pytorch_state_dict": {
                "source": "weights.pt",
                "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
                "architecture": {"callable": "DeadNetGAP", "kwargs": {"border": 3}},
            },
            "onnx": {"source": "missing.onnx"},
        },
        "config": {"phototox": {"pixel_size_um": 0.434}},
    }
    return folder, rdf


def _paths(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*path, i))
    if path:
        yield path


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_rdf_loads_or_is_one_line_and_writes_nothing(package, tmp_path_factory, monkeypatch_module, data):
    folder, original = package
    rdf = copy.deepcopy(original)
    for path in data.draw(st.lists(st.sampled_from(list(_paths(original))), min_size=1, max_size=3)):
        target = rdf
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = data.draw(JSON)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed this path
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    before = tree(folder)
    try:
        _use(load_package(folder))
    except PhototoxError as exc:
        one_line_refusal(exc)
    assert tree(folder) == before


@settings(FUZZ, max_examples=300)
@given(text=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_rdf_bytes_parse_or_are_one_line(text):
    try:
        parse_description(text, "rdf.yaml")
    except PhototoxError as exc:
        one_line_refusal(exc)


@pytest.fixture(scope="module")
def monkeypatch_module(tmp_path_factory):
    """The model cache in a temporary folder for the whole module."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PHOTOTOX_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield mp
    mp.undo()


# --- OME-Zarr attributes ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, dict]:
    image = (np.random.default_rng(0).random((64, 64)) * 1000).astype(np.uint16)
    path = write_ome_zarr(tmp_path_factory.mktemp("zarr") / "img.zarr", image, pixel_size_um=0.434, chunk=32)
    return path, json.loads((path / "zarr.json").read_text())


@st.composite
def attributes(draw, original: dict) -> dict:
    attrs = copy.deepcopy(original)
    for path in draw(st.lists(st.sampled_from(list(_paths(original))), min_size=1, max_size=3)):
        target = attrs
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = draw(JSON)
        except (KeyError, IndexError, TypeError):
            continue
    return attrs


@settings(FUZZ, max_examples=250)
@given(data=st.data())
def test_ome_zarr_attributes_open_or_are_one_line(store, data):
    path, original = store
    document = copy.deepcopy(original)
    document["attributes"] = data.draw(attributes(original["attributes"]))
    (path / "zarr.json").write_text(json.dumps(document, allow_nan=True))
    before = tree(path.parent)
    try:
        frame = open_ome_zarr(path)
        frame[0:8, 0:8]
        if frame.pixel_size_um is not None and math.isfinite(frame.pixel_size_um):
            resolve_pixel_size(None, path, 0.434, frame.pixel_size_um)
    except PhototoxError as exc:
        one_line_refusal(exc)
    assert tree(path.parent) == before


@pytest.fixture(scope="module")
def store_v2(tmp_path_factory) -> tuple[Path, dict]:
    """A zarr v2 OME-Zarr image (attributes in ``.zattrs``)."""
    import zarr

    path = tmp_path_factory.mktemp("zarr2") / "img.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    array = group.create_array("0", shape=(64, 64), chunks=(32, 32), dtype="uint16", fill_value=0)
    array[...] = (np.random.default_rng(1).random((64, 64)) * 1000 + 1).astype(np.uint16)
    axes = [{"name": "y", "type": "space", "unit": "micrometer"}, {"name": "x", "type": "space", "unit": "micrometer"}]
    scale = [{"type": "scale", "scale": [0.434, 0.434]}]
    group.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    ]
    return path, json.loads((path / ".zattrs").read_text())


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_ome_zarr_v2_zattrs_open_or_are_one_line(store_v2, data):
    path, original = store_v2
    (path / ".zattrs").write_text(json.dumps(data.draw(attributes(original)), allow_nan=True))
    before = tree(path.parent)
    try:
        frame = open_ome_zarr(path)
        frame[0:8, 0:8]
        if frame.pixel_size_um is not None and math.isfinite(frame.pixel_size_um):
            resolve_pixel_size(None, path, 0.434, frame.pixel_size_um)
    except PhototoxError as exc:
        one_line_refusal(exc)
    assert tree(path.parent) == before
