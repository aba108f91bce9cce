"""Caches in the state database: parsed articles, rendered entries, and the last build's fingerprint.

Everything here can be thrown away: deleting the tables costs one cold build, never a wrong output.
So the tables live beside the state's own (digests, deliveries) in the same SQLite file, on the same
plumbing (`db.py`), but carry no schema migrations: a cache table from another version is simply
dropped and rebuilt.
"""

from __future__ import annotations

import datetime as dt
import pickle
import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .content import Article
from .db import meta_version, select_in, transaction
from .errors import Problem

if TYPE_CHECKING:
    from .render import RenderedEntry

CACHE_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parse_cache (key TEXT PRIMARY KEY, stamp TEXT NOT NULL, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS render_cache (
    key TEXT PRIMARY KEY, html TEXT NOT NULL, summary TEXT NOT NULL, image TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS build_fingerprint (folder TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS build_record (
    folder TEXT PRIMARY KEY, signature TEXT NOT NULL, valid_from TEXT NOT NULL, valid_until TEXT NOT NULL,
    report BLOB NOT NULL);
"""


class Cache:
    """The parse cache `content.collect` uses, the render cache, and build fingerprints."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.db = connection
        version = meta_version(self.db, "cache_meta", "version")
        if version is not None and version != CACHE_VERSION:
            self.db.executescript(
                "DROP TABLE IF EXISTS parse_cache; DROP TABLE IF EXISTS render_cache; "
                "DROP TABLE IF EXISTS build_fingerprint; DROP TABLE IF EXISTS build_record; "
                "DROP TABLE cache_meta;"
            )
        self.db.executescript(_SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO cache_meta VALUES ('version', ?)", (str(CACHE_VERSION),))
        self._parsed: dict[str, tuple[str, bytes]] | None = None

    # -- parse cache (content.ParseCache)

    def lookup(self, key: str) -> tuple[str, Article | Problem] | None:
        if self._parsed is None:  # one query for the whole folder beats one per file
            rows = self.db.execute("SELECT key, stamp, value FROM parse_cache")
            self._parsed = {k: (stamp, value) for k, stamp, value in rows}
        hit = self._parsed.get(key)
        if hit is None:
            return None
        stamp, value = hit
        try:
            parsed = pickle.loads(value)  # noqa: S301 - our own cache, written by this module
        except Exception:  # an entry written by other code: treat as a miss
            return None
        return stamp, parsed

    def store(self, entries: Sequence[tuple[str, str, Article | Problem | bytes]]) -> None:
        rows = [
            (key, stamp, value if isinstance(value, bytes) else pickle.dumps(value, protocol=5))
            for key, stamp, value in entries
        ]
        with transaction(self.db):
            self.db.executemany("INSERT OR REPLACE INTO parse_cache VALUES (?, ?, ?)", rows)

    def forget_except(self, keys: set[str]) -> None:
        known = (
            set(self._parsed or ())
            if self._parsed is not None
            else {k for (k,) in self.db.execute("SELECT key FROM parse_cache")}
        )
        stale = known - keys
        if stale:
            with transaction(self.db):
                self.db.executemany("DELETE FROM parse_cache WHERE key = ?", [(k,) for k in stale])

    # -- render cache

    def rendered(self, keys: Iterable[str]) -> dict[str, RenderedEntry]:
        from .render import RenderedEntry  # the render stage's type; Markdown and nh3 load with it

        query = "SELECT key, html, summary, image FROM render_cache WHERE key IN ({marks})"
        rows = select_in(self.db, query, list(keys))
        return {key: RenderedEntry(html, summary, image) for key, html, summary, image in rows}

    def store_rendered(self, entries: dict[str, RenderedEntry], keep: set[str] | None) -> None:
        """Remember these renderings; with `keep`, forget every other one not in it."""
        with transaction(self.db):
            self.db.executemany(
                "INSERT OR REPLACE INTO render_cache VALUES (?, ?, ?, ?)",
                [(k, e.html, e.summary, e.image) for k, e in entries.items()],
            )
            if keep is not None:
                stale = {k for (k,) in self.db.execute("SELECT key FROM render_cache")} - keep
                self.db.executemany("DELETE FROM render_cache WHERE key = ?", [(k,) for k in stale])

    # -- build fingerprints

    def fingerprint(self, folder: str) -> str | None:
        row = self.db.execute(
            "SELECT fingerprint FROM build_fingerprint WHERE folder = ?", (folder,)
        ).fetchone()
        return str(row[0]) if row else None

    def set_fingerprint(self, folder: str, fingerprint: str) -> None:
        with transaction(self.db):
            self.db.execute("INSERT OR REPLACE INTO build_fingerprint VALUES (?, ?)", (folder, fingerprint))

    # -- the last build of a folder: valid while the content tree is the same and `now` stays in a window

    def build_record(self, folder: str, signature: str, now: dt.datetime) -> Any | None:
        """The report of the last build of folder, if it was made from this very tree and at a time when
        the same articles were published as are at `now`; else None."""
        row = self.db.execute(
            "SELECT signature, valid_from, valid_until, report FROM build_record WHERE folder = ?", (folder,)
        ).fetchone()
        if row is None or row[0] != signature:
            return None
        if not dt.datetime.fromisoformat(row[1]) <= now < dt.datetime.fromisoformat(row[2]):
            return None
        try:
            return pickle.loads(row[3])  # noqa: S301 - our own cache
        except Exception:
            return None

    def forget_build_record(self, folder: str) -> None:
        """Whatever writes the folder outside `build` (a `run`) makes the last build's record stale."""
        with transaction(self.db):
            self.db.execute("DELETE FROM build_record WHERE folder = ?", (folder,))

    def set_build_record(
        self, folder: str, signature: str, window: tuple[dt.datetime, dt.datetime], report: object
    ) -> None:
        with transaction(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO build_record VALUES (?, ?, ?, ?, ?)",
                (folder, signature, window[0].isoformat(), window[1].isoformat(), pickle.dumps(report)),
            )
