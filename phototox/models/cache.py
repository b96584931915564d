"""The one download cache of phototox (models from the zoo or URLs; the Fiji plugin jar).

Everything downloaded or built lives under :func:`cache_root` (``PHOTOTOX_CACHE`` or
``~/.cache/phototox``), one folder per kind (``zoo``, ``fiji``) and one entry per item. A path
inside an entry comes from :func:`safe_join`, which refuses absolute paths, ``..`` and anything
that resolves outside the entry (symbolic links included) before a byte is written. Downloads
(:func:`download`) are bounded in size and by an overall deadline (:mod:`phototox.models.limits`)
and land atomically: a failed download leaves no partial file.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from phototox.errors import ModelLoadError
from phototox.io.images import atomic_path
from phototox.models import limits as _limits

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_ENTRY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def cache_root() -> Path:
    """The cache folder: ``PHOTOTOX_CACHE`` or ``~/.cache/phototox``."""
    return Path(os.environ.get("PHOTOTOX_CACHE") or Path.home() / ".cache" / "phototox")


def cache_entry(kind: str, name: str) -> Path:
    """The folder of one cached item, ``<root>/<kind>/<name>`` (not created); names are checked."""
    for part in (kind, name):
        if not _ENTRY_NAME.match(part) or part in (".", ".."):
            raise ModelLoadError(f"{part!r}: not a valid cache entry name")
    return cache_root() / kind / name


def check_relative(reference: str, what: str) -> PurePosixPath:
    """A package-relative file reference as a clean relative path, or a one-line refusal."""
    if not isinstance(reference, str) or not reference.strip():
        raise ModelLoadError(f"{what}: file reference must be a non-empty string, got {reference!r}")
    text = reference.replace("\\", "/")
    rel = PurePosixPath(text)
    if (
        rel.is_absolute()
        or _WINDOWS_DRIVE.match(text)
        or "://" in text
        or ".." in rel.parts
        or "\x00" in text
        or str(rel) in ("", ".")
    ):
        raise ModelLoadError(f"{what}: file reference {reference!r} points outside the package; refusing it")
    return rel


def safe_join(entry: Path, reference: str, what: str) -> Path:
    """``entry / reference``, refused unless it stays inside ``entry`` once resolved."""
    rel = check_relative(reference, what)
    target = entry / rel
    if not target.resolve().is_relative_to(entry.resolve()):
        raise ModelLoadError(f"{what}: file reference {reference!r} resolves outside {entry}; refusing it")
    return target


def _set_timeout(response, seconds: float) -> None:
    """Bound the next socket read of ``response`` (http.client keeps the socket in ``fp.raw``)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if isinstance(sock, socket.socket):
        sock.settimeout(max(seconds, 0.01))


def fetch_bytes(url: str, max_bytes: int, what: str) -> bytes:
    """Download ``url`` into memory: at most ``max_bytes``, within the overall deadline."""
    return b"".join(_stream(url, max_bytes, what))


def _stream(url: str, max_bytes: int, what: str) -> Iterator[bytes]:
    """Yield the body of ``url`` in chunks; one-line ModelLoadError past the size or time limit."""
    limit = _limits.current()
    deadline = time.monotonic() + limit.download_deadline_s
    if not url.startswith(("http://", "https://")):
        raise ModelLoadError(f"{url}: only http(s) URLs are downloaded")
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=limit.download_deadline_s) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ModelLoadError(
                    f"{url}: {what} declares {int(declared) / 1e6:.1f} MB, over the "
                    f"{max_bytes / 1e6:.1f} MB limit; refusing it"
                )
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                _set_timeout(response, remaining)
                chunk = response.read1(1 << 16)
                if not chunk:
                    return
                received += len(chunk)
                if received > max_bytes:
                    raise ModelLoadError(f"{url}: {what} is over the {max_bytes / 1e6:.1f} MB limit; download stopped")
                yield chunk
    except ModelLoadError:
        raise
    except TimeoutError:
        raise ModelLoadError(
            f"{url}: download of {what} did not finish within {limit.download_deadline_s:g} s; giving up"
        ) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelLoadError(
            f"{url}: cannot download {what} ({reason}); a zoo model needs the network the "
            f"first time, after which it is cached in {cache_root()}"
        ) from None


def download(url: str, entry: Path, reference: str, what: str, max_bytes: int | None = None) -> Path:
    """Download ``url`` to ``entry/reference`` (checked to stay inside ``entry``), atomically."""
    target = safe_join(entry, reference, what)  # refused before any byte is fetched or written
    limit = _limits.current()
    target.parent.mkdir(parents=True, exist_ok=True)
    safe_join(entry, reference, what)  # the folders just made must not redirect it
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        handle.writelines(_stream(url, max_bytes or limit.max_download_bytes, what))
    return target


def download_bytes(data: bytes, entry: Path, reference: str, what: str) -> Path:
    """Store bytes already fetched (and checked) at ``entry/reference``, atomically."""
    target = safe_join(entry, reference, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    safe_join(entry, reference, what)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def write_marker(marker: Path, text: str) -> None:
    """Mark a cache entry complete (written last, atomically)."""
    with atomic_path(marker) as tmp:
        tmp.write_text(text)
