"""Hostile model files, packages and downloads (issue 14): refused in one line, nothing written
outside the cache, bounded in size, time and memory.

Every test lists the temporary tree before and after: a refusal must leave no file anywhere but
(for downloads that were allowed to start) inside the cache entry.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from hostile_support import PEAK_RSS_KB_SOURCE

from phototox.errors import ModelLoadError
from phototox.models import limits
from phototox.models.architectures import build_model
from phototox.models.loader import load_model
from phototox.models.package import check_zoo_id
from phototox.models.weights import FORMAT, FORMAT_VERSION


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (files and folders), relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message, message
    return message


@pytest.fixture(scope="module")
def gap_state() -> dict:
    torch.manual_seed(0)
    return build_model("deadnet-gap").state_dict()


def _payload(state: dict, **changes) -> dict:
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": "deadnet-gap",
        "arch_kwargs": {"border": 3},
        "classes": ["healthy", "sick"],
        "window": 220,
        "state_dict": state,
        "meta": {},
    }
    payload.update(changes)
    return payload


def _rdf(weights_sha: str) -> dict:
    return {
        "type": "model",
        "format_version": "0.5.3",
        "name": "hostile test package",
        "inputs": [
            {
                "id": "phase",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel"},
                    {"type": "space", "id": "y", "size": 220},
                    {"type": "space", "id": "x", "size": 220},
                ],
                "preprocessing": [{"id": "zero_mean_unit_variance"}],
            }
        ],
        "outputs": [{"id": "p", "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["h", "s"]}]}],
        "weights": {
            "pytorch_state_dict": {
                "source": "weights.pt",
                "sha256": weights_sha,
                "architecture": {"callable": "DeadNetGAP", "source": "deadnet.py", "kwargs": {"border": 3}},
            }
        },
    }


@pytest.fixture()
def package_dir(tmp_path, gap_state) -> Path:
    """A valid folder package of a randomly initialised DeadNet-GAP."""
    folder = tmp_path / "site" / "pkg"
    folder.mkdir(parents=True)
    buffer = io.BytesIO()
    torch.save(gap_state, buffer)
    (folder / "weights.pt").write_bytes(buffer.getvalue())
    (folder / "rdf.yaml").write_text(yaml.safe_dump(_rdf(hashlib.sha256(buffer.getvalue()).hexdigest())))
    return folder


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _serve(root: Path, handler_class=None):
    handler = handler_class or functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture()
def site(package_dir, tmp_path, monkeypatch):
    """The package served over loopback HTTP; the cache in tmp_path/cache."""
    monkeypatch.setenv("PHOTOTOX_CACHE", str(tmp_path / "cache"))
    server, base = _serve(package_dir.parent)
    yield base
    server.shutdown()
    server.server_close()


# --- remote packages ------------------------------------------------------------------------


def test_remote_package_loads_and_writes_only_inside_its_cache_entry(site, tmp_path):
    before = tree(tmp_path)
    model = load_model(site + "/pkg/rdf.yaml")
    assert model.arch == "deadnet-gap" and len(model.sha256) == 64
    new = tree(tmp_path) - before
    assert new and all(p in ("cache", "cache/zoo") or p.startswith("cache/zoo/") for p in new), new
    entries = {p.split("/")[2] for p in new if p.count("/") >= 2}
    assert len(entries) == 1  # one entry per URL


@pytest.mark.parametrize(
    "source",
    [
        "{tmp}/x/pwned.txt",
        "../../pwned.txt",
        "sub/../../../pwned.txt",
        "..\\..\\pwned.txt",
        "http://127.0.0.1:1/pwned.txt",
        "C:/pwned.txt",
    ],
)
def test_remote_weight_source_outside_the_package_is_refused_before_any_write(site, package_dir, tmp_path, source):
    rdf = yaml.safe_load((package_dir / "rdf.yaml").read_text())
    rdf["weights"]["pytorch_state_dict"]["source"] = source.format(tmp=tmp_path)
    (package_dir / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    before = tree(tmp_path)
    with pytest.raises(ModelLoadError) as exc:
        load_model(site + "/pkg/rdf.yaml")
    message = one_line(exc)
    assert "weights.pytorch_state_dict.source" in message and "outside the package" in message
    assert tree(tmp_path) == before  # not even the description reached the cache
    assert not (tmp_path / "x").exists() and not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize(
    "bad",
    [
        "affable-shark/..",
        "affable-shark/../../etc",
        "affable-shark/1/../x",
        "Affable-Shark/1",
        "affable-shark/1.2.3.4.5",
        "affable-shark/",
    ],
)
def test_malformed_zoo_ids_are_refused_without_network(bad, tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOTOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PHOTOTOX_ZOO_URL", "http://127.0.0.1:1/{id}/rdf.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as exc:
        load_model(bad)
    assert "not a valid bioimage.io zoo id" in one_line(exc)
    assert tree(tmp_path) == set()


def test_zoo_id_pattern_accepts_real_ids():
    for good in ("affable-shark", "affable-shark/1", "affable-shark/1.1", "impartial-shrimp"):
        assert check_zoo_id(good) == good


class _Slow(http.server.BaseHTTPRequestHandler):
    """Declares a body, then drips one byte per second (or streams without a length)."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path.endswith("drip.zip"):
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1.0)
        elif self.path.endswith("declared.yaml"):
            self.send_header("Content-Length", str(200 * 1024**2))
            self.end_headers()
            self.wfile.write(b"type: model\n")
        else:  # 3 MB with no Content-Length
            self.end_headers()
            try:
                for _ in range(48):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                return


