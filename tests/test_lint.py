"""The code base is ruff clean (lint and format) and the library type checks (mypy), as configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import REPO


def _ruff() -> list[str]:
    if shutil.which("ruff"):
        return ["ruff"]
    try:
        import ruff  # noqa: F401
    except ImportError:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return [sys.executable, "-m", "ruff"]


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff_is_clean(args):
    proc = subprocess.run([*_ruff(), *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_the_library_type_checks(tmp_path):
    """mypy, configured in pyproject.toml ([tool.mypy]: the phototox package), reports no error."""
    if shutil.which("mypy"):
        command = ["mypy"]
    else:
        pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
        command = [sys.executable, "-m", "mypy"]
    proc = subprocess.run(
        [*command, "--cache-dir", str(tmp_path / "mypy-cache")], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
