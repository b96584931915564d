"""Real ImageJ macros through both routes: in-process (`phototox fiji`) and `phototox serve`."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tifffile
from conftest import REPO

IJ_JAR = Path(os.environ.get("PHOTOTOX_IJ_JAR", "/usr/share/java/ij.jar"))
pytestmark = [
    pytest.mark.skipif(not IJ_JAR.is_file(), reason=f"ImageJ not found at {IJ_JAR} (apt-get install libij-java)"),
    pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run missing (apt-get install xvfb)"),
    pytest.mark.skipif(shutil.which("javac") is None, reason="javac missing (install a JDK)"),
    pytest.mark.slow,  # a real ImageJ JVM under Xvfb
]
PHOTOTOX = [sys.executable, "-m", "phototox"]


@pytest.fixture(scope="module")
def plugin_home(tmp_path_factory) -> Path:
    """An ImageJ home folder with Phototox_.jar (built with javac) in plugins/."""
    from phototox_fiji.jar import build_jar

    home = tmp_path_factory.mktemp("ijhome")
    (home / "plugins").mkdir()
    build_jar(IJ_JAR, home / "plugins" / "Phototox_.jar")
    return home


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    from phototox.synth.fields import render_field

    path = tmp_path_factory.mktemp("img") / "field.tif"
    tifffile.imwrite(path, render_field(260, 300, 0.7, seed=8).image)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _imagej_batch(home: Path, macro: str, tmp_path: Path, timeout: int = 120) -> str:
    """Run a macro in a standalone ImageJ (its own JVM, virtual display); return what it printed."""
    path = tmp_path / "macro.ijm"
    path.write_text(macro)
    proc = subprocess.run(
        ["xvfb-run", "-a", "java", f"-Dplugins.dir={home}", "-cp", str(IJ_JAR), "ij.ImageJ", "-batch", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.stdout + proc.stderr


def _phototox_fiji(macro: str, tmp_path: Path, model: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    path = tmp_path / "macro.ijm"
    path.write_text(macro)
    return subprocess.run(
        ["xvfb-run", "-a", *PHOTOTOX, "fiji", "--model", str(model), "--device", "cpu", "--macro", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _api(model: Path, image: Path, stride: int, mode: str):
    from phototox.io.images import as_grey_frames
    from phototox.maps.inference import Predictor
    from phototox.maps.settings import MapSettings
    from phototox.models.weights import load_weights
    from phototox.trust.assess import Assessor

    assessor = Assessor(Predictor.create(load_weights(model), "cpu"), warn=lambda line: None)
    frames = as_grey_frames(tifffile.imread(image), str(image))
    return assessor.analyse(frames, MapSettings(stride=stride, mode=mode), assessor.pixel_size(None, image))[0]


MEASURE = """
open("{image}");
run("Measure Phototoxicity", "stride=16 mode={mode}{extra}");
print("MAP " + getTitle() + " " + getWidth() + " " + getHeight() + " " + bitDepth());
getStatistics(area, mean);
print("MAPMEAN " + d2s(mean, 6));
print("RESULT " + d2s(getResult("MeanSickProbability", nResults - 1), 6) + " " + getResultString("Label", nResults - 1));
"""


@pytest.fixture(scope="module")
def server(tiny_model_path):
    port = _free_port()
    proc = subprocess.Popen(
        [*PHOTOTOX, "serve", "--port", str(port), "--model", str(tiny_model_path), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline()
    assert "phototox serve" in line, line
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def _check_measure(output: str, expected, shape) -> None:
    match = re.search(r"MAP (\S+) (\d+) (\d+) (\d+)", output)
    assert match, output
    assert match.group(1) == "field_sickmap" and (int(match.group(3)), int(match.group(2))) == shape
    assert match.group(4) == "32"
    result = re.search(r"RESULT ([\d.]+) (\w+)", output)
    assert float(result.group(1)) == pytest.approx(expected.mean_sick_probability, abs=1e-5)
    assert result.group(2) == expected.label
    assert float(re.search(r"MAPMEAN ([\d.]+)", output).group(1)) == pytest.approx(
        expected.mean_sick_probability, abs=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dense", "exact"])
def test_in_process_macro_matches_python(tmp_path, tiny_model_path, image, mode):
    proc = _phototox_fiji(MEASURE.format(image=image, mode=mode, extra=""), tmp_path, tiny_model_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_measure(proc.stdout, _api(tiny_model_path, image, 16, mode), (260, 300))


@pytest.mark.slow
def test_server_route_macro_matches_python(tmp_path, tiny_model_path, image, plugin_home, server):
    output = _imagej_batch(plugin_home, MEASURE.format(image=image, mode="dense", extra=f" server={server}"), tmp_path)
    _check_measure(output, _api(tiny_model_path, image, 16, "dense"), (260, 300))


BAD_INPUT = """
r = call("phototox.Phototox.measure", "{opts}");
print("NOIMAGE " + r);
open("{image}");
run("RGB Color");
r = call("phototox.Phototox.measure", "{opts}");
print("RGB " + r);
close("*");
newImage("stack", "16-bit random", 260, 260, 3);
r = call("phototox.Phototox.measure", "{opts}");
print("STACK " + r);
r = call("phototox.Phototox.measure", "stack {opts}");
print("STACKOK " + r);
print("NRESULTS " + nResults);
close("*");
run("Measure Phototoxicity", "{opts}");
print("NOT REACHED");
"""


def _check_bad_input(output: str) -> None:
    assert "NOIMAGE error: no image is open" in output
    assert re.search(r"RGB error: 'field.tif' is a colour image", output)
    assert re.search(r"STACK error: 'stack' is a stack of 3 slices", output)
    assert "STACKOK mean_sick_probability=" in output and "NRESULTS 3" in output
    assert "Measure Phototoxicity error: no image is open" in output  # run(): error in the log ...
    assert "NOT REACHED" not in output  # ... and the macro stops


@pytest.mark.slow
def test_bad_input_is_reported_in_process(tmp_path, tiny_model_path, image):
    proc = _phototox_fiji(BAD_INPUT.format(image=image, opts="stride=32"), tmp_path, tiny_model_path)
    _check_bad_input(proc.stdout)
    assert proc.returncode == 1  # the macro was aborted by an error


@pytest.mark.slow
def test_bad_input_is_reported_through_the_server(tmp_path, image, plugin_home, server):
    _check_bad_input(
        _imagej_batch(plugin_home, BAD_INPUT.format(image=image, opts=f"stride=32 server={server}"), tmp_path)
    )


def test_errors_from_python_reach_the_macro(tmp_path, image, plugin_home, server):
    macro = f"""open("{image}");
