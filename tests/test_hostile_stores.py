"""Issue #23 (part B, class 2): image stores checked before any allocation, every error naming the store.

Reproductions: an OME-Zarr store missing chunks (read as zeros: "healthy 0.999"), declaring
1e9 x 1e9 or 200000^2 pixels, chunks of 1e6 px, a corrupt chunk, a chunk linked to /etc/passwd.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from hostile_support import SYNTH_MODEL, expect_refusal, run_cli_subprocess

from phototox.errors import ImageInputError
from phototox.screens import zarrio
from phototox.screens.zarrio import open_ome_zarr, write_ome_zarr


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, message
    return message


def small_store(path: Path, side: int = 512, chunk: int = 256) -> Path:
    """A real OME-Zarr image of random 16-bit pixels, ``(side/chunk)^2`` chunks."""
    image = (np.random.default_rng(0).random((side, side)) * 4000 + 100).astype(np.uint16)
    return write_ome_zarr(path, image, pixel_size_um=0.434, chunk=chunk)


def chunk_files(store: Path) -> list[Path]:
    return sorted(p for p in (store / "0").rglob("*") if p.is_file() and p.name not in zarrio.METADATA_NAMES)


def declared_store(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...]) -> Path:
    """An OME-Zarr whose level 0 declares ``shape`` and ``chunks`` and stores no chunk at all."""
    group = zarr.open_group(str(path), mode="w")
    group.create_array("0", shape=shape, chunks=chunks, dtype="uint16", fill_value=0)
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]
    return path


def test_a_complete_store_opens(tmp_path):
    frame = open_ome_zarr(small_store(tmp_path / "ok.zarr"))
    assert frame.shape == (512, 512) and len(chunk_files(tmp_path / "ok.zarr")) == 4


def test_missing_chunks_are_refused_naming_the_store(tmp_path):
    store = small_store(tmp_path / "partial.zarr")
    chunk_files(store)[1].unlink()
    with pytest.raises(ImageInputError) as exc:
        open_ome_zarr(store)
    assert one_line(exc).startswith(f"{store}: 1 of 4 chunks are missing")


def test_a_store_with_no_chunk_is_refused_not_analysed_as_zeros(tmp_path, capsys):
    store = small_store(tmp_path / "empty.zarr")
    for chunk in chunk_files(store):
        chunk.unlink()
    args = ["predict", store, "--model", SYNTH_MODEL, "--device", "cpu", "--out", tmp_path / "out.csv"]
    expect_refusal(args, tmp_path, capsys, names=(str(store),), problem="4 of 4 chunks are missing")


@pytest.mark.parametrize(
    "shape,chunks,problem",
    [
        ((10**9, 10**9), (1024, 1024), "over the limit of"),
        ((200_000, 200_000), (1024, 1024), "over the limit of"),
        ((600, 600), (10**6, 10**6), "MB limit; rechunk"),
        ((60_000, 60_000), (8, 8), "chunks, over the limit"),
    ],
)
def test_declared_shape_and_chunking_are_checked_before_any_read(tmp_path, shape, chunks, problem):
    store = declared_store(tmp_path / "declared.zarr", shape, chunks)
    start = time.monotonic()
    with pytest.raises(ImageInputError) as exc:
        open_ome_zarr(store)
    message = one_line(exc)
    assert message.startswith(f"{store}: ") and problem in message, message
    assert time.monotonic() - start < 5


def test_a_corrupt_chunk_is_one_line_naming_the_store(tmp_path, capsys):
    store = small_store(tmp_path / "corrupt.zarr")
    chunk_files(store)[0].write_bytes(b"\x00garbage" * 7)
    with pytest.raises(ImageInputError) as exc:
        open_ome_zarr(store)[0:10, 0:10]
    assert one_line(exc).startswith(f"{store}: a chunk cannot be read")
    args = ["predict", store, "--model", SYNTH_MODEL, "--device", "cpu", "--out", tmp_path / "out.csv"]
    expect_refusal(args, tmp_path, capsys, names=(str(store),), problem="a chunk cannot be read")


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside"])
def test_a_chunk_linked_outside_the_store_is_refused(tmp_path, target):
    (tmp_path / "outside").write_bytes(b"secret")
    store = small_store(tmp_path / "linked.zarr")
    chunk = chunk_files(store)[0]
    chunk.unlink()
    os.symlink(target if target.startswith("/") else os.path.relpath(tmp_path / "outside", chunk.parent), chunk)
    with pytest.raises(ImageInputError) as exc:
        open_ome_zarr(store)
    assert one_line(exc).startswith(f"{store}: 0/") and "link leaving the store" in str(exc.value)


def test_oversized_metadata_is_refused_before_parsing(tmp_path, monkeypatch):
    store = small_store(tmp_path / "meta.zarr")
    monkeypatch.setattr(zarrio, "MAX_METADATA_BYTES", 100)
    with pytest.raises(ImageInputError) as exc:
        open_ome_zarr(store)
    assert "metadata file" in one_line(exc) and str(store) in str(exc.value)


@pytest.mark.slow
def test_absurd_stores_stay_under_2_gb_in_a_child(tmp_path):
    """Declared 1e9^2 (MemoryError before) and 200000^2 without chunks (a hang before): one line,
    exit 1, peak RSS under 2 GB, under an 8 GB address-space limit."""
    for shape in ((10**9, 10**9), (200_000, 200_000)):
        store = declared_store(tmp_path / f"s{shape[0]}.zarr", shape, (1024, 1024))
        code, err, peak_kb = run_cli_subprocess(
            ["predict", store, "--model", SYNTH_MODEL, "--device", "cpu", "--out", tmp_path / "o.csv"],
            tmp_path,
            timeout=120,
            max_address_bytes=8 << 30,
        )
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1 and str(store) in lines[0], err
        assert 0 < peak_kb < 2 << 20, f"peak RSS {peak_kb / 1024:.0f} MB"


def test_resampling_a_store_is_bounded_before_any_read():
    """A 40000^2 store brought 2x larger (6.4 Gpx) is refused, naming it, before any chunk is read."""
    from types import SimpleNamespace

    from phototox.screens.chunked import chunked_map

    class Declared:
        shape, source = (40_000, 40_000), "big.zarr"

        def __getitem__(self, key):
            raise AssertionError("read before the check")

    predictor = SimpleNamespace(window=220)
    with pytest.raises(ImageInputError) as exc:
        chunked_map(predictor, Declared(), None, factor=2.0)
    assert one_line(exc).startswith("big.zarr: ") and "over the limit" in str(exc.value)
