"""Planned outputs: every file a command will write, checked against its inputs before any work.

A command lists its inputs (images, manifests, model files) and the exact files it will write,
then calls :meth:`PlannedOutputs.check` before loading a model or reading pixels. The check
refuses, with one line naming both paths, any output that is the same file as an input (same
path, a symbolic link to it or a hard link: compared by device and inode), two outputs that are
one file, an output that is a folder, and an output folder that cannot be created or written
(under a file, read-only, permission denied, a pseudo file system such as ``/proc``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import OutputError, PhototoxError


def file_identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file ``path`` points to (links followed), None if it does not exist."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when both paths exist and are one file (same path, symbolic or hard link)."""
    ia, ib = file_identity(a), file_identity(b)
    return ia is not None and ia == ib


def check_distinct_inputs(paths: Iterable[str | os.PathLike]) -> None:
    """Refuse a file given twice (also as a link or under another spelling of its path)."""
    seen: dict[tuple[int, int], Path] = {}
    for path in map(Path, paths):
        identity = file_identity(path)
        if identity is None:
            continue
        if identity in seen:
            same = "given twice" if str(seen[identity]) == str(path) else f"is the same file as {seen[identity]}"
            raise PhototoxError(f"{path}: input {same}; list each image once")
        seen[identity] = path


def _first_existing(path: Path) -> Path:
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    return probe


def check_writable_folder(folder: str | os.PathLike, for_path: str | os.PathLike | None = None) -> None:
    """Refuse when ``folder`` cannot be created (or written) -- before any work is done.

    Walks up to the first existing ancestor: it must be a folder on a writable file system where
    this process may create entries (probed by creating and removing an empty folder, which also
    catches ``/proc`` and permission rules ``os.access`` does not see, e.g. for root).
    """
    folder = Path(os.path.abspath(folder))
    named = Path(for_path) if for_path is not None else folder
    base = _first_existing(folder)
    if not base.is_dir():
        raise OutputError(f"{named}: cannot write here: {base} is a file, not a folder")
    try:
        if os.statvfs(base).f_flag & os.ST_RDONLY:
            raise OutputError(f"{named}: cannot write here: {base} is on a read-only file system")
    except (AttributeError, OSError):  # no statvfs (Windows) or no answer: the probe decides
        pass
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".phototox-probe-", dir=base))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"{named}: cannot write here: {base}: {reason.lower()}") from None


@dataclass
class PlannedOutputs:
    """The files one command will write, and the files it reads."""

    outputs: list[Path] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)
    option: str = "--out"

    def add_outputs(self, *paths: str | os.PathLike) -> PlannedOutputs:
        self.outputs += [Path(p) for p in paths]
        return self

    def add_inputs(self, *paths: str | os.PathLike | None) -> PlannedOutputs:
        self.inputs += [Path(p) for p in paths if p is not None]
        return self

    def check(self) -> PlannedOutputs:
        """Raise :class:`OutputError` (one line) for any clash or unwritable place; write nothing else."""
        inputs: dict[tuple[int, int], Path] = {}
        for path in self.inputs:
            identity = file_identity(path)
            if identity is not None:
                inputs.setdefault(identity, path)
        planned: dict[str, Path] = {}
        for out in self.outputs:
            key = os.path.normcase(os.path.abspath(out))
            if key in planned:
                raise OutputError(
                    f"{out}: two outputs of this command would be the same file; rename one of the inputs"
                )
            planned[key] = out
            identity = file_identity(out)
            if identity in inputs:
                raise OutputError(
                    f"{out}: this output would overwrite an input ({inputs[identity]}); choose another {self.option}"
                )
            if os.path.lexists(out) and not os.path.isfile(out):
                raise OutputError(
                    f"{out}: an output file would replace this folder or special file; choose another {self.option}"
                )
            if identity is None and os.path.islink(out):
                raise OutputError(f"{out}: is a dangling symbolic link; remove it or choose another {self.option}")
        checked: set[Path] = set()
        for out in self.outputs:
            parent = Path(os.path.abspath(out)).parent
            if parent not in checked:
                check_writable_folder(parent, out)
                checked.add(parent)
        return self


def check_outputs(
    outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None], option: str = "--out"
) -> None:
    """Shorthand: ``PlannedOutputs(outputs, inputs).check()``."""
    PlannedOutputs(option=option).add_outputs(*outputs).add_inputs(*inputs).check()


def model_inputs(spec: str | None) -> list[Path]:
    """The local files a ``--model``/``--init`` value reads (none for shipped models, ids, URLs)."""
    if not spec or "://" in spec or spec.startswith("shipped") or spec == "default":
        return []
    path = Path(spec)
    if path.is_dir():
        return [p for p in path.iterdir() if p.is_file()][:1000]
    return [path] if path.exists() else []
