"""The README's Python example runs as printed and gives ``phototox predict``'s numbers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from phototox.synth.fields import render_field

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The first ``python`` block after the README's "From Python" heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## From Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize("dose", [0.0, 1.0])
def test_the_readme_python_example_equals_predict(tmp_path, dose):
    """A healthy and a damaged synthetic field (different answers): the example prints predict's P(sick)."""
    field = render_field(320, 320, dose=dose, seed=3).image
    tifffile.imwrite(tmp_path / "field.tif", np.asarray(field))
    env_code = "import warnings; warnings.simplefilter('ignore')\n" + readme_example()
    ran = subprocess.run([sys.executable, "-c", env_code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    printed = re.search(
        r"P\(sick\) ([0-9.]+) \((healthy|sick)\), model (.+?), ([0-9.]+ um/px.*?), warnings: (.*)", ran.stdout
    )
    assert printed, ran.stdout
    cli = subprocess.run(
        [sys.executable, "-m", "phototox", "predict", "field.tif", "--pixel-size", "0.65", "--stride", "32", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    row = json.loads(cli.stdout)[0]
    assert float(printed.group(1)) == pytest.approx(row["mean_sick_probability"], abs=1e-3)
    assert printed.group(2) == row["label"]
    assert "0.65 um/px (user)" in printed.group(4)
