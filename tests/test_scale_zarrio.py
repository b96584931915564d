"""OME-Zarr and tiled BigTIFF in and out, with pixel size and axes (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")

from phototox.errors import ImageInputError
from phototox.screens.zarrio import open_large, open_ome_zarr, open_tiff, write_ome_zarr


def test_ome_zarr_round_trip_keeps_pixels_dtype_pixel_size_and_axes(tmp_path, rng):
    image = rng.integers(0, 65535, (700, 530), dtype=np.uint16)
    path = write_ome_zarr(tmp_path / "img.ome.zarr", image, pixel_size_um=0.434, chunk=256)
    lazy = open_ome_zarr(path)
    assert lazy.shape == image.shape and lazy.dtype == np.uint16
    assert lazy.axes == ("y", "x") and lazy.pixel_size_um == pytest.approx(0.434)
    np.testing.assert_array_equal(lazy[:, :], image)
    np.testing.assert_array_equal(lazy[100:300, 17:29], image[100:300, 17:29])
    # the maintained reader sees a valid multiscale image with the same metadata
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = next(iter(Reader(parse_url(str(path)))()))
    assert [a["name"] for a in node.metadata["axes"]] == ["y", "x"]
    assert node.metadata["axes"][0]["unit"] == "micrometer"
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales[0] == pytest.approx([0.434, 0.434]) and scales[1] == pytest.approx([0.868, 0.868])
    assert [tuple(d.shape) for d in node.data][:2] == [(700, 530), (350, 265)]
    assert open_ome_zarr(path, level=1)[:, :].mean() == pytest.approx(image.mean(), rel=0.01)


def test_uncalibrated_ome_zarr_has_no_pixel_size(tmp_path, rng):
    path = write_ome_zarr(tmp_path / "u.ome.zarr", rng.random((300, 300)).astype(np.float32))
    assert open_large(path).pixel_size_um is None


def test_tiled_bigtiff_is_read_lazily_with_its_pixel_size(tmp_path, rng):
    import tifffile

    image = rng.integers(0, 4000, (1000, 777), dtype=np.uint16)
    path = tmp_path / "big.tif"
    tifffile.imwrite(
        path,
        image,
        bigtiff=True,
        tile=(256, 256),
        resolution=(1e4 / 0.65, 1e4 / 0.65),
        resolutionunit="CENTIMETER",
        photometric="minisblack",
    )
    lazy = open_tiff(path)
    assert lazy.shape == image.shape and lazy.pixel_size_um == pytest.approx(0.65)
    np.testing.assert_array_equal(lazy[300:700, 500:777], image[300:700, 500:777])


def test_refuses_what_it_cannot_map(tmp_path, rng):
    import zarr

    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImageInputError, match="notes.txt"):
        open_tiff(tmp_path / "notes.txt")
    with pytest.raises(ImageInputError, match="no such"):
        open_ome_zarr(tmp_path / "missing.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(ImageInputError, match="plain.zarr: not a readable OME-Zarr.*multiscales"):
        open_ome_zarr(tmp_path / "plain.zarr")
    import tifffile

    tifffile.imwrite(
        tmp_path / "stack.tif", rng.integers(0, 255, (3, 300, 300), dtype=np.uint8), photometric="minisblack"
    )
    with pytest.raises(ImageInputError, match="stack.tif: chunked maps take one 2-D plane"):
        open_tiff(tmp_path / "stack.tif")
