"""Reading the user's tables (manifests, doses, plate layouts) as text: one line per problem.

Every table is decoded as UTF-8 (a byte-order mark allowed) in full before any row is used, so
a file that is not text, or not UTF-8, is refused with one line naming it and the line of the
first bad byte, never with a traceback; CSV syntax errors name the line too.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from phototox.errors import ManifestError


def read_text(path: str | os.PathLike, what: str = "table") -> str:
    """The whole file as text; :class:`ManifestError` naming the file (and line) when it is not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such {what} file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the {what} as UTF-8 CSV"
        ) from None


def read_csv(path: str | os.PathLike, what: str = "table") -> tuple[list[str], list[dict[str, str]]]:
    """``(header, rows)`` of a CSV file; rows as dicts keyed by header names (extra cells dropped)."""
    reader = csv.reader(io.StringIO(read_text(path, what), newline=""))
    try:
        records = list(reader)
    except csv.Error as exc:
        raise ManifestError(f"{path}, line {reader.line_num}: not a readable CSV file ({exc})") from None
    if not records:
        return [], []
    header = records[0]
    rows = [{h: (row[i] if i < len(row) else "") for i, h in enumerate(header)} for row in records[1:] if row]
    return header, rows