@pytest.fixture()
def slow_site(tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOTOX_CACHE", str(tmp_path / "cache"))
    server, base = _serve(tmp_path, _Slow)
    yield base
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_a_dripping_download_fails_at_the_overall_deadline(slow_site, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "LIMITS", limits.LoaderLimits(download_deadline_s=2.0))
    outcome: list = []

    def attempt() -> None:
        try:
            load_model(slow_site + "/drip.zip")
            outcome.append("loaded")
        except ModelLoadError as exc:
            outcome.append(exc)

    start = time.monotonic()
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=8.0)  # a per-read timeout would wait 1000 s here
    elapsed = time.monotonic() - start
    assert not worker.is_alive(), "the download did not stop at its deadline"
    assert elapsed < 4.0, elapsed
    assert isinstance(outcome[0], ModelLoadError) and "did not finish within 2 s" in str(outcome[0])
    assert "\n" not in str(outcome[0])
    assert not [p for p in tree(tmp_path) if p.endswith((".zip", ".tmp"))]


def test_downloads_are_capped_in_size(slow_site, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "LIMITS", limits.LoaderLimits(max_download_bytes=1024**2, max_package_bytes=1024**2))
    with pytest.raises(ModelLoadError) as exc:  # no Content-Length: stopped while streaming
        load_model(slow_site + "/big.zip")
    assert "over the 1.0 MB limit" in one_line(exc)
    with pytest.raises(ModelLoadError) as exc:  # a declared 200 MB description: refused before reading
        load_model(slow_site + "/declared.yaml")
    assert "declares 209.7 MB" in one_line(exc)
    assert not [p for p in tree(tmp_path) if p.endswith((".zip", ".tmp", ".yaml"))]


# --- package files --------------------------------------------------------------------------


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
    return target


