"""Messages and labels say what the user can do in the front end they are using (issue #27 item 6)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import REPO

from phototox.results.outputs import format_rows

IJ_JAR = Path(os.environ.get("PHOTOTOX_IJ_JAR", "/usr/share/java/ij.jar"))


def test_cli_colour_refusal_names_the_cli_option(tmp_path, tiny_model_path):
    import imageio.v3 as iio

    colour = np.zeros((260, 300, 3), np.uint8)
    colour[..., 0] = np.random.default_rng(0).integers(0, 255, (260, 300))
    iio.imwrite(tmp_path / "colour.png", colour)
    command = [sys.executable, "-m", "phototox", "map", str(tmp_path / "colour.png"), "--model", str(tiny_model_path)]
    run = subprocess.run([*command, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "colour.png: colour image" in lines[0], run.stderr
    assert "pass --colour luminance" in lines[0] and "colour='luminance'" not in lines[0]


def test_terminal_table_names_the_sick_area_and_states_its_threshold():
    row = {
        "path": "a.tif",
        "frame": 0,
        "mean_sick_probability": 0.4,
        "sick_area_fraction": 0.25,
        "label": "healthy",
        "confidence": 0.6,
        "threshold": 0.7,
    }
    table = format_rows([row])
    header, footer = table.splitlines()[0], table.splitlines()[-1]
    assert "sick area" in header and "area>=t" not in table
    assert "sick area: fraction of the field with P(sick) >= 0.7" in footer
    assert re.search(r"\b0\.250\b", table.splitlines()[2])


def test_example_pipelines_readme_lists_every_example():
    readme = (REPO / "example_pipelines" / "README.md").read_text()
    examples = [p.name for p in (REPO / "example_pipelines").iterdir() if p.suffix in (".ijm", ".cppipe")]
    assert "phototox_timecourse.ijm" in examples
    assert [name for name in examples if f"| `{name}` |" not in readme] == []


@pytest.mark.slow
@pytest.mark.skipif(not IJ_JAR.is_file(), reason=f"ImageJ not found at {IJ_JAR} (apt-get install libij-java)")
@pytest.mark.skipif(shutil.which("xvfb-run") is None or shutil.which("javac") is None, reason="xvfb-run/javac missing")
def test_fiji_timelapse_plot_is_in_minutes_and_marks_out_of_domain_frames(tmp_path, tiny_model_path):
    """A 4-frame stack 600 s apart: the plot's axis is in minutes and out-of-domain frames are counted."""
    from phototox.synth.fields import render_timelapse

    movie, out = tmp_path / "movie.tif", tmp_path / "out"
    out.mkdir()
    stack = render_timelapse(4, 240, 240, 0.3).astype(np.float32)
    tifffile.imwrite(movie, stack, imagej=True, metadata={"axes": "TYX", "finterval": 600.0})
    command = [*("xvfb-run", "-a", sys.executable, "-m", "phototox", "fiji", "--model", str(tiny_model_path))]
    macro = REPO / "example_pipelines" / "phototox_timelapse.ijm"
    command += ["--device", "cpu", "--macro", str(macro), "--args", f"input={movie} output={out}"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 frame(s), x axis time (min);" in run.stdout, run.stdout
    assert re.search(r"; \d frame\(s\) out of the model's domain", run.stdout), run.stdout
    assert (out / "movie_sickness_over_time.png").stat().st_size > 500
