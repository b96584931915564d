"""Bad input gets a clear error naming the file and the problem; inputs are never modified."""

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from phototox.apps.cli import main
from phototox.errors import ImageInputError
from phototox.io.images import as_grey_frames, atomic_path, read_frames


def test_missing_file(tmp_path):
    with pytest.raises(ImageInputError, match=r"nope\.tif: no such file"):
        read_frames(tmp_path / "nope.tif")


def test_corrupt_tiff(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00" + b"\x00garbage" * 20)
    with pytest.raises(ImageInputError, match=r"broken\.tif: not a readable TIFF"):
        read_frames(bad)


def test_truncated_png(tmp_path):
    import imageio.v3 as iio

    good = tmp_path / "a.png"
    iio.imwrite(good, np.zeros((300, 300), np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageInputError, match="cut.png"):
        read_frames(cut)


def test_small_image_names_window():
    with pytest.raises(ImageInputError, match=r"img: image is 200x300 px, smaller than the 220x220"):
        as_grey_frames(np.zeros((300, 200), np.uint8), "img")


def test_nan_refused():
    a = np.zeros((230, 230), np.float32)
    a[5, 5] = np.nan
    with pytest.raises(ImageInputError, match="NaN"):
        as_grey_frames(a, "x")


def test_colour_refused_or_converted():
    rgb = np.zeros((230, 230, 3), np.uint8)
    rgb[..., 0] = 200
    with pytest.raises(ImageInputError, match="colour image"):
        as_grey_frames(rgb, "c.png")
    grey = as_grey_frames(rgb, "c.png", colour="luminance")
    assert grey.shape == (1, 230, 230) and np.allclose(grey, 200 * 0.2125, atol=1e-3)


def test_rgb_with_identical_channels_is_grey():
    a = np.random.default_rng(0).integers(0, 255, (230, 240), dtype=np.uint8)
    frames = as_grey_frames(np.stack([a, a, a], -1), "g")
    assert frames.shape == (1, 230, 240) and np.array_equal(frames[0], a)


def test_bit_depths_and_stacks():
    assert as_grey_frames(np.zeros((230, 230), np.uint16)).dtype == np.float32
    assert as_grey_frames(np.zeros((4, 230, 230), np.uint8)).shape == (4, 230, 230)
    with pytest.raises(ImageInputError, match="pixel type bool"):
        as_grey_frames(np.zeros((230, 230), bool))
    with pytest.raises(ImageInputError, match="bit depth"):
        as_grey_frames(np.full((230, 230), -5, np.int32))
    with pytest.raises(ImageInputError, match="shape"):
        as_grey_frames(np.zeros((2, 2, 230, 230), np.uint8))


def test_input_array_not_modified():
    a = np.arange(230 * 230, dtype=np.float32).reshape(230, 230)
    before = a.copy()
    frames = as_grey_frames(a)
    frames += 1
    assert np.array_equal(a, before)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_cli_reports_bad_inputs_and_exits_nonzero(tmp_path, capsys):
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.zeros((100, 100), np.uint16))
    assert main(["predict", str(small), "--device", "cpu"]) == 1
    assert "small.tif: image is 100x100 px" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "absent.tif"), "--device", "cpu"]) == 1
    assert "absent.tif: no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "phototox", "map", str(tmp_path / "none.tif"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "none.tif: no such file" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_outputs_never_overwrite_inputs(tmp_path, capsys):
    img = tmp_path / "x.tif"
    tifffile.imwrite(img, np.zeros((240, 240), np.uint16))
    before = img.read_bytes()
    assert main(["predict", str(img), "--out", str(img), "--device", "cpu"]) == 1
    assert "overwrite an input" in capsys.readouterr().err
    assert img.read_bytes() == before
