"""The Fiji/ImageJ example macro runs ``phototox timecourse`` on the open stack in a real ImageJ."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

IJ_JAR = Path(os.environ.get("PHOTOTOX_IJ_JAR", "/usr/share/java/ij.jar"))
MACRO = REPO / "example_pipelines" / "phototox_timecourse.ijm"
pytestmark = [
    pytest.mark.skipif(not IJ_JAR.is_file(), reason=f"ImageJ not found at {IJ_JAR} (apt-get install libij-java)"),
    pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run missing (apt-get install xvfb)"),
]


@pytest.mark.slow
def test_macro_runs_timecourse_on_the_open_stack(tmp_path):
    from phototox.io.images import write_tiff_atomic
    from phototox.synth.timelapse import PIXEL_UM, render_dose_series

    stack, _ = render_dose_series(5, 224, 0.0, seed=4, n_cells=5)
    movie = tmp_path / "movie.tif"
    write_tiff_atomic(
        movie,
        stack,
        imagej=True,
        resolution=(1 / PIXEL_UM, 1 / PIXEL_UM),
        metadata={"axes": "TYX", "finterval": 600, "tunit": "sec", "unit": "micron"},
    )
    before = movie.read_bytes()
    out = tmp_path / "report"
    exe = Path(sys.executable).parent / "phototox"
    args = f"input={movie} output={out} phototox={exe} extra=--no-sickness"
    proc = subprocess.run(
        ["xvfb-run", "-a", "java", "-cp", str(IJ_JAR), "ij.ImageJ", "-batch", str(MACRO), args],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert (out / "timecourse.csv").is_file(), proc.stdout + proc.stderr
    rows = (out / "timecourse.csv").read_text().splitlines()
    assert len(rows) == 1 + 5
    assert ",10," in rows[2] or ",10.0," in rows[2] or "10" in rows[2].split(",")[6]  # 600 s -> 10 min
    assert (out / "timecourse_measures.png").stat().st_size > 0
    assert movie.read_bytes() == before  # the user's file is untouched
