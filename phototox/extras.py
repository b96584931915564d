"""Optional extras (``pip install -e ".[NAME]"``): which modules each brings, and one-line errors.

A command that needs an extra calls :func:`require_extra` before doing any work, so a user who
installed the core only reads which extra to install instead of an import traceback.
"""

from __future__ import annotations

import importlib.util

from phototox.errors import PhototoxError

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "cellprofiler": ("cellprofiler_core", "cellprofiler_library"),
    "bioimageio": ("onnx", "onnxruntime", "pydantic", "bioimageio.spec", "bioimageio.core"),
    "fiji": ("scyjava", "jpype", "imagej"),
    "scale": ("dask", "distributed", "zarr", "ome_zarr"),
    "live": ("pymmcore_plus", "useq", "psygnal"),
    "test": ("pytest", "xdist", "playwright", "ruff", "mypy", "hypothesis"),
    "napari": ("napari", "pytestqt"),
}
"""Importable modules of each extra declared in pyproject.toml (``tests/test_extras.py`` checks both ways)."""


def install_hint(extra: str) -> str:
    return f'pip install -e ".[{extra}]"'


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent package missing, or blocked in sys.modules
        return True


def require_extra(extra: str, purpose: str) -> None:
    """Raise a one-line PhototoxError naming the extra when any of its modules is missing."""
    missing = [m for m in EXTRA_MODULES[extra] if _missing(m)]
    if missing:
        raise PhototoxError(
            f"{purpose} needs the optional extra '{extra}' (missing: {', '.join(missing)}); "
            f"install it with: {install_hint(extra)}"
        )


def extra_for_module(name: str | None) -> str | None:
    """The extra that provides module ``name`` (or one of its parents), if any (core modules: None)."""
    while name:
        for extra, modules in EXTRA_MODULES.items():
            if name in modules:
                return extra
        name = name.rpartition(".")[0]
    return None


def missing_extra_message(exc: ImportError, purpose: str) -> str | None:
    """One line for an ImportError caused by a missing extra; None when no extra provides it."""
    extra = extra_for_module(getattr(exc, "name", None))
    if extra is None:
        return None
    return f"{purpose} needs the optional extra '{extra}' (missing: {exc.name}); install it with: {install_hint(extra)}"
