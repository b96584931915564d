"""Fiji as its users meet it: installing into a Fiji.app-shaped folder (Java 8 bytecode, built against
that Fiji's ImageJ with its JDK first), the model a call without one uses, the --fiji route's failure."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

IJ_JAR = Path(os.environ.get("PHOTOTOX_IJ_JAR", "/usr/share/java/ij.jar"))
pytestmark = [
    pytest.mark.skipif(not IJ_JAR.is_file(), reason=f"ImageJ not found at {IJ_JAR} (apt-get install libij-java)"),
    pytest.mark.skipif(shutil.which("javac") is None, reason="javac missing (install a JDK)"),
]
PHOTOTOX = [sys.executable, "-m", "phototox"]


@pytest.fixture()
def fiji_app(tmp_path) -> Path:
    """A folder laid out like Fiji.app: plugins/, jars/ij-1.53.jar, java/<platform>/<jdk>/bin/javac (a wrapper
    that records that it was used, then runs the system javac)."""
    app = tmp_path / "Fiji app"  # a space in the path, as on many machines
    (app / "plugins").mkdir(parents=True)
    (app / "jars").mkdir()
    shutil.copyfile(IJ_JAR, app / "jars" / "ij-1.53.jar")
    bin_dir = app / "java" / "linux64" / "zulu8-jdk" / "bin"
    bin_dir.mkdir(parents=True)
    wrapper = bin_dir / "javac"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/fiji-javac-used"\nexec {shutil.which("javac")} "$@"\n')
    wrapper.chmod(0o755)
    return app


def _class_major_versions(jar: Path) -> set[int]:
    with zipfile.ZipFile(jar) as archive:
        return {int.from_bytes(archive.read(n)[6:8], "big") for n in archive.namelist() if n.endswith(".class")}


@pytest.mark.slow
def test_install_plugin_into_a_fiji_app(fiji_app, tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOTOX_CACHE", str(tmp_path / "cache"))
    env = {**os.environ, "PHOTOTOX_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(
        [*PHOTOTOX, "fiji", "--install-plugin", str(fiji_app)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    jar = fiji_app / "plugins" / "Phototox_.jar"
    assert jar.is_file() and stat.S_IMODE(jar.stat().st_mode) == 0o644
    assert _class_major_versions(jar) == {52}  # Java 8 bytecode
    used = (tmp_path / "fiji-javac-used").read_text()
    assert "ij-1.53.jar" in used  # compiled with Fiji's JDK, against Fiji's own ImageJ
    with zipfile.ZipFile(jar) as archive:
        assert "plugins.config" in archive.namelist()
    # another ImageJ gives another build, never the cached jar of the first
    from phototox_fiji.jar import sources_digest

    other = tmp_path / "ij-other.jar"
    other.write_bytes(IJ_JAR.read_bytes() + b"\0")
    assert sources_digest(IJ_JAR) != sources_digest(other)


def test_install_refuses_a_folder_that_is_not_fiji(tmp_path):
    run = subprocess.run(
        [*PHOTOTOX, "fiji", "--install-plugin", str(tmp_path)], capture_output=True, text=True, check=False, timeout=120
    )
    assert run.returncode != 0
    assert len(run.stderr.strip().splitlines()) == 1 and "no plugins/" in run.stderr


@pytest.mark.slow
def test_fiji_route_without_imagej2_fails_with_one_line(fiji_app, tmp_path, tiny_model_path):
    macro = tmp_path / "m.ijm"
    macro.write_text('print("hello");\n')
    run = subprocess.run(
        [
            *PHOTOTOX,
            "fiji",
            "--fiji",
            str(fiji_app),
            "--model",
            str(tiny_model_path),
            "--device",
            "cpu",
            "--headless",
            "--macro",
            str(macro),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "PHOTOTOX_CACHE": str(tmp_path / "cache")},
    )
    assert run.returncode != 0
    lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert re.search(r"pyimagej|ImageJ2", lines[0]), lines[0]


def test_java_dialog_default_stride_is_the_shared_one():
    from phototox.defaults import DEFAULT_STRIDE

    source = (REPO / "plugins/fiji/phototox_fiji/java/phototox/Measure_Phototoxicity.java").read_text()
    assert f"static final int DEFAULT_STRIDE = {DEFAULT_STRIDE};" in source
    assert 'addStringField("Model (empty' in source and '"default", 30' not in source


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run missing (apt-get install xvfb)")
def test_a_call_without_model_uses_and_shows_the_bridge_model(tmp_path, tiny_model_path):
    macro = tmp_path / "m.ijm"
    macro.write_text(
        'newImage("f", "32-bit ramp", 240, 240, 1);\n'
        'print("DEFAULT " + call("phototox.Phototox.defaultModel"));\n'
        'run("Measure Phototoxicity", "stride=32");\n'
        'print("MODEL " + getResultString("Model", nResults - 1));\n'
    )
    run = subprocess.run(
        [
            "xvfb-run",
            "-a",
            *PHOTOTOX,
            "fiji",
            "--model",
            str(tiny_model_path),
            "--device",
            "cpu",
            "--macro",
            str(macro),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"DEFAULT {tiny_model_path}" in run.stdout
    assert f"MODEL {tiny_model_path}" in run.stdout


def _macro(tiny_model_path, name: str, args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "xvfb-run",
            "-a",
            *PHOTOTOX,
            "fiji",
            "--model",
            str(tiny_model_path),
            "--device",
            "cpu",
            "--macro",
            str(REPO / "example_pipelines" / name),
            "--args",
            args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=400,
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run missing (apt-get install xvfb)")
def test_example_macros_with_spaces_empty_folders_and_hyperstacks(tmp_path, tiny_model_path):
    import numpy as np
    import tifffile

    from phototox.synth.fields import render_field, render_timelapse

    data, out, empty = tmp_path / "my phase images", tmp_path / "my results", tmp_path / "nothing here"
    for folder in (data, out, empty):
        folder.mkdir()
    for i, dose in enumerate((0.0, 1.0)):
        tifffile.imwrite(data / f"field {i}.tif", render_field(240, 260, dose, seed=i).image)
    batch = _macro(tiny_model_path, "phototox_batch_folder.ijm", f"input=[{data}] output=[{out}]")
    assert batch.returncode == 0, batch.stdout + batch.stderr
    assert "2 image(s) analysed" in batch.stdout and (out / "field 0_sickmap.tif").is_file()
    nothing = _macro(tiny_model_path, "phototox_batch_folder.ijm", f"input=[{empty}] output=[{out}]")
    assert nothing.returncode != 0 and "no image analysed" in nothing.stdout + nothing.stderr

    movie = render_timelapse(3, 240, 240, 0.3).astype(np.float32)
    other = np.flip(movie, axis=2).copy()  # channel 2 differs from channel 1
    hyper = np.stack([movie, other], axis=1)[:, None]  # T, Z, C, Y, X
    path = tmp_path / "my movie.tif"
    tifffile.imwrite(path, hyper, imagej=True, metadata={"axes": "TZCYX", "finterval": 600.0, "unit": "um"})
    lapse = _macro(tiny_model_path, "phototox_timelapse.ijm", f"input=[{path}] output=[{out}] channel=2")
    assert lapse.returncode == 0, lapse.stdout + lapse.stderr
    assert "analysing channel 2 of 2" in lapse.stdout and "3 frame(s), x axis time (" in lapse.stdout
    maps = tifffile.imread(out / "my movie_sickmap.tif")
    assert maps.shape[-2:] == (240, 240) and maps.reshape(-1, 240, 240).shape[0] == 3