def _declare_size(path: Path, member: str, size: int) -> None:
    """Rewrite a member's declared uncompressed size (local header and central directory)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    local = info.header_offset
    data[local + 22 : local + 26] = size.to_bytes(4, "little")
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + name_len] == member.encode():
            data[central + 24 : central + 28] = size.to_bytes(4, "little")
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def test_zip_member_declaring_gigabytes_is_refused_before_extraction(package_dir, tmp_path):
    package = _zip(package_dir, tmp_path / "bomb.zip")
    _declare_size(package, "weights.pt", 0xF0000000)  # 3.8 GB
    with zipfile.ZipFile(package) as archive:
        assert archive.getinfo("weights.pt").file_size == 0xF0000000
    before = tree(tmp_path)
    with pytest.raises(ModelLoadError) as exc:
        load_model(str(package))
    message = one_line(exc)
    assert "weights.pt" in message and "declares 4027 MB" in message
    assert tree(tmp_path) == before


def test_zip_member_with_bad_crc_gives_one_line(package_dir, tmp_path):
    package = tmp_path / "crc.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(package_dir.iterdir()):
            archive.write(path, path.name)
    with zipfile.ZipFile(package) as archive:
        info = archive.getinfo("weights.pt")
    data = bytearray(package.read_bytes())
    start = info.header_offset + 30 + len("weights.pt") + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF  # one flipped byte in the stored member
    package.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError) as exc:
        load_model(str(package))
    message = one_line(exc)
    assert "crc.zip" in message and "'weights.pt' is corrupt" in message and "CRC" in message


def test_huge_description_is_refused_by_size_before_parsing(package_dir, tmp_path):
    with open(package_dir / "rdf.yaml", "r+b") as handle:
        handle.truncate(200 * 1024**2)  # sparse: 200 MB on paper, nothing on disk
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as exc:
        load_model(str(package_dir))
    assert "rdf.yaml is 209.7 MB, over the 1.0 MB limit" in one_line(exc)
    assert time.monotonic() - start < 2.0


WRONG_TYPES = [
    (("weights",), ["x"], "weights"),
    (("weights",), "x", "weights"),
    (("weights", "pytorch_state_dict"), 5, "weights.pytorch_state_dict"),
    (("weights", "pytorch_state_dict", "source"), 7, "weights.pytorch_state_dict.source"),
    (("weights", "pytorch_state_dict", "sha256"), 12, "weights.pytorch_state_dict.sha256"),
    (("weights", "pytorch_state_dict", "architecture", "kwargs"), [1], "architecture.kwargs"),
    (("weights", "pytorch_state_dict", "architecture", "kwargs"), {"border": "3"}, "arch_kwargs.border"),
    (("weights", "pytorch_state_dict", "architecture", "kwargs"), {"n_classes": 6_000_000}, "n_classes"),
    (("weights", "pytorch_state_dict", "architecture", "callable"), 3, "architecture.callable"),
    (("inputs",), "phase", "inputs"),
    (("inputs",), [5], "inputs[0]"),
    (("inputs", 0, "preprocessing"), "zero_mean", "inputs[0].preprocessing"),
    (("name",), ["a"], "name"),
]


@pytest.mark.parametrize("path,value,field", WRONG_TYPES)
def test_description_fields_of_the_wrong_type_give_one_line_naming_the_field(package_dir, path, value, field):
    rdf = yaml.safe_load((package_dir / "rdf.yaml").read_text())
    target = rdf
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    (package_dir / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(ModelLoadError) as exc:
        load_model(str(package_dir))
    message = one_line(exc)
    assert field in message and str(package_dir) in message


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, (*path, i))
    if path:
        yield path


@pytest.mark.slow
def test_any_field_replaced_by_any_type_is_a_one_line_error_or_loads(package_dir):
    """Fuzz: every node of the description replaced by each JSON type; never a traceback."""
    original = yaml.safe_load((package_dir / "rdf.yaml").read_text())
    outcomes = {"loaded": 0, "refused": 0}
    for path in list(_leaves(original)):
        for value in (None, 0, "x", [], {}, [1], {"a": 1}):
            rdf = copy.deepcopy(original)
            target = rdf
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            (package_dir / "rdf.yaml").write_text(yaml.safe_dump(rdf))
            try:
                load_model(str(package_dir))
                outcomes["loaded"] += 1
            except ModelLoadError as exc:
                assert "\n" not in str(exc), (path, value, str(exc))
                outcomes["refused"] += 1
    assert outcomes["refused"] > 20 and outcomes["loaded"] > 20, outcomes


# --- weight files ---------------------------------------------------------------------------

TAMPERED = [
    ({"window": 0}, "'window' must be 220"),
    ({"window": "220"}, "'window' must be 220"),
    ({"arch_kwargs": {"n_classes": 6_000_000}}, "'arch_kwargs.n_classes' must be 2"),
    ({"arch_kwargs": {"border": 100}}, "'arch_kwargs.border' must be 0..6"),
    ({"arch_kwargs": {"border": "3"}}, "'arch_kwargs.border' must be a int"),
    ({"arch_kwargs": {"width": 10**9}}, "'arch_kwargs.width' is not an argument"),
    ({"arch_kwargs": [1, 2]}, "'arch_kwargs' must be a mapping"),
    ({"arch_kwargs": {"dropout": 7.0}}, "'arch_kwargs.dropout' must lie in [0, 1)"),
    ({"arch": 5}, "'arch' must be one of"),
    ({"arch": "resnet"}, "'arch' must be one of"),
    ({"classes": ["a", "b"]}, "'classes' must be"),
    ({"classes": 3}, "'classes' must be"),
    ({"state_dict": "x"}, "'state_dict' must map"),
    ({"meta": [1]}, "'meta' must be a mapping"),
    ({"format_version": "1"}, "'format_version' must be an integer"),
    ({"format_version": 99}, "'format_version' must be an integer <= 1"),
]


@pytest.mark.parametrize("change,expected", TAMPERED)
def test_tampered_payload_gives_one_line_naming_the_field(tmp_path, gap_state, change, expected):
    path = tmp_path / "tampered.pt"
    torch.save(_payload(gap_state, **change), path)
    with pytest.raises(ModelLoadError) as exc:
        load_model(str(path))
    message = one_line(exc)
    assert str(path) in message and expected in message, message


def test_state_dict_of_the_wrong_shape_is_refused_before_loading(tmp_path, gap_state):
    state = dict(gap_state)
    state["fc.weight"] = torch.zeros(6, 128)
    path = tmp_path / "shape.pt"
    torch.save(_payload(state), path)
    with pytest.raises(ModelLoadError) as exc:
        load_model(str(path))
    assert "'fc.weight' has shape (6, 128)" in one_line(exc)


def test_executable_payload_is_refused_in_one_line_and_not_run(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "x": Evil()}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(ModelLoadError) as exc:
        load_model(str(path))
    assert one_line(exc) == f"{path} is not a safe phototox model file (it contains executable objects); refusing it"
    assert not marker.exists()


def test_oversized_weight_file_is_refused_by_size(tmp_path, monkeypatch, gap_state):
    path = tmp_path / "big.pt"
    torch.save(_payload(gap_state), path)
    monkeypatch.setattr(limits, "LIMITS", limits.LoaderLimits(max_weight_file_bytes=1000))
    with pytest.raises(ModelLoadError) as exc:
        load_model(str(path))
    assert "over the 0 MB limit for a model file" in one_line(exc)


@pytest.mark.slow
def test_cli_refuses_a_hostile_model_with_one_line_and_exit_1(tmp_path, gap_state):
    path = tmp_path / "classes.pt"
    torch.save(_payload(gap_state, arch_kwargs={"n_classes": 6_000_000}), path)
    image = tmp_path / "img.tif"
    import tifffile

    tifffile.imwrite(image, (torch.rand(256, 256) * 1000).numpy().astype("uint16"))
    before = tree(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "phototox", "predict", str(image), "--model", str(path), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "arch_kwargs.n_classes" in lines[0] and str(path) in lines[0]
    assert tree(tmp_path) == before


RSS_PROBE = (
    PEAK_RSS_KB_SOURCE
    + """
