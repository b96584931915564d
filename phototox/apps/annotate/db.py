"""The annotation database: SQLite in WAL mode; items, annotators and every vote ever cast.

Votes are never updated or deleted: changing one's mind adds a new row, and reports use each
annotator's latest vote per item. Each request opens its own connection; writes are short
``BEGIN IMMEDIATE`` transactions with a generous busy timeout, so concurrent annotators do not
lose votes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from phototox.errors import PhototoxError

LABELS = ("healthy", "sick", "unsure", "skip")
REQUIRED_TABLES = {"items", "annotators", "votes"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    first_frame INTEGER NOT NULL,
    last_frame INTEGER NOT NULL,
    y INTEGER NOT NULL,
    x INTEGER NOT NULL,
    size INTEGER NOT NULL,
    grp TEXT NOT NULL,
    is_control INTEGER NOT NULL DEFAULT 0,
    UNIQUE (path, first_frame, y, x, size)
);
CREATE TABLE IF NOT EXISTS annotators (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    annotator_id INTEGER NOT NULL REFERENCES annotators(id),
    label TEXT NOT NULL CHECK (label IN ('healthy', 'sick', 'unsure', 'skip')),
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS votes_by_item ON votes (item_id);
CREATE INDEX IF NOT EXISTS votes_by_annotator ON votes (annotator_id);
CREATE TRIGGER IF NOT EXISTS votes_are_append_only_u BEFORE UPDATE ON votes
    BEGIN SELECT RAISE(ABORT, 'votes are never changed; cast a new vote'); END;
CREATE TRIGGER IF NOT EXISTS votes_are_append_only_d BEFORE DELETE ON votes
    BEGIN SELECT RAISE(ABORT, 'votes are never deleted'); END;
"""


@dataclass(frozen=True)
class Item:
    id: int
    path: str
    first_frame: int
    last_frame: int
    y: int
    x: int
    size: int
    group: str
    is_control: bool


def _item(row: tuple) -> Item:
    """An :class:`Item` from its ``items`` table row (``is_control`` stored as 0/1)."""
    item_id, path, first, last, y, x, size, group, is_control = row
    return Item(int(item_id), str(path), int(first), int(last), int(y), int(x), int(size), str(group), bool(is_control))


