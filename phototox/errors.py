"""Exceptions with messages meant for the person at the keyboard.

Every error that bad *input* can cause is a :class:`PhototoxError` whose message names the file
(or setting) and the problem. Front ends (CLI, CellProfiler, Fiji) show ``str(error)`` as is and
exit non-zero; anything else escaping is a bug.
"""

from __future__ import annotations


class PhototoxError(Exception):
    """Base class for user-facing errors."""


class ImageInputError(PhototoxError, ValueError):
    """An image cannot be used: unreadable, wrong dimensions, bit depth, NaNs, too small."""


class ManifestError(PhototoxError, ValueError):
    """A manifest CSV is malformed: missing column, unknown label, missing file."""


class ModelLoadError(PhototoxError, ValueError):
    """A model file or package is missing, corrupt, tampered with or incompatible."""


class OutputError(PhototoxError, OSError):
    """An output would overwrite an input or cannot be written."""


def describe_os_error(exc: OSError) -> str:
    """One line naming the path(s) and the problem of an operating-system error."""
    names = " -> ".join(str(n) for n in (exc.filename, exc.filename2) if n is not None)
    problem = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    return f"{names}: {problem}" if names else problem
