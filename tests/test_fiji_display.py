"""`phototox fiji --macro` on a machine without a display: its own Xvfb, or one line saying what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import REPO

IJ_JAR = Path(os.environ.get("PHOTOTOX_IJ_JAR", "/usr/share/java/ij.jar"))
BATCH = REPO / "example_pipelines" / "phototox_batch_folder.ijm"


def _no_display_env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    return {**env, **changes}


def _fiji(model: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "phototox", "fiji", "--model", str(model), "--device", "cpu", *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def _orphaned_xvfbs() -> set[int]:
    """Xvfb processes whose parent has gone (init adopted them): what a command that failed to stop
    its virtual display leaves. Displays other tests hold meanwhile (xvfb-run, a test's own Xvfb)
    still have a living parent, so running tests in parallel does not disturb the check."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if name == "Xvfb" and rest[1] == "1":
            found.add(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not IJ_JAR.is_file(), reason=f"ImageJ not found at {IJ_JAR} (apt-get install libij-java)")
@pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("javac") is None, reason="Xvfb or javac missing")
def test_documented_batch_command_runs_without_a_display(tmp_path, tiny_model_path):
    """The README's command, DISPLAY unset: phototox starts Xvfb, the macro runs, the Xvfb is gone after."""
    from phototox.synth.fields import render_field

    data, out = tmp_path / "phase", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    tifffile.imwrite(data / "field.tif", render_field(240, 260, 0.5, seed=3).image)
    before = _orphaned_xvfbs()
    run = _fiji(tiny_model_path, _no_display_env(), "--macro", str(BATCH), "--args", f"input={data} output={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "HeadlessException" not in run.stdout + run.stderr and "1 image(s) analysed" in run.stdout
    assert (out / "field_sickmap.tif").is_file()
    assert _orphaned_xvfbs() <= before  # the virtual display was stopped, not left behind


def test_without_display_or_xvfb_one_line_says_what_to_install(tmp_path, tiny_model_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    run = _fiji(tiny_model_path, _no_display_env(PATH=str(empty_bin)), "--macro", str(BATCH))
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "DISPLAY is unset" in lines[0] and "apt-get install xvfb" in lines[0] and "xvfb-run -a" in lines[0]


def test_without_display_the_imagej_window_is_refused_in_one_line(tiny_model_path):
    run = _fiji(tiny_model_path, _no_display_env())
    assert run.returncode != 0 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "--macro" in run.stderr


@pytest.mark.slow
@pytest.mark.skipif(not IJ_JAR.is_file(), reason=f"ImageJ not found at {IJ_JAR} (apt-get install libij-java)")
@pytest.mark.skipif(shutil.which("javac") is None, reason="javac missing")
def test_headless_batch_command_fails_in_one_line_and_plain_macros_still_print(tmp_path, tiny_model_path):
    """--headless: a macro that needs AWT stops with one line (no trace); one that does not prints as usual."""
    data, out = tmp_path / "phase", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    tifffile.imwrite(data / "field.tif", np.zeros((240, 260), np.uint16))
    run = _fiji(tiny_model_path, _no_display_env(), "--headless", "--macro", str(BATCH), "--args", f"input={data}")
    assert run.returncode != 0
    assert run.stdout.strip() == "" and len(run.stderr.strip().splitlines()) == 1, run.stdout + run.stderr
    assert "needs a display" in run.stderr and "--headless" in run.stderr and "xvfb-run -a" in run.stderr
    macro = tmp_path / "hello.ijm"
    macro.write_text('print("hello from a headless macro");\n')
    run = _fiji(tiny_model_path, _no_display_env(), "--headless", "--macro", str(macro))
    assert run.returncode == 0 and "hello from a headless macro" in run.stdout, run.stdout + run.stderr
