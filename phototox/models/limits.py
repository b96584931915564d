"""Every bound the model loader puts on untrusted input, in one place.

A model file, package or URL may come from anyone. Before anything is parsed, allocated or
written, its declared and actual sizes are checked against :data:`LIMITS`; downloads stop at an
overall deadline (not a per-read timeout, which a server sending one byte at a time never
trips). Tests and unusual deployments replace the module attribute (``limits.LIMITS =
LoaderLimits(download_deadline_s=2)``); ``PHOTOTOX_DOWNLOAD_DEADLINE`` (seconds) and
``PHOTOTOX_MAX_DOWNLOAD_MB`` override the two network limits from the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class LoaderLimits:
    """Size and time bounds for loading models (sizes in bytes, times in seconds)."""

    max_weight_file_bytes: int = 256 * MiB
    """A phototox ``.pt`` file or a package's weights member. The paper's full DeadNet is 54 MB in
    float32; the shipped compact model 1.2 MB."""
    max_description_bytes: int = 1 * MiB
    """``rdf.yaml``/``bioimageio.yaml`` (real ones are a few kB); refused by size before parsing."""
    max_package_bytes: int = 512 * MiB
    """A package zip, and the sum of its members' declared (uncompressed) sizes."""
    max_package_members: int = 1000
    """Files in one package zip."""
    max_download_bytes: int = 512 * MiB
    """One download (package zip or weight file); the transfer stops when it is exceeded."""
    download_deadline_s: float = 300.0
    """Whole time allowed for one download, connection included."""
    max_state_tensors: int = 200
    """Tensors in a weight file's state dict (the full DeadNet has 62)."""


def _from_env() -> LoaderLimits:
    deadline = os.environ.get("PHOTOTOX_DOWNLOAD_DEADLINE")
    max_mb = os.environ.get("PHOTOTOX_MAX_DOWNLOAD_MB")
    base = LoaderLimits()
    try:
        return LoaderLimits(
            download_deadline_s=float(deadline) if deadline else base.download_deadline_s,
            max_download_bytes=int(float(max_mb) * MiB) if max_mb else base.max_download_bytes,
        )
    except ValueError:
        return base


LIMITS: LoaderLimits = _from_env()
"""The limits in force (read at each use, so replacing this attribute takes effect at once)."""


def current() -> LoaderLimits:
    """The limits in force now."""
    return LIMITS