import sys
from phototox.errors import ModelLoadError
from phototox.models.loader import load_model
for spec in sys.argv[1:]:
    try:
        load_model(spec)
        print("LOADED", spec)
    except ModelLoadError as exc:
        print("REFUSED", exc)
print("PEAK_MB", peak_rss_kb() / 1024)
"""
)


@pytest.mark.slow
def test_memory_stays_bounded_on_absurd_declared_sizes(tmp_path, package_dir, gap_state):
    """Six million classes (3.2 GB before) and a 3.8 GB zip member (4 GB before) stay under 800 MB."""
    classes = tmp_path / "classes.pt"
    torch.save(_payload(gap_state, arch_kwargs={"n_classes": 6_000_000}), classes)
    bomb = _zip(package_dir, tmp_path / "bomb.zip")
    _declare_size(bomb, "weights.pt", 0xF0000000)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(classes), str(bomb)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("REFUSED") for line in lines) == 2, lines
    peak = float(lines[-1].split()[1])
    assert peak < 800, f"peak RSS {peak:.0f} MB"  # measured 272 MB; old: 3.2 GB


def test_limits_live_in_one_documented_place():
    fields = limits.LoaderLimits.__dataclass_fields__
    assert {
        "max_weight_file_bytes",
        "max_description_bytes",
        "max_download_bytes",
        "download_deadline_s",
        "max_package_bytes",
    } <= set(fields)
    source = Path(limits.__file__).read_text()
    for name in fields:  # each limit has a docstring right below it
        assert f"    {name}:" in source and source.split(f"    {name}:", 1)[1].splitlines()[1].strip().startswith('"""')
    json.dumps({k: getattr(limits.LIMITS, k) for k in fields})
