"""Issue #23 (part B, class 3): model metadata never sizes an allocation unchecked.

Each case is a reproduction: a weight file whose ``meta`` carries an absurd or mistyped value, a
package zip whose member declares a forged small size. Each must be a one-line ModelLoadError
naming the file and the field, at load, before anything is allocated.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from hostile_support import PEAK_RSS_KB_SOURCE, expect_refusal

from phototox.errors import ImageInputError, ModelLoadError, PhototoxError
from phototox.maps.normalise import MAX_BOX, Contract
from phototox.models.architectures import build_model
from phototox.models.loader import load_model
from phototox.models.metaschema import DOMAIN_FEATURES, check_meta
from phototox.models.weights import FORMAT, FORMAT_VERSION
from phototox.trust.pixelsize import MAX_UPSAMPLING, check_resampling


@pytest.fixture(scope="module")
def gap_state() -> dict:
    torch.manual_seed(0)
    return build_model("deadnet-gap").state_dict()


def weight_file(path: Path, state: dict, meta: dict) -> Path:
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": "deadnet-gap",
        "arch_kwargs": {"border": 3},
        "state_dict": state,
        "meta": meta,
    }
    torch.save(payload, path)
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, message
    return message


DOMAIN = {"mean": [0.0] * DOMAIN_FEATURES, "precision": np.eye(DOMAIN_FEATURES).tolist(), "threshold": 1.3}

BAD_META = [
    ({"normalisation": {"kind": "box", "size": 20001}}, "normalisation", f"3..{MAX_BOX}"),
    ({"normalisation": {"kind": "box", "size": "221"}}, "normalisation", "odd whole number"),
    ({"normalisation": {"kind": "box", "size": 222}}, "normalisation", "odd whole number"),
    ({"normalisation": {"kind": "ring"}}, "normalisation", "unknown normalisation"),
    ({"normalisation": "box"}, "normalisation", "mapping"),
    ({"pixel_size_um": 1e-5}, "pixel_size_um", "0.02..20"),
    ({"pixel_size_um": 500.0}, "pixel_size_um", "0.02..20"),
    ({"pixel_size_um": "0.434"}, "pixel_size_um", "must be a number, got str"),
    ({"pixel_size_um": float("nan")}, "pixel_size_um", "finite"),
    ({"card": {"pixel_size_um": 1e-5}}, "card.pixel_size_um", "0.02..20"),
    ({"domain": {**DOMAIN, "threshold": "high"}}, "domain.threshold", "must be a number"),
    ({"domain": {**DOMAIN, "threshold": float("inf")}}, "domain.threshold", "finite"),
    ({"domain": {**DOMAIN, "mean": [0.0] * 3}}, "domain.mean", f"must hold {DOMAIN_FEATURES} numbers"),
    ({"domain": {**DOMAIN, "precision": [[1.0]]}}, "domain.precision", "matrix"),
    ({"domain": {**DOMAIN, "fine_detail": {"limit": "x"}}}, "domain.fine_detail.limit", "number"),
    ({"domain": {**DOMAIN, "fine_detail": {"range": [1.0]}}}, "domain.fine_detail.range", "must hold 2"),
    ({"calibration": {"control_p_sick": [0.1, 7.0]}}, "calibration.control_p_sick[1]", "0..1"),
    ({"quality": {"focus_reference": -1}}, "quality.focus_reference", "finite number"),
    ({"quality": []}, "quality", "mapping"),
    ({"x": {"y": object}}, "meta.x.y", "plain data"),
]


@pytest.mark.parametrize("meta,field,problem", BAD_META)
def test_bad_meta_field_is_one_line_naming_file_and_field(tmp_path, gap_state, meta, field, problem):
    path = weight_file(tmp_path / "m.pt", gap_state, meta) if "x" not in meta else None
    if path is None:  # a type torch cannot save with weights_only: check the schema directly
        with pytest.raises(ModelLoadError) as exc:
            check_meta(meta, "m.pt")
        path = Path("m.pt")
    else:
        with pytest.raises(ModelLoadError) as exc:
            load_model(str(path))
    message = one_line(exc)
    assert str(path) in message and f"'{field}'" in message and problem in message, message


def test_good_meta_loads(tmp_path, gap_state):
    meta = {
        "normalisation": {"kind": "box", "size": 221, "edge": "reflect"},
        "pixel_size_um": 0.434,
        "domain": {**DOMAIN, "fine_detail": {"limit": 2.0, "range": [0.1, 1.0]}},
        "calibration": {"control_p_sick": [0.1, 0.2]},
        "quality": {"focus_reference": 0.04},
    }
    model = load_model(str(weight_file(tmp_path / "m.pt", gap_state, meta)))
    assert model.meta["pixel_size_um"] == 0.434


def test_metadata_nested_too_deep_or_too_large_is_refused():
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ModelLoadError, match="nested more than"):
        check_meta({"x": deep}, "m.pt")
    with pytest.raises(ModelLoadError, match="holds more than"):
        check_meta({"x": [0] * 1_000_001}, "m.pt")


def test_contract_box_is_bounded():
    assert Contract("box", MAX_BOX).halo == MAX_BOX // 2
    with pytest.raises(PhototoxError, match=f"3..{MAX_BOX}"):
        Contract("box", MAX_BOX + 2)


def test_resampling_beyond_the_budget_is_refused_naming_the_file():
    assert check_resampling((220, 220), 2.0, "a.tif") == (440, 440)
    with pytest.raises(ImageInputError) as exc:
        check_resampling((220, 220), MAX_UPSAMPLING * 1.1, "a.tif")
    assert one_line(exc).startswith("a.tif: ") and "over the limit" in str(exc.value)
    with pytest.raises(ImageInputError, match="Mpx"):
        check_resampling((9000, 9000), 1.5, "a.tif")


def test_model_pixel_size_at_the_plausible_edge_cannot_blow_up_an_image(tmp_path, gap_state, capsys):
    """0.02 um/px is a plausible pixel size, but enlarging a 0.434 um/px image 21.7x is refused."""
    model = weight_file(tmp_path / "fine.pt", gap_state, {"pixel_size_um": 0.02})
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, (np.random.default_rng(0).random((240, 240)) * 1000).astype(np.uint16))
    args = ["predict", image, "--model", model, "--pixel-size", "0.434", "--device", "cpu", "--out", tmp_path / "o.csv"]
    expect_refusal(args, tmp_path, capsys, names=(str(image),), problem="over the limit of 8x")


# --- zip members with a forged small declared size ------------------------------------------


def forged_package(tmp_path: Path, gap_state: dict, inflated_mb: int) -> Path:
    """A package zip whose weights.pt member inflates to ``inflated_mb`` MB but declares 1 kB."""
    buffer = io.BytesIO()
    torch.save(gap_state, buffer)
    rdf = {
        "type": "model",
        "name": "forged",
        "weights": {
            "pytorch_state_dict": {
                "source": "weights.pt",
                "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
                "architecture": {"callable": "DeadNetGAP", "kwargs": {"border": 3}},
            }
        },
    }
    path = tmp_path / "forged.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rdf.yaml", yaml.safe_dump(rdf))
        with archive.open("weights.pt", "w") as member:
            zeros = bytes(1 << 20)
            for _ in range(inflated_mb):
                member.write(zeros)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local, start_dir = archive.getinfo("weights.pt").header_offset, archive.start_dir
    central = data.find(b"weights.pt", start_dir) - 46  # the member's central record
    data[local + 22 : local + 26] = (1024).to_bytes(4, "little")
    data[central + 24 : central + 28] = (1024).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("weights.pt").file_size == 1024
    return path


def test_forged_small_member_is_inflated_only_to_the_limit(tmp_path, gap_state):
    package = forged_package(tmp_path, gap_state, 200)
    tracemalloc.start()
    try:
        with pytest.raises(ModelLoadError) as exc:
            load_model(str(package))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = one_line(exc)
    assert str(package) in message and "'weights.pt'" in message, message
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # measured 2 MiB; before: 200 MiB


RSS_PROBE = (
    PEAK_RSS_KB_SOURCE
    + """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