print("STRIDE " + call("phototox.Phototox.measure", "stride=12 mode=dense server={server}"));
print("MODEL " + call("phototox.Phototox.measure", "model=/no/such.pt server={server}"));
print("DOWN " + call("phototox.Phototox.measure", "server=http://127.0.0.1:{_free_port()}"));
"""
    output = _imagej_batch(plugin_home, macro, tmp_path)
    assert "STRIDE error: dense mode needs a stride that divides 16" in output
    assert "MODEL error: phototox server: model '/no/such.pt' is not one this server was" in output
    assert re.search(r"DOWN error: the phototox server at http://127.0.0.1:\d+ is not running", output)


@pytest.mark.slow
def test_small_image_error_in_process(tmp_path, tiny_model_path):
    macro = 'newImage("tiny", "8-bit random", 100, 120, 1);\nprint("SMALL " + call("phototox.Phototox.measure", "stride=16"));'
    proc = _phototox_fiji(macro, tmp_path, tiny_model_path)
    assert "SMALL error: ImageJ image (100x120): image is 100x120 px, smaller than the 220x220" in proc.stdout


@pytest.mark.slow
def test_example_macros_run_as_they_are(tmp_path, tiny_model_path):
    from phototox.synth.fields import render_field, render_timelapse

    data, out = tmp_path / "in", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    for i, dose in enumerate((0.0, 1.0)):
        tifffile.imwrite(data / f"f{i}.tif", render_field(240, 260, dose, seed=i).image)
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, render_timelapse(4, 240, 240, 0.3), photometric="minisblack")
    base = [*PHOTOTOX, "fiji", "--model", str(tiny_model_path), "--device", "cpu", "--macro"]
    batch = subprocess.run(
        [
            "xvfb-run",
            "-a",
            *base,
            str(REPO / "example_pipelines" / "phototox_batch_folder.ijm"),
            "--args",
            f"input={data} output={out} stride=32",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert batch.returncode == 0, batch.stdout + batch.stderr
    assert "2 image(s) analysed" in batch.stdout
    assert tifffile.imread(out / "f0_sickmap.tif").shape == (240, 260)
    assert len((out / "phototox_results.csv").read_text().strip().splitlines()) == 3
    lapse = subprocess.run(
        [
            "xvfb-run",
            "-a",
            *base,
            str(REPO / "example_pipelines" / "phototox_timelapse.ijm"),
            "--args",
            f"input={movie} output={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lapse.returncode == 0, lapse.stdout + lapse.stderr
    maps = tifffile.imread(out / "movie_sickmap.tif")
    assert maps.shape == (4, 240, 240)
    assert (out / "movie_sickness_over_time.png").stat().st_size > 500
