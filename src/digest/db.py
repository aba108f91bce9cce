"""The SQLite plumbing that the durable state (`state.py`) and the disposable caches (`cache.py`) share:
opening the database file, one transaction, migrations, and a query over many keys.

Nothing here knows a table of either: it is the floor both stand on.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import StateError

# Parameters per `IN (…)`; SQLite's limit is 32,766 (999 before 3.32).
CHUNK = 500


def open_database(path: Path) -> sqlite3.Connection:
    """The state database, created with its folder when missing; WAL so readers never block the writer.

    An existing file of zero bytes is refused: SQLite would take it for a new, empty database, and a run
    would then send every digest again as if for the first time.
    """
    refuse_empty(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
    except (OSError, sqlite3.Error) as exc:
        raise StateError(
            f"cannot open the state database: {_reason(exc, path.parent)}", path=str(path)
        ) from None
    return connection


def refuse_empty(path: Path) -> None:
    """A StateError when `path` is an existing file of zero bytes (emptied, or not a database)."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        return
    if empty:
        raise StateError(
            "the state database is empty (0 bytes); digest will not take it for a new one",
            path=str(path),
            hint="restore it from a backup; only delete it to start afresh, which sends every digest again",
        )


def _reason(exc: BaseException, folder: Path | None = None) -> str:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    # SQLite says "disk I/O error" when its -shm or -wal file cannot grow: say why when it is that.
    if folder is not None and disk_full(folder) and "full" not in text:
        text += " (the disk is full: free some space)"
    return text


def disk_full(folder: Path) -> bool:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail == 0


def write_error(db: sqlite3.Connection, exc: sqlite3.Error) -> StateError:
    """A failed write as one line naming the database and saying what to do."""
    try:
        path = next((row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"), "")
    except sqlite3.Error:
        path = ""
    text = str(exc)
    if "full" in text:
        hint = "free space on the disk that holds it; nothing of this step was recorded"
    elif "readonly" in text or "read-only" in text:
        hint = "make the file, its folder and its -wal/-shm files writable (read-only now)"
    else:
        hint = "nothing of this step was recorded"
    return StateError(f"cannot write the state database: {text}", path=path or None, hint=hint)


@contextlib.contextmanager
def open_read_only(path: Path) -> Iterator[sqlite3.Connection | None]:
    """The database opened read-only (None when there is none yet): nothing is created or written."""
    if not path.exists():
        yield None
        return
    refuse_empty(path)
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open the state database: {exc}", path=str(path)) from None
    try:
        yield db
    finally:
        db.close()


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error (connections here are in autocommit mode).
    A database that cannot be written (disk full, read-only) is a StateError saying so."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise write_error(db, exc) from None
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError):
            raise write_error(db, exc) from None
        raise
    try:
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise write_error(db, exc) from None


def select_in(db: sqlite3.Connection, query: str, keys: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """The rows of `query` for every key, where `query` holds one `IN ({marks})`; asked in chunks of
    CHUNK keys, so any number of keys stays under SQLite's limit on parameters."""
    for start in range(0, len(keys), CHUNK):
        chunk = list(keys[start : start + CHUNK])
        yield from db.execute(query.format(marks=",".join("?" * len(chunk))), chunk)


def meta_version(db: sqlite3.Connection, table: str, name: str) -> int | None:
    """The version recorded in a `(name, value)` table, or None when the table or the row is missing."""
    try:
        row = db.execute(f"SELECT value FROM {table} WHERE name = ?", (name,)).fetchone()  # noqa: S608
    except sqlite3.OperationalError:
        return None
    if row is None:
        return None
    try:
        return int(row[0])
    except ValueError:
        return -1  # written by something else: no version this code knows


def statements(script: str) -> list[str]:
    """The SQL statements of `script`, each whole: a `;` inside a trigger's body or a string literal
    does not end one (sqlite3.complete_statement decides). Raises StateError on an unfinished one."""
    found: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                found.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        raise StateError(f"an unfinished SQL statement in a migration: {buffer.strip()[:60]!r}")
    return found


def migrate(
    db: sqlite3.Connection, migrations: Mapping[int, str], *, table: str, what: str = "database"
) -> None:
    """Bring the schema to the last of `migrations` (n brings it from n-1 to n), one transaction per step,
    each with its version bump in `table`; refuse a database newer than the code."""
    latest = max(migrations)
    current = meta_version(db, table, "schema_version") or 0
    if current > latest:
        raise StateError(
            f"the {what} has schema version {current}, newer than this digest ({latest})",
            hint="upgrade digest; an older one must not write to it",
        )
    for version in range(current + 1, latest + 1):
        with transaction(db):
            # Re-read inside the write lock: another process may have migrated meanwhile.
            if (meta_version(db, table, "schema_version") or 0) >= version:
                continue
            db.execute(f"CREATE TABLE IF NOT EXISTS {table} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for statement in statements(migrations[version]):
                db.execute(statement)
            db.execute(
                f"INSERT OR REPLACE INTO {table} VALUES ('schema_version', ?)",  # noqa: S608
                (str(version),),
            )
