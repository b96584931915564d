"""Planned outputs: every file a command will write, checked against its inputs before any work.

A command lists its inputs (images, manifests, model files) and the exact files it will write,
then calls :meth:`PlannedOutputs.check` before loading a model or reading pixels. Every path is
resolved first, without creating anything: lexically (``..`` taken against the absolute path)
and through links (the longest existing prefix), so ``nothere/../x.tif`` is ``x.tif`` before the
folder ``nothere`` exists. The check refuses, with one line naming both paths, any output that is
the same file as an input (by either resolution, or a hard link: compared by device and inode),
two outputs that are one file, an output outside the plan's root folder (``--out``), an output
that is a folder, and an output folder that cannot be created or written (under a file,
read-only, permission denied, a pseudo file system such as ``/proc``).

Names derived from user data (wells, times, plates, crossval folds) go through
:func:`unique_names`: safe characters only, and distinct values always get distinct names.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from phototox.errors import OutputError, PhototoxError


def file_identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file ``path`` points to (links followed), None if it does not exist."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def resolved(path: str | os.PathLike) -> tuple[str, str]:
    """``(lexical, real)``: the absolute path with ``..`` taken lexically, and through existing links.

    Neither needs the path to exist; ``os.path.realpath`` resolves the longest existing prefix and
    appends the rest, which is where the kernel lands once missing folders are created.
    """
    try:
        text = os.fspath(path)
        return os.path.normcase(os.path.normpath(os.path.abspath(text))), os.path.normcase(os.path.realpath(text))
    except (OSError, ValueError):  # embedded NUL and the like: compared as spelled
        return str(path), str(path)


def is_within(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when ``path`` lies inside ``root`` (or is it), lexically and through links."""
    try:
        return all(os.path.commonpath([p, r]) == r for p, r in zip(resolved(path), resolved(root), strict=True))
    except ValueError:  # different drives (Windows) or a path that could not be resolved
        return False


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


SAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 60


def safe_name(value: str, hashed: bool = False) -> str:
    """``value`` as one file-name part: safe characters only, no leading dot, at most ~70 characters.

    A value that is not already such a name (or any value when ``hashed``) gets a short hash of
    itself appended, so two values that differ only in unsafe characters (``x y``, ``x/y``) or
    beyond the length limit never share a name; a safe value keeps its name unchanged.
    """
    text = SAFE_NAME_CHARS.sub("_", value).lstrip(".")[:MAX_NAME] or "empty"
    if text == value and not hashed:
        return text
    return f"{text}-{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def unique_names(values: Iterable[str], what: str = "value") -> dict[str, str]:
    """``{value: name}`` of distinct file-name parts for distinct values (see :func:`safe_name`).

    Names are compared ignoring case (macOS and Windows fold ``A`` and ``a``); a value whose name
    is taken gets the hashed form; should that be taken too, one line names both values.
    """
    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    for value in sorted(set(values)):
        for name in dict.fromkeys((safe_name(value), safe_name(value, hashed=True))):
            if name.lower() not in owner:
                break
        else:
            raise PhototoxError(
                f"{what}s {owner[name.lower()]!r} and {value!r} would share the output name {name!r}; rename one"
            )
        owner[name.lower()] = value
        names[value] = name
    return names


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
    root: Path | None = None
    """When given, every output must lie inside this folder (resolved lexically and through links)."""

    def add_outputs(self, *paths: str | os.PathLike) -> PlannedOutputs:
        self.outputs += [Path(p) for p in paths]
        return self

    def add_inputs(self, *paths: str | os.PathLike | None) -> PlannedOutputs:
        self.inputs += [Path(p) for p in paths if p is not None]
        return self

    def _input_index(self) -> dict:
        """Every input by device/inode and by both resolved spellings of its path."""
        index: dict = {}
        for path in self.inputs:
            for key in (file_identity(path), *resolved(path)):
                if key is not None:
                    index.setdefault(key, path)
        return index

    def check_one(self, out: str | os.PathLike, inputs: dict | None = None) -> None:
        """Refuse one output (also one named only once the data are read) that would replace an input
        or leave the root folder."""
        index = self._input_index() if inputs is None else inputs
        clash = next((index[k] for k in (file_identity(out), *resolved(out)) if k is not None and k in index), None)
        if clash is not None:
            raise OutputError(f"{out}: this output would overwrite an input ({clash}); choose another {self.option}")
        if self.root is not None and not is_within(out, self.root):
            raise OutputError(f"{out}: this output would be written outside {self.root}; refused")

    def check(self) -> PlannedOutputs:
        """Raise :class:`OutputError` (one line) for any clash or unwritable place; write nothing else."""
        inputs = self._input_index()
        planned: dict[str, Path] = {}
        for out in self.outputs:
            keys = set(resolved(out))
            if keys & planned.keys():
                raise OutputError(
                    f"{out}: two outputs of this command would be the same file; rename one of the inputs"
                )
            planned.update(dict.fromkeys(keys, out))
            self.check_one(out, inputs)
            identity = file_identity(out)
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
    outputs: Iterable[str | os.PathLike],
    inputs: Iterable[str | os.PathLike | None],
    option: str = "--out",
    root: str | os.PathLike | None = None,
) -> PlannedOutputs:
    """Shorthand: ``PlannedOutputs(outputs, inputs).check()``; returns the checked plan."""
    plan = PlannedOutputs(option=option, root=Path(root) if root is not None else None)
    return plan.add_outputs(*outputs).add_inputs(*inputs).check()


def model_inputs(spec: str | None) -> list[Path]:
    """The local files a ``--model``/``--init`` value reads (none for shipped models, ids, URLs)."""
    if not spec or "://" in spec or spec.startswith("shipped") or spec == "default":
        return []
    path = Path(spec)
    if path.is_dir():
        return [p for p in path.iterdir() if p.is_file()][:1000]
    return [path] if path.exists() else []
