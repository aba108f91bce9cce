"""Caches in the state database: the article index, rendered entries, the feeds' keys and the last build.

Everything here can be thrown away: deleting the tables costs one cold build, never a wrong output.
So the tables live beside the state's own (digests, deliveries) in the same SQLite file, on the same
plumbing (`db.py`), but carry no schema migrations: a cache table from another version is simply
dropped and rebuilt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import marshal
import pickle
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Any

from .content import Article, IndexRow, from_micros, micros, unpack
from .db import CHUNK, meta_version, select_in, transaction
from .errors import Problem

if TYPE_CHECKING:
    from .render import RenderedEntry

CACHE_VERSION = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parse_cache (
    key TEXT PRIMARY KEY, rel TEXT NOT NULL, stamp TEXT NOT NULL,
    ok INTEGER NOT NULL, draft INTEGER NOT NULL, publish_us INTEGER, expiry_us INTEGER, date_us INTEGER,
    slug TEXT, entry_id TEXT, derived INTEGER NOT NULL, url_path TEXT, publish_iso TEXT,
    recorded INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
-- The folder's listing (content.listing) the rows were last brought up to date with, in parts.
CREATE TABLE IF NOT EXISTS parse_listing (
    prefix TEXT NOT NULL, part INTEGER NOT NULL, digest TEXT NOT NULL, lines BLOB NOT NULL,
    PRIMARY KEY (prefix, part));
-- A rowid table: its values are about a kilobyte, too large for a WITHOUT ROWID b-tree to stay fast.
CREATE TABLE IF NOT EXISTS parse_values (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS parse_by_publish ON parse_cache (publish_us, draft, expiry_us) WHERE ok = 1;
CREATE INDEX IF NOT EXISTS parse_by_expiry ON parse_cache (expiry_us, draft)
    WHERE ok = 1 AND expiry_us IS NOT NULL;
CREATE INDEX IF NOT EXISTS parse_drafts ON parse_cache (draft) WHERE ok = 1 AND draft = 1;
CREATE INDEX IF NOT EXISTS parse_by_slug ON parse_cache (slug) WHERE ok = 1;
CREATE INDEX IF NOT EXISTS parse_by_entry_id ON parse_cache (entry_id) WHERE ok = 1;
CREATE INDEX IF NOT EXISTS parse_problems ON parse_cache (ok) WHERE ok = 0;
CREATE INDEX IF NOT EXISTS parse_unrecorded ON parse_cache (publish_us)
    WHERE ok = 1 AND derived = 1 AND recorded = 0;
-- The keys of articles whose slug or entry id another article also has, kept as rows change.
CREATE TABLE IF NOT EXISTS parse_clashes (
    kind TEXT NOT NULL, value TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (kind, value, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parse_topics (
    key TEXT NOT NULL, topic_key TEXT NOT NULL, name TEXT NOT NULL, draft INTEGER NOT NULL,
    publish_us INTEGER NOT NULL, expiry_us INTEGER, date_us INTEGER NOT NULL,
    PRIMARY KEY (key, topic_key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS topics_by_publish ON parse_topics (topic_key, publish_us);
CREATE INDEX IF NOT EXISTS topics_by_date ON parse_topics (topic_key, date_us, key);
-- A Hugo site's per-file parses (hugo_content.ParseStore): pickled, keyed by the Hugo config and path.
CREATE TABLE IF NOT EXISTS hugo_parses (key TEXT PRIMARY KEY, stamp TEXT NOT NULL, value BLOB NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS render_cache (
    key TEXT PRIMARY KEY, html TEXT NOT NULL, summary TEXT NOT NULL, image TEXT NOT NULL);
-- Renderings that ran out of their budget (seconds) or failed (budget NULL): the verdict the feeds and
-- the digest both keep, until the article or the budget changes.
CREATE TABLE IF NOT EXISTS render_failures (key TEXT PRIMARY KEY, budget REAL, cause TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS build_fingerprint (folder TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feed_keys (
    folder TEXT NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (folder, name));
-- `signature`: of the folder's listing (paths and stamps); `contents`: of what the index held then.
CREATE TABLE IF NOT EXISTS build_record (
    folder TEXT PRIMARY KEY, signature TEXT NOT NULL, contents TEXT, valid_from TEXT NOT NULL,
    valid_until TEXT NOT NULL, report BLOB NOT NULL);
"""
# The page cache while many rows are added (`bulk`), in KiB (a negative cache_size): four times the default,
# which is as fast as 32 MB was on the 10k corpus and keeps a cold build's peak memory (measured: 92 MiB,
# 109 MiB with 32 MB) under a quarter of Hugo's.
_BULK_CACHE_KIB = -8_000
# Published at :now (the one rule, `content.is_published`, as SQL over the index's columns).
_PUBLISHED = "draft = 0 AND publish_us <= :now AND (expiry_us IS NULL OR expiry_us > :now)"