def _row_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just made."""
    if cursor.lastrowid is None:
        raise RuntimeError("the database returned no row id for an INSERT")
    return cursor.lastrowid


@dataclass(frozen=True)
class Annotator:
    id: int
    name: str


CONFUSABLES = str.maketrans(
    # Cyrillic and Greek letters drawn like Latin ones, and digits drawn like letters (after casefold)
    "аеорсухіјѕԁӏһԛԝαοριτνκεχυ01|",
    "aeopcyxijsdlhqwaopitvkexuoll",
)


class LookalikeNameError(PhototoxError, sqlite3.IntegrityError):
    """A new annotator name that reads like an existing one (case, width, look-alike letters, spaces)."""


def name_key(name: str) -> str:
    """What a name looks like to a reader: NFKC, no invisible format characters, case folded,
    look-alike Cyrillic/Greek letters and digits mapped to Latin, spaces collapsed."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf").casefold()
    return " ".join(unicodedata.normalize("NFKC", text).translate(CONFUSABLES).split())


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AnnotationDB:
    """Thin access layer over one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with self.connect() as con:
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if tables and not tables >= REQUIRED_TABLES:  # someone else's database: leave it alone
                    raise PhototoxError(
                        f"{self.path}: an SQLite database of something else (tables "
                        f"{', '.join(sorted(tables)[:5])}), not a phototox annotation database"
                    )
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise PhototoxError(f"{self.path}: not a usable SQLite annotation database ({exc})") from None

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout=30000")
            con.execute("PRAGMA foreign_keys=ON")
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    # -- items --------------------------------------------------------------------------------
    def add_items(self, items: list[tuple]) -> int:
        """Insert (path, first, last, y, x, size, group, is_control) rows; existing ones are kept."""
        with self.transaction() as con:
            before = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            con.executemany(
                "INSERT OR IGNORE INTO items (path, first_frame, last_frame, y, x, size, grp, is_control) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                items,
            )
            return con.execute("SELECT COUNT(*) FROM items").fetchone()[0] - before

    def item(self, item_id: int) -> Item | None:
        with self.connect() as con:
            row = con.execute(
                "SELECT id, path, first_frame, last_frame, y, x, size, grp, is_control FROM items WHERE id = ?",
                (item_id,),
            ).fetchone()
        return _item(row) if row else None

    def items(self) -> list[Item]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT id, path, first_frame, last_frame, y, x, size, grp, is_control FROM items ORDER BY id"
            ).fetchall()
        return [_item(r) for r in rows]

    # -- annotators ---------------------------------------------------------------------------
    def create_annotator(self, name: str) -> tuple[Annotator, str]:
        """Register a new name; return it with its freshly generated token (shown once).

        A name that looks like an existing one (:func:`name_key`) is refused with
        :class:`LookalikeNameError`, an ``sqlite3.IntegrityError`` as for a name taken twice.
        """
        token = secrets.token_urlsafe(12)
        key = name_key(name)
        with self.transaction() as con:
            for (taken,) in con.execute("SELECT name FROM annotators"):
                if name_key(taken) == key:
                    raise LookalikeNameError(f"annotator name {name!r} looks like the existing name {taken!r}")
            cur = con.execute(
                "INSERT INTO annotators (name, token_hash, created) VALUES (?, ?, ?)",
                (name, _hash_token(token), time.time()),
            )
            return Annotator(_row_id(cur), name), token

    def annotator_exists(self, name: str) -> bool:
        with self.connect() as con:
            return con.execute("SELECT 1 FROM annotators WHERE name = ?", (name,)).fetchone() is not None

    def authenticate(self, name: str, token: str) -> Annotator | None:
        """The annotator if ``token`` is theirs (constant-time comparison), else None."""
        with self.connect() as con:
            row = con.execute("SELECT id, name, token_hash FROM annotators WHERE name = ?", (name,)).fetchone()
        if row and hmac.compare_digest(row[2], _hash_token(token)):
            return Annotator(row[0], row[1])
        return None

    def annotator_by_token(self, token: str) -> Annotator | None:
        with self.connect() as con:
            row = con.execute("SELECT id, name FROM annotators WHERE token_hash = ?", (_hash_token(token),)).fetchone()
        return Annotator(*row) if row else None

    def annotators(self) -> list[Annotator]:
        with self.connect() as con:
            return [Annotator(*r) for r in con.execute("SELECT id, name FROM annotators ORDER BY id")]

    # -- votes --------------------------------------------------------------------------------
    def add_vote(self, item_id: int, annotator_id: int, label: str) -> int:
        """Append a vote (never overwrites). Raises ValueError for unknown items or labels."""
        if label not in LABELS:
            raise ValueError(f"unknown label {label!r}")
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
                raise ValueError(f"unknown item {item_id}")
            cur = con.execute(
                "INSERT INTO votes (item_id, annotator_id, label, created) VALUES (?, ?, ?, ?)",
                (item_id, annotator_id, label, time.time()),
            )
            return _row_id(cur)

    def votes(self) -> list[tuple[int, int, int, str, float]]:
        """All votes: (vote id, item id, annotator id, label, time), oldest first."""
        with self.connect() as con:
            return con.execute("SELECT id, item_id, annotator_id, label, created FROM votes ORDER BY id").fetchall()

    def latest_labels(self, include_skips: bool = False) -> dict[tuple[int, int], str]:
        """Each annotator's latest label per item: {(item, annotator): label}."""
        latest: dict[tuple[int, int], str] = {}
        for _, item, annotator, label, _ in self.votes():
            if label == "skip" and not include_skips:
                continue
            latest[(item, annotator)] = label
        return latest

    def count_votes(self, annotator_id: int) -> int:
        with self.connect() as con:
            return con.execute("SELECT COUNT(*) FROM votes WHERE annotator_id = ?", (annotator_id,)).fetchone()[0]

    def seen_items(self, annotator_id: int) -> set[int]:
        with self.connect() as con:
            return {
                r[0] for r in con.execute("SELECT DISTINCT item_id FROM votes WHERE annotator_id = ?", (annotator_id,))
            }

    def items_scored_by_others(self, annotator_id: int) -> set[int]:
        """Items that another annotator labelled (skips do not count)."""
        with self.connect() as con:
            return {
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT item_id FROM votes WHERE annotator_id != ? AND label != 'skip'", (annotator_id,)
                )
            }

    def items_scored_by_anyone(self) -> set[int]:
        with self.connect() as con:
            return {r[0] for r in con.execute("SELECT DISTINCT item_id FROM votes WHERE label != 'skip'")}
