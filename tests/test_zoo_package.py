"""The zoo packages prove themselves: a real intermediate test crop (so a package without its
preprocessing FAILS `bioimageio test`), a real 2:1 cover, this model's card, readable outputs; and
the map package gives `phototox map --mode dense --stride 16`'s map through bioimageio.core."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("bioimageio.core", reason="bioimage.io packages not installed (pip install -e '.[bioimageio]')")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from phototox_zoo.build import build

    old = os.umask(0o022)
    try:
        return build("default", tmp_path_factory.mktemp("dist"), run_tests=False)
    finally:
        os.umask(old)


def _read(package: Path, name: str) -> bytes:
    with zipfile.ZipFile(package) as archive:
        return archive.read(name)


def _rdf(package: Path) -> dict:
    return yaml.safe_load(_read(package, "rdf.yaml"))


def _bioimageio_test(source: Path, weight_format: str = "pytorch_state_dict") -> subprocess.CompletedProcess:
    env = {**os.environ, "BIOIMAGEIO_CACHE_WARNINGS_LIMIT": "0"}
    return subprocess.run(
        ["bioimageio", "test", str(source), "--weight-format", weight_format],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_test_crop_is_intermediate_real_and_recorded(built):
    from phototox.maps.inference import Predictor

    x = np.load(io.BytesIO(_read(built.package, "test_input.npy")))
    expected = np.load(io.BytesIO(_read(built.package, "test_output.npy")))
    # phototox running the package as it declares itself (per-window zero mean, unit variance)
    p = Predictor.from_spec(str(built.package), "cpu").classify_windows(x[:, 0])[0]
    provenance = _rdf(built.package)["config"]["phototox"]["test_tensor"]
    assert expected[0, 1] == pytest.approx(p, abs=1e-5)
    assert 0.2 < p < 0.8 or "no crop with P(sick)" in provenance.get("note", "")  # else the build said so
    assert provenance["p_sick"] == pytest.approx(p, abs=1e-3)
    readme = _read(built.package, "README.md").decode()
    assert provenance["source_file"] in readme and "Licence" in readme
    from conftest import CELLDEATH

    if (CELLDEATH / "manifest.csv").is_file():  # real data present at build time: a real, MIT image
        assert provenance["source_file"].startswith(("celldeath_u2os/", "usiigaci_t98g_phase/"))
        assert provenance["licence"].startswith("MIT") and provenance["doi"]
    else:
        assert "synthetic" in provenance["note"]


def test_package_without_its_preprocessing_fails_bioimageio_test(built, tmp_path):
    folder = tmp_path / "broken"
    zipfile.ZipFile(built.package).extractall(folder)
    intact = _bioimageio_test(folder)
    assert intact.returncode == 0, intact.stdout[-3000:] + intact.stderr[-3000:]
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    del rdf["inputs"][0]["preprocessing"]
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
    broken = _bioimageio_test(folder)
    assert broken.returncode != 0
    from bioimageio.core import test_model

    assert test_model(str(folder), weight_format="onnx").status != "passed"


def test_cover_readme_and_permissions(built, tmp_path):
    import imageio.v3 as iio

    cover = iio.imread(io.BytesIO(_read(built.package, "cover.png")))
    assert cover.shape[1] == 2 * cover.shape[0]
    left, right = cover[:, : cover.shape[1] // 2], cover[:, cover.shape[1] // 2 :]
    assert left.std() > 10 and right.std() > 10 and abs(float(left.mean()) - float(right.mean())) > 1
    readme = _read(built.package, "README.md").decode()
    assert "## Validation" in readme and "pip install -e ." in readme and "git clone" in readme
    assert "deadnet-gap-synthetic" not in readme  # this model's card only
    rdf = _rdf(built.package)
    assert rdf["training_data"]["name"] and rdf["covers"][0]["source"] == "cover.png"
    for path in (built.package, built.map_package):
        assert path.stat().st_mode & 0o044 == 0o044, oct(path.stat().st_mode)


def test_maintainers_filled_when_given():
    from phototox_zoo.build import maintainers

    from phototox.models.loader import load_model

    assert maintainers("someone") == [{"github_user": "someone", "name": "phototox developers"}]
    assert load_model("default")  # and none invented when not given:
    assert maintainers(None) == [] or os.environ.get("PHOTOTOX_ZOO_MAINTAINER")


def test_map_package_passes_and_matches_phototox_dense_map(built, tmp_path):
    import tifffile
    from bioimageio.core import predict, test_model
    from bioimageio.spec import load_model_description
    from conftest import need_celldeath

    assert test_model(str(built.map_package), weight_format="pytorch_state_dict").status == "passed"
    root = need_celldeath()
    from phototox.io.images import read_frames

    test = _rdf(built.package)["config"]["phototox"]["test_tensor"]
    frame = read_frames(root.parent / test["source_file"])[0]
    side = 752  # 496 + 16 * 16 px, around the intermediate test window
    y0, x0 = (int(np.clip(c + 110 - side // 2, 0, n - side)) for c, n in zip(test["crop_yx"], frame.shape))
    image = frame[y0 : y0 + side, x0 : x0 + side]
    tifffile.imwrite(tmp_path / "field.tif", image)
    run = subprocess.run(
        [
            "phototox",
            "map",
            str(tmp_path / "field.tif"),
            "--mode",
            "dense",
            "--stride",
            "16",
            "--out",
            str(tmp_path / "maps"),
            "--no-overlay",
            "--quiet",
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    reference = tifffile.imread(tmp_path / "maps" / "field_map.tif")
    model = load_model_description(built.map_package)
    halo = _rdf(built.map_package)["config"]["phototox"]["halo"]
    for blocks in (None, 0):  # whole image, then tiles of the smallest size with their halo
        out = predict(
            model=model,
            inputs={"phase": image[None, None]},
            **({} if blocks is None else {"blocksize_parameter": blocks}),
        )
        sick = out.members["sick_probability"].data.values[0, 0]
        assert sick.shape == image.shape
        assert np.abs(sick - reference)[halo:-halo, halo:-halo].max() < 1e-4
    assert reference.std() > 0.01  # the map varies: agreement is not trivial
