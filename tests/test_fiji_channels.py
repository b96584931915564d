"""The ImageJ plugin on multichannel hyperstacks (channel=N) and calibrated images (pixel size forwarded)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PHOTOTOX = [sys.executable, "-m", "phototox"]
SYNTH_MODEL = "shipped:deadnet-gap-synthetic-v2"  # outputs vary strongly with the synthetic dose

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run missing (apt-get install xvfb)"),
    pytest.mark.skipif(not Path("/usr/share/java/ij.jar").is_file(), reason="ImageJ 1.x missing (libij-java)"),
]


def test_channel_choice_and_calibration_reach_the_model(tmp_path):
    import tifffile

    from phototox.synth.fields import render_field

    healthy = render_field(256, 256, 0.0, seed=4).image.astype(np.float32)
    sick = render_field(256, 256, 1.0, seed=4).image.astype(np.float32)
    hyper = np.stack([healthy, sick])[None, None]  # T, Z, C, Y, X
    path = tmp_path / "two channels.tif"
    tifffile.imwrite(path, hyper, imagej=True, resolution=(2.0, 2.0), metadata={"axes": "TZCYX", "unit": "micron"})
    macro = tmp_path / "channels.ijm"
    macro.write_text(
        f'open("{path}");\n'
        'print("NOCHAN " + call("phototox.Phototox.measure", ""));\n'
        'print("C1 " + call("phototox.Phototox.measure", "channel=1 stride=32"));\n'
        'print("C2 " + call("phototox.Phototox.measure", "channel=2 stride=32"));\n'
        'print("GIVEN " + call("phototox.Phototox.measure", "channel=2 stride=32 pixel_size=0.25"));\n'
    )
    run = subprocess.run(
        ["xvfb-run", "-a", *PHOTOTOX, "fiji", "--model", SYNTH_MODEL, "--device", "cpu", "--macro", str(macro)],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = run.stdout + run.stderr
    assert "NOCHAN error:" in out and "has 2 channels; add channel=N (1-2)" in out, out[-3000:]
    p1 = float(re.search(r"C1 mean_sick_probability=([\d.eE+-]+)", out).group(1))
    p2 = float(re.search(r"C2 mean_sick_probability=([\d.eE+-]+)", out).group(1))
    assert p2 - p1 > 0.2, (p1, p2)  # channel 2 (the sick field) is the one analysed
    c2 = re.search(r"C2 (.*)", out).group(1)
    assert "pixel_size_um=0.5" in c2 and "pixel_size_source=user" in c2  # from the image's calibration
    assert "pixel_size_um=0.25" in re.search(r"GIVEN (.*)", out).group(1)  # an explicit option wins