class Cache:
    """The article index `content.refresh` keeps, the render cache, and build fingerprints.

    The article index holds every file's parse (pickled, read back only for the few articles a build
    shows) beside the columns a build asks about every file, indexed: so an incremental build finds the
    newest articles of each feed, the clashes and the articles whose entry id is not recorded yet
    without reading the others.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.db = connection
        self._filling = False  # in `bulk`, adding to an index that was empty
        version = meta_version(self.db, "cache_meta", "version")
        if version is not None and version != CACHE_VERSION:
            self.db.executescript(
                "DROP TABLE IF EXISTS parse_cache; DROP TABLE IF EXISTS parse_topics; "
                "DROP TABLE IF EXISTS parse_values; DROP TABLE IF EXISTS parse_clashes; "
                "DROP TABLE IF EXISTS parse_listing; DROP TABLE IF EXISTS hugo_parses; "
                "DROP TABLE IF EXISTS render_cache; DROP TABLE IF EXISTS render_failures; "
                "DROP TABLE IF EXISTS build_fingerprint; DROP TABLE IF EXISTS build_record; "
                "DROP TABLE IF EXISTS feed_keys; "
                "DROP TABLE cache_meta;"
            )
        self.db.executescript(_SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO cache_meta VALUES ('version', ?)", (str(CACHE_VERSION),))

    # -- the article index (content.ArticleIndex)

    def stamps(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, stamp FROM parse_cache"))

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Many rows are about to be added: a larger page cache while they are, and when the index is
        empty (a cold build), its secondary indexes made once at the end (sorting the rows once is
        cheaper than keeping nine b-trees in order row by row). Killed midway, the next `Cache` makes
        them again (the schema's CREATE INDEX IF NOT EXISTS)."""
        (cache_pages,) = self.db.execute("PRAGMA cache_size").fetchone()
        self.db.execute(f"PRAGMA cache_size = {_BULK_CACHE_KIB}")
        empty = self.db.execute("SELECT 1 FROM parse_cache LIMIT 1").fetchone() is None
        indexes = (
            [
                (name, sql)
                for name, sql in self.db.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                    "AND tbl_name IN ('parse_cache', 'parse_topics')"
                )
            ]
            if empty
            else []
        )
        self._filling = empty
        try:
            if indexes:
                with transaction(self.db):
                    for name, _ in indexes:
                        self.db.execute(f'DROP INDEX "{name}"')
            yield
        finally:
            self._filling = False
            if indexes:
                with transaction(self.db):
                    for _, sql in indexes:
                        self.db.execute(sql)
            self.db.execute(f"PRAGMA cache_size = {int(cache_pages)}")

    def add(self, rows: Sequence[IndexRow], *, many: bool = False) -> None:
        """`many`: one of many batches (a cold build); the clashes are then found once, by the next
        `clashing`, rather than settled value by value after each batch."""
        keys = [(row.key,) for row in rows]
        with transaction(self.db):
            if not many and self._same_values(rows):
                # Read again with the same result (a file touched, or saved unchanged): only its stamp
                # is new, and nothing a build makes from the index changes.
                self.db.executemany(
                    "UPDATE parse_cache SET stamp = ? WHERE key = ?", [(row.stamp, row.key) for row in rows]
                )
                return
            self._changed()
            affected = set() if many else self._claims(keys)
            if not self._filling:  # an empty index has no old topics to forget
                self.db.executemany("DELETE FROM parse_topics WHERE key = ?", keys)
            self.db.executemany(
                "INSERT OR REPLACE INTO parse_cache VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                [(*row[:3], *row[4:14]) for row in rows],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO parse_values VALUES (?, ?)", [(row.key, row.value) for row in rows]
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO parse_topics VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (row.key, topic, name, row.draft, row.publish_us, row.expiry_us, row.date_us)
                    for row in rows
                    for topic, name in row.topics
                ],
            )
            if many:
                self.db.execute("INSERT OR REPLACE INTO cache_meta VALUES ('clashes', 'stale')")
                return
            for row in rows:
                if row.ok:
                    affected.add(("slug", row.slug or ""))
                    affected.add(("entry_id", row.entry_id or ""))
            self._settle_clashes(affected)

    def _same_values(self, rows: Sequence[IndexRow]) -> bool:
        """Every row is stored already with this very parse (the columns are made from it)."""
        query = "SELECT key, value FROM parse_values WHERE key IN ({marks})"
        stored = dict(select_in(self.db, query, [row.key for row in rows]))
        return all(stored.get(row.key) == row.value for row in rows)

    def _changed(self) -> None:
        self.db.execute(
            "INSERT INTO cache_meta VALUES ('generation', '1') "
            "ON CONFLICT (name) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def generation(self) -> int:
        """A number that changes whenever what the index holds does (not when a file is only read
        again with the same result): a build made from the same generation makes the same feeds."""
        row = self.db.execute("SELECT value FROM cache_meta WHERE name = 'generation'").fetchone()
        return int(row[0]) if row is not None else 0

    def remove(self, keys: Iterable[str]) -> None:
        gone = [(key,) for key in keys]
        if not gone:
            return
        with transaction(self.db):
            self._changed()
            affected = self._claims(gone)
            for table in ("parse_cache", "parse_values", "parse_topics"):
                self.db.executemany(f"DELETE FROM {table} WHERE key = ?", gone)  # noqa: S608
            self._settle_clashes(affected)

    def _claims(self, keys: Sequence[tuple[str]]) -> set[tuple[str, str]]:
        """The slugs and entry ids these rows claim now (before they are replaced or removed)."""
        query = "SELECT slug, entry_id FROM parse_cache WHERE ok = 1 AND key IN ({marks})"
        claims: set[tuple[str, str]] = set()
        for slug, entry_id in select_in(self.db, query, [key for (key,) in keys]):
            claims.update((("slug", slug), ("entry_id", entry_id)))
        return claims

    def _settle_clashes(self, affected: set[tuple[str, str]]) -> None:
        """Make parse_clashes right again for these slugs and entry ids (and no others changed)."""
        for kind in ("slug", "entry_id"):
            values = [(value,) for k, value in affected if k == kind]
            self.db.executemany(f"DELETE FROM parse_clashes WHERE kind = '{kind}' AND value = ?", values)  # noqa: S608
            self.db.executemany(
                f"INSERT INTO parse_clashes SELECT '{kind}', {kind}, key FROM parse_cache "  # noqa: S608
                f"WHERE ok = 1 AND {kind} = ?1 AND (SELECT count(*) FROM parse_cache "
                f"WHERE ok = 1 AND {kind} = ?1) > 1",
                values,
            )

    def listing_digests(self, prefix: str) -> dict[int, str]:
        rows = self.db.execute("SELECT part, digest FROM parse_listing WHERE prefix = ?", (prefix,))
        return dict(rows)

    def listing_parts(self, prefix: str, parts: Sequence[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        query = "SELECT part, lines FROM parse_listing WHERE prefix = ? AND part = ?"
        for part in parts:
            for n, blob in self.db.execute(query, (prefix, part)):
                lines = marshal.loads(blob)  # noqa: S302 - our own cache, written by set_listing
                found[n] = lines if isinstance(lines, list) else []
        return found

    def forget_listing(self, prefix: str, parts: Sequence[int]) -> None:
        with transaction(self.db):
            self.db.execute("DELETE FROM parse_listing WHERE prefix != ?", (prefix,))  # another folder's
            self.db.executemany(
                "DELETE FROM parse_listing WHERE prefix = ? AND part = ?", [(prefix, n) for n in parts]
            )

    def set_listing(self, prefix: str, parts: Mapping[int, tuple[str, Sequence[str]]]) -> None:
        with transaction(self.db):
            self.db.executemany(
                "INSERT OR REPLACE INTO parse_listing VALUES (?, ?, ?, ?)",
                [(prefix, n, digest, marshal.dumps(list(lines))) for n, (digest, lines) in parts.items()],
            )

    def results(self) -> dict[str, Article | Problem]:
        results: dict[str, Article | Problem] = {}
        rows = self.db.execute("SELECT rel, value FROM parse_cache JOIN parse_values USING (key)")
        for rel, value in rows:
            results[rel] = unpack(value)
        return results

    def _values(self, keys: Iterable[str]) -> list[Any]:
        """The parses of these keys, unpickled, in the order of the keys."""
        query = "SELECT key, value FROM parse_values WHERE key IN ({marks})"
        found = dict(select_in(self.db, query, sorted(keys)))
        return [unpack(found[key]) for key in sorted(found)]

    # -- what a build asks of the index

    def problems(self) -> list[Problem]:
        """What parsing said about every unreadable file."""
        return self._values(key for (key,) in self.db.execute("SELECT key FROM parse_cache WHERE ok = 0"))

    def clashing(self) -> list[Article]:
        """The articles that share a slug or an entry id with another (`content.reject_duplicates`
        decides which one keeps it; every other article is kept)."""
        if self.db.execute("SELECT 1 FROM cache_meta WHERE name = 'clashes'").fetchone():
            with transaction(self.db):
                self.db.execute("DELETE FROM parse_clashes")
                for kind in ("slug", "entry_id"):
                    self.db.execute(
                        f"INSERT INTO parse_clashes SELECT '{kind}', {kind}, key FROM parse_cache "  # noqa: S608
                        f"WHERE ok = 1 AND {kind} IN (SELECT {kind} FROM parse_cache WHERE ok = 1 "
                        f"GROUP BY {kind} HAVING count(*) > 1)"
                    )
                self.db.execute("DELETE FROM cache_meta WHERE name = 'clashes'")
        return self._values(key for (key,) in self.db.execute("SELECT DISTINCT key FROM parse_clashes"))

    def counts(self, rows: int, now: dt.datetime, skipped: Set[str]) -> tuple[int, int]:
        """(readable articles, published at `now`) of the `rows` files the index holds, not counting the
        `skipped` keys. Counted from the few that are not readable or not published (drafts, scheduled,
        expired), so the many published ones are not walked."""
        (problems,) = self.db.execute("SELECT count(*) FROM parse_cache WHERE ok = 0").fetchone()
        unpublished = {
            key
            for (key,) in self.db.execute(
                """SELECT key FROM parse_cache WHERE ok = 1 AND draft = 1
                   UNION SELECT key FROM parse_cache WHERE ok = 1 AND publish_us > :now
                   UNION SELECT key FROM parse_cache WHERE ok = 1 AND expiry_us IS NOT NULL
                       AND expiry_us <= :now""",
                {"now": micros(now)},
            )
        }
        articles = rows - problems - len(skipped)
        return articles, articles - len(unpublished - skipped)

    def unrecorded(self, now: dt.datetime) -> list[tuple[str, str, str, dt.datetime]]:
        """(key, permalink path, entry id, publish date) of each published article with a derived id
        whose first id is not recorded in the state yet (see `jobs.stable_ids`)."""
        query = (
            "SELECT key, url_path, entry_id, publish_iso FROM parse_cache "  # noqa: S608
            f"WHERE ok = 1 AND derived = 1 AND recorded = 0 AND {_PUBLISHED}"
        )
        rows = self.db.execute(query, {"now": micros(now)})
        return [(key, path, entry_id, dt.datetime.fromisoformat(iso)) for key, path, entry_id, iso in rows]

    def mark_recorded(self, keys: Sequence[str]) -> None:
        with transaction(self.db):
            for start in range(0, len(keys), CHUNK):
                chunk = list(keys[start : start + CHUNK])
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"UPDATE parse_cache SET recorded = 1 WHERE key IN ({marks})", chunk)  # noqa: S608

    def feed_candidates(self, now: dt.datetime, limit: int, skipped: Set[str]) -> list[Article]:
        """The published articles that `feeds.plan_feeds` can pick from all of them, and no others: the
        newest `limit` of the site and of each topic (with every article tied with the last), and the
        oldest article of each topic (which spells its name). Planning with these gives the plan that
        all published articles give, reading `limit` rows a feed instead of the whole site."""
        params = {"now": micros(now)}
        keys: set[str] = set()
        site = self.db.execute(
            f"SELECT key, publish_us FROM parse_cache WHERE ok = 1 AND {_PUBLISHED} "  # noqa: S608
            "ORDER BY publish_us DESC",
            params,
        )
        keys.update(_newest(site, limit, skipped))
        topics = [
            topic
            for (topic,) in self.db.execute(
                """WITH RECURSIVE t(k) AS (
                       SELECT min(topic_key) FROM parse_topics
                       UNION ALL
                       SELECT (SELECT min(topic_key) FROM parse_topics WHERE topic_key > t.k) FROM t
                       WHERE t.k IS NOT NULL)
                   SELECT k FROM t WHERE k IS NOT NULL"""
            )
        ]
        for topic in topics:
            newest = self.db.execute(
                f"SELECT key, publish_us FROM parse_topics WHERE topic_key = :topic AND {_PUBLISHED} "  # noqa: S608
                "ORDER BY publish_us DESC",
                {**params, "topic": topic},
            )
            keys.update(_newest(newest, limit, skipped))
            oldest = self.db.execute(
                # INDEXED BY: the planner would rather range over publish_us, then sort the topic's rows.
                "SELECT key FROM parse_topics INDEXED BY topics_by_date "  # noqa: S608
                f"WHERE topic_key = :topic AND {_PUBLISHED} ORDER BY date_us, key",
                {**params, "topic": topic},
            )
            for (key,) in oldest:
                if key not in skipped:
                    keys.add(key)
                    break
        return self._values(keys)

    def events_around(self, now: dt.datetime, skipped: Set[str]) -> list[dt.datetime]:
        """The publish and expiry times of articles (drafts aside) nearest to `now` on either side: all
        `jobs.publication_window` needs to know of the whole site."""
        events = []
        for column in ("publish_us", "expiry_us"):
            for operator, order in (("<=", "DESC"), (">", "ASC")):
                rows = self.db.execute(
                    f"SELECT key, {column} FROM parse_cache WHERE ok = 1 AND draft = 0 "  # noqa: S608
                    f"AND {column} IS NOT NULL AND {column} {operator} ? ORDER BY {column} {order}",
                    (micros(now),),
                )
                for key, value in rows:
                    if key not in skipped:
                        events.append(from_micros(value))
                        break
        return events

    # -- a Hugo site's per-file parses (hugo_content.ParseStore)

    def hugo_parses(self) -> dict[str, tuple[str, bytes]]:
        """(stamp, pickled parse) by key."""
        return {key: (stamp, value) for key, stamp, value in self.db.execute("SELECT * FROM hugo_parses")}

    def set_hugo_parses(self, fresh: Sequence[tuple[str, str, bytes]], keep: Set[str]) -> None:
        """Remember the fresh (key, stamp, pickled parse) rows and forget every key not in `keep`."""
        with transaction(self.db):
            self.db.executemany("INSERT OR REPLACE INTO hugo_parses VALUES (?, ?, ?)", fresh)
            stale = [(key,) for (key,) in self.db.execute("SELECT key FROM hugo_parses") if key not in keep]
            self.db.executemany("DELETE FROM hugo_parses WHERE key = ?", stale)

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

    def render_failures(self, keys: Iterable[str]) -> dict[str, tuple[float | None, str]]:
        """{key: (budget in seconds, or None when it failed; its cause)} of renderings that did not end."""
        query = "SELECT key, budget, cause FROM render_failures WHERE key IN ({marks})"
        return {key: (budget, cause) for key, budget, cause in select_in(self.db, query, list(keys))}

    def store_render_failures(
        self, failures: Mapping[str, tuple[float | None, str]], keep: set[str] | None
    ) -> None:
        """Remember these verdicts; with `keep`, forget every other one not in it."""
        with transaction(self.db):
            self.db.executemany(
                "INSERT OR REPLACE INTO render_failures VALUES (?, ?, ?)",
                [(key, budget, cause) for key, (budget, cause) in failures.items()],
            )
            if keep is not None:
                stale = {k for (k,) in self.db.execute("SELECT key FROM render_failures")} - keep
                self.db.executemany("DELETE FROM render_failures WHERE key = ?", [(k,) for k in stale])

    # -- build fingerprints

    def fingerprint(self, folder: str) -> str | None:
        row = self.db.execute(
            "SELECT fingerprint FROM build_fingerprint WHERE folder = ?", (folder,)
        ).fetchone()
        return str(row[0]) if row else None

    def set_fingerprint(self, folder: str, fingerprint: str) -> None:
        with transaction(self.db):
            self.db.execute("INSERT OR REPLACE INTO build_fingerprint VALUES (?, ?)", (folder, fingerprint))

    def feed_keys(self, folder: str) -> dict[str, str]:
        """{file name: `feeds.feed_key`} of the feeds last written into folder."""
        return dict(self.db.execute("SELECT name, key FROM feed_keys WHERE folder = ?", (folder,)))

    def set_feed_keys(self, folder: str, keys: dict[str, str]) -> None:
        with transaction(self.db):
            self.db.execute("DELETE FROM feed_keys WHERE folder = ?", (folder,))
            self.db.executemany(
                "INSERT INTO feed_keys VALUES (?, ?, ?)", [(folder, name, key) for name, key in keys.items()]
            )

    # -- the last build of a folder: valid while the content tree is the same and `now` stays in a window

    def build_record(
        self, folder: str, signature: str, now: dt.datetime, *, contents: str | None = None
    ) -> Any | None:
        """The report of the last build of folder, if it was made from this very tree (or, given
        `contents`, from an index that held the same) and at a time when the same articles were
        published as are at `now`; else None. Found by its contents, it takes the new tree's signature."""
        row = self.db.execute(
            "SELECT signature, contents, valid_from, valid_until, report FROM build_record WHERE folder = ?",
            (folder,),
        ).fetchone()
        if row is None or (row[0] != signature and (contents is None or row[1] != contents)):
            return None
        row = (row[0], *row[2:])
        if not dt.datetime.fromisoformat(row[1]) <= now < dt.datetime.fromisoformat(row[2]):
            return None
        try:
            report = pickle.loads(row[3])  # noqa: S301 - our own cache
        except Exception:
            return None
        if row[0] != signature:
            with transaction(self.db):
                self.db.execute("UPDATE build_record SET signature = ? WHERE folder = ?", (signature, folder))
        return report

    def forget_build_record(self, folder: str) -> None:
        """Whatever writes the folder outside `build` (a `run`) makes the last build's record stale."""
        with transaction(self.db):
            self.db.execute("DELETE FROM build_record WHERE folder = ?", (folder,))

    def set_build_record(
        self,
        folder: str,
        signature: str,
        window: tuple[dt.datetime, dt.datetime],
        report: object,
        *,
        contents: str | None = None,
    ) -> None:
        with transaction(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO build_record VALUES (?, ?, ?, ?, ?, ?)",
                (
                    folder,
                    signature,
                    contents,
                    window[0].isoformat(),
                    window[1].isoformat(),
                    pickle.dumps(report),
                ),
            )


def _newest(rows: Iterator[tuple[str, int]], limit: int, skipped: Set[str]) -> list[str]:
    """The first `limit` keys of rows newest first, and every later one tied with the last of them."""
    keys: list[str] = []
    last = None
    for key, published in rows:
        if key in skipped:
            continue
        if len(keys) >= limit and published != last:
            break
        keys.append(key)
        last = published
    return keys
