"""A done-ledger that makes long runs resumable: one JSON line per finished image.

Each line is appended and fsynced once the image's outputs are in place, so after a crash the
ledger names exactly the images whose results are complete. A half-written last line (the crash
hit mid-write) is ignored. The first line records the settings; a run with other settings refuses
to resume from it rather than mix results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from phototox.errors import PhototoxError


def input_key(path: str) -> str:
    """Identity of an input: its path, size and modification time (a changed file is redone)."""
    p = Path(path)
    try:
        st = os.stat(p)
        return f"{p}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        return f"{p}|missing"


class Ledger:
    """Rows of finished images, keyed by :func:`input_key`, persisted in a JSON-lines file."""

    def __init__(self, path: str | os.PathLike, fingerprint: dict) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.done: dict[str, list[dict]] = {}
        if self.path.exists():
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"settings": fingerprint})

    def _load(self) -> None:
        try:
            lines = self.path.read_bytes().decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise PhototoxError(
                f"{self.path}: not a phototox ledger (not UTF-8 text); delete the file to start the run afresh"
            ) from None
        header = _record(lines[0]) if lines else None
        settings = header.get("settings") if header else None
        if isinstance(settings, dict) and "checks" in self.fingerprint:
            settings = {"checks": "all", **settings}  # ledgers written before --checks reached screens ran all
        if header is None or settings != self.fingerprint:
            raise PhototoxError(
                f"{self.path}: an interrupted run with other settings (model, stride, mode, "
                "threshold, ...); rerun with those settings to resume, or delete the file"
            )
        for line in lines[1:]:
            record = _record(line)
            rows = record.get("rows") if record else None
            if not (record and isinstance(record.get("key"), str) and isinstance(rows, list)):
                continue  # the half-written last line of a crashed run (or a foreign one): redone
            if all(isinstance(r, dict) for r in rows):
                self.done[record["key"]] = rows

    def _append(self, record: dict) -> None:
        text = json.dumps(record, allow_nan=True) + "\n"
        with self.path.open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell():
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # finish a torn line so this record starts clean
                    handle.write(b"\n")
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())

    def record(self, key: str, rows: list[dict]) -> None:
        """Mark one image done with its summary rows."""
        if key in self.done:
            return
        self.done[key] = rows
        self._append({"key": key, "rows": rows})

    def remove(self) -> None:
        """Delete the ledger once the run's final outputs are written."""
        self.path.unlink(missing_ok=True)


def _record(line: str) -> dict | None:
    """One ledger line as a JSON object, or None when it is not one (torn, foreign, not JSON)."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    return record if isinstance(record, dict) else None
