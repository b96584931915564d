"""Running the real ``cellprofiler`` command headless on a pipeline, shared by the CellProfiler tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PLUGINS = REPO / "plugins" / "cellprofiler"


def cellprofiler_command() -> str:
    """The ``cellprofiler`` executable beside this Python (or on PATH); skips the test when there is none."""
    exe = shutil.which("cellprofiler") or str(Path(sys.executable).parent / "cellprofiler")
    if not Path(exe).exists():
        pytest.skip("the cellprofiler command is not installed (pip install --no-deps cellprofiler-nightly)")
    return exe


def run_cellprofiler(
    pipeline: Path, images: Path, out: Path, *extra: str, timeout: float = 900
) -> subprocess.CompletedProcess:
    """``cellprofiler -c -r -p PIPELINE -i IMAGES -o OUT`` with the phototox plugin and the imageio reader."""
    return subprocess.run(
        [
            cellprofiler_command(),
            "-c",
            "-r",
            "-p",
            str(pipeline),
            "-i",
            str(images),
            "-o",
            str(out),
            "--plugins-directory",
            str(PLUGINS),
            "--enable-readers",
            "imageio_reader",
            *extra,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
