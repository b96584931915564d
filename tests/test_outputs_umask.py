"""Outputs are written atomically with the user's umask (readable by colleagues on shared storage)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_outputs_follow_the_umask(tmp_path, umask, mode):
    from phototox.io.images import write_text_atomic, write_tiff_atomic

    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "summary.csv", "a,b\n")
        write_tiff_atomic(tmp_path / "map.tif", np.zeros((4, 4), "float32"))
    finally:
        os.umask(old)
    for name in ("summary.csv", "map.tif"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