from phototox.errors import PhototoxError
from phototox.models.loader import load_model
for spec in sys.argv[2:]:
    try:
        load_model(spec)
        print("LOADED", spec)
    except PhototoxError as exc:
        print("REFUSED", exc)
print("PEAK_MB", peak_rss_kb() / 1024)
"""
)


@pytest.mark.slow
def test_memory_stays_bounded_on_hostile_metadata(tmp_path, gap_state):
    """Under a 6 GB address-space limit, hostile metadata and a forged zip are refused under 2 GB RSS."""
    specs = [
        weight_file(tmp_path / "box.pt", gap_state, {"normalisation": {"kind": "box", "size": 20001}}),
        weight_file(tmp_path / "tiny.pt", gap_state, {"pixel_size_um": 1e-5}),
        forged_package(tmp_path, gap_state, 300),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(6 << 30), *map(str, specs)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("REFUSED") for line in lines) == 3, lines
    peak = float(lines[-1].split()[1])
    assert peak < 2048, f"peak RSS {peak:.0f} MB"


def test_package_card_pixel_size_is_checked(tmp_path, gap_state):
    """A package's config.phototox.pixel_size_um goes through the same schema as a weight file's meta."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    buffer = io.BytesIO()
    torch.save(gap_state, buffer)
    (folder / "weights.pt").write_bytes(buffer.getvalue())
    rdf = {
        "type": "model",
        "weights": {
            "pytorch_state_dict": {
                "source": "weights.pt",
                "architecture": {"callable": "DeadNetGAP", "kwargs": {"border": 3}},
            }
        },
        "config": {"phototox": {"pixel_size_um": "0.4 um"}},
    }
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(ModelLoadError) as exc:
        load_model(str(folder))
    assert str(folder) in one_line(exc) and "'card.pixel_size_um' must be a number" in str(exc.value)


@pytest.mark.slow
def test_predict_with_hostile_metadata_stays_under_2_gb_in_a_child(tmp_path, gap_state):
    """The CLI reproductions under an 8 GB address-space limit (before: 6.6 GB then MemoryError for a
    20001 px box, 1.3 GB and 46 s for 0.02 um/px on a 220 px image; measured after: 0.25 GB each)."""
    from hostile_support import run_cli_subprocess

    image = tmp_path / "img.tif"
    tifffile.imwrite(image, (np.random.default_rng(0).random((220, 220)) * 3000 + 100).astype(np.uint16))
    box = weight_file(tmp_path / "box.pt", gap_state, {"normalisation": {"kind": "box", "size": 20001}})
    fine = weight_file(tmp_path / "fine.pt", gap_state, {"pixel_size_um": 0.02})
    for model, extra, named in ((box, [], box), (fine, ["--pixel-size", "0.434"], image)):
        code, err, peak_kb = run_cli_subprocess(
            ["predict", image, "--model", model, "--device", "cpu", *extra],
            tmp_path,
            timeout=120,
            max_address_bytes=8 << 30,
        )
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1 and str(named) in lines[0], err
        assert 0 < peak_kb < 2 << 20, f"peak RSS {peak_kb / 1024:.0f} MB"
