"""One metadata reader: every entry point gives one answer per file (pixel size, interval, channels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile

from phototox.errors import PhototoxError
from phototox.io.imagemeta import read_metadata
from phototox.timecourse.io import interval_from_metadata, pixel_size_from_metadata
from phototox.trust.pixelsize import pixel_size_from_file

UM = 0.65


def _write_variants(folder):
    """The same 2-frame stack written with each way of recording 0.65 um/px (and two that record none)."""
    data = (np.random.default_rng(0).random((2, 96, 128)) * 60000).astype(np.uint16)
    files = {}
    files["ome"] = folder / "ome.ome.tif"
    tifffile.imwrite(
        files["ome"],
        data,
        ome=True,
        metadata={
            "axes": "TYX",
            "PhysicalSizeX": UM,
            "PhysicalSizeY": UM,
            "TimeIncrement": 90,
            "TimeIncrementUnit": "s",
        },
    )
    files["imagej"] = folder / "imagej.tif"
    tifffile.imwrite(
        files["imagej"],
        data,
        imagej=True,
        resolution=(1 / UM, 1 / UM),
        metadata={"unit": "micron", "axes": "TYX", "finterval": 1.5, "tunit": "min"},
    )
    files["centimetre"] = folder / "cm.tif"
    tifffile.imwrite(files["centimetre"], data, resolution=(1e4 / UM, 1e4 / UM), resolutionunit="CENTIMETER")
    files["inch"] = folder / "inch.tif"
    tifffile.imwrite(files["inch"], data, resolution=(25400 / UM, 25400 / UM), resolutionunit="INCH")
    files["72 dpi"] = folder / "dpi.tif"
    tifffile.imwrite(files["72 dpi"], data, resolution=(72, 72), resolutionunit="INCH")
    files["unitless"] = folder / "none.tif"
    tifffile.imwrite(files["unitless"], data, resolution=(1 / UM, 1 / UM), resolutionunit="NONE")
    return files


def _chunked_reader(path):
    pytest.importorskip("zarr")
    from phototox.screens.zarrio import open_tiff

    return open_tiff(path).pixel_size_um if len(tifffile.imread(path).shape) == 2 else None


@pytest.fixture
def variants(tmp_path):
    return _write_variants(tmp_path)


@pytest.mark.parametrize(
    "kind, expected",
    [("ome", UM), ("imagej", UM), ("centimetre", UM), ("inch", UM), ("72 dpi", None), ("unitless", None)],
)
def test_every_reader_gives_one_answer(variants, kind, expected):
    path = variants[kind]
    answers = {
        "imagemeta": read_metadata(path).pixel_size_um,
        "map/predict": pixel_size_from_file(path)[0],
        "timecourse": pixel_size_from_metadata(path),
    }
    # the chunked reader takes single planes: the same metadata on one frame
    plane = path.with_name("plane_" + path.name)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        kwargs = {}
        if tif.is_ome:
            kwargs = {"ome": True, "metadata": {"axes": "YX", "PhysicalSizeX": UM, "PhysicalSizeY": UM}}
        elif tif.is_imagej:
            kwargs = {"imagej": True, "metadata": {"unit": "micron", "axes": "YX"}}
        if "XResolution" in page.tags:
            kwargs["resolution"] = (page.tags["XResolution"].value, page.tags["YResolution"].value)
            if not tif.is_imagej:
                kwargs["resolutionunit"] = page.tags["ResolutionUnit"].value
        tifffile.imwrite(plane, tif.asarray()[0], **kwargs)
    answers["plane (imagemeta)"] = read_metadata(plane).pixel_size_um
    answers["chunked"] = _chunked_reader(plane)
    for reader, value in answers.items():
        if expected is None:
            assert value is None, f"{kind}: {reader} read {value}"
        else:
            assert value is not None and math.isclose(value, expected, rel_tol=1e-5), f"{kind}: {reader} read {value}"


def test_folder_of_frames_reads_its_first_frame(variants, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        tifffile.imwrite(
            folder / f"t{i + 1}.tif",
            np.zeros((64, 64), np.uint16),
            resolution=(1e4 / UM, 1e4 / UM),
            resolutionunit="CENTIMETER",
        )
    assert math.isclose(read_metadata(folder).pixel_size_um, UM, rel_tol=1e-5)
    assert math.isclose(pixel_size_from_metadata(folder), UM, rel_tol=1e-5)


def test_interval_and_channels(variants, tmp_path):
    assert math.isclose(interval_from_metadata(variants["ome"]), 1.5)  # 90 s
    assert math.isclose(interval_from_metadata(variants["imagej"]), 1.5)  # 1.5 min
    assert interval_from_metadata(variants["inch"]) is None
    assert read_metadata(variants["imagej"]).channels == 1
    yxc = tmp_path / "yxc.tif"
    tifffile.imwrite(yxc, np.zeros((64, 80, 3), np.uint8), photometric="rgb")
    assert read_metadata(yxc).channels == 3


def test_implausible_recorded_size_is_one_line_for_every_reader(tmp_path):
    path = tmp_path / "nm.tif"
    tifffile.imwrite(
        path, np.zeros((64, 64), np.uint16), resolution=(1e4 / 5e-4, 1e4 / 5e-4), resolutionunit="CENTIMETER"
    )
    for reader in (read_metadata, pixel_size_from_file, pixel_size_from_metadata):
        with pytest.raises(PhototoxError, match="nm.tif.*implausible"):
            reader(path)


def test_ome_zarr_scale_read_without_zarr(tmp_path):
    import json

    store = tmp_path / "img.ome.zarr"
    store.mkdir()
    multiscale = {
        "axes": [
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"},
        ],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [UM, UM]}]}],
    }
    (store / ".zattrs").write_text(json.dumps({"multiscales": [multiscale]}))
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    assert math.isclose(read_metadata(store).pixel_size_um, UM)
    assert math.isclose(pixel_size_from_file(store)[0], UM)
