"""What was sent, durably: the articles seen, the digests, one row per (digest, recipient), the run lock,
and the feed entry id each article's path was first published with (`State.stable_entry_ids`).

The tables live in the state database beside the caches (`cache.py`), both on `db.py`'s plumbing, but
unlike the caches they are never thrown away, so they carry a schema version (`state_meta`) and
migrations. Every change is one
`BEGIN IMMEDIATE … COMMIT`: a kill at any instant leaves either the old or the new state, never half.

The exactly-once protocol `jobs.run` follows with these functions:
1. `record_digest` stores, in one transaction and before anything is delivered, the digest (period,
   cut-off, the ids of every article in it), the rendered parts of every variant (subject, HTML, text)
   and one `pending` delivery per recipient with its Message-ID.
2. `record_delivery` marks one recipient `sent` (or `failed`/`deferred`) in its own transaction, right
   after the server accepted (or refused) the message.
3. A later run finds the digest `sending` (`unfinished`) and delivers the stored parts, byte for byte,
   to the `pending` and `deferred` rows only. The one message that can go twice is the one accepted
   but not yet recorded at the instant of death; it carries the same Message-ID.

The rendered parts are stored, not re-rendered, so an article edited (or deleted) between a kill and
the resume does not make two versions of one digest: the rest of the recipients get what the first ones
got, and the edit goes out, if at all, as what it is: an article already sent is never "new" again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .db import meta_version, open_database, open_read_only, select_in, transaction
from .db import migrate as migrate_schema
from .errors import StateError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4

# Migration n brings the schema from version n-1 to n. Append, never edit: a database in the field may
# be at any earlier version. Each runs in the same transaction as the version bump.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE articles_seen (
        entry_id TEXT PRIMARY KEY,
        content_hash TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        changed TEXT NOT NULL
    );
    CREATE TABLE digests (
        id INTEGER PRIMARY KEY,
        period TEXT NOT NULL UNIQUE,
        since TEXT NOT NULL,
        cutoff TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('sending', 'sent')),
        message_id_base TEXT NOT NULL,
        finished TEXT
    );
    CREATE TABLE digest_articles (
        digest_id INTEGER NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
        entry_id TEXT NOT NULL,
        PRIMARY KEY (digest_id, entry_id)
    ) WITHOUT ROWID;
    CREATE INDEX digest_articles_entry ON digest_articles(entry_id);
    CREATE TABLE digest_renders (
        digest_id INTEGER NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
        variant TEXT NOT NULL,
        parts TEXT NOT NULL,
        PRIMARY KEY (digest_id, variant)
    );
    CREATE TABLE deliveries (
        digest_id INTEGER NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
        recipient TEXT NOT NULL,
        name TEXT NOT NULL,
        variant TEXT NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL
            CHECK (status IN ('pending', 'sent', 'failed', 'deferred', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        updated TEXT,
        PRIMARY KEY (digest_id, recipient),
        FOREIGN KEY (digest_id, variant) REFERENCES digest_renders(digest_id, variant)
    );
    CREATE INDEX deliveries_status ON deliveries(digest_id, status);
    CREATE TABLE schedule_runs (job TEXT PRIMARY KEY, last_run TEXT NOT NULL);
    """,
    # An article's feed entry id, fixed the first time its permalink path is seen, so that correcting
    # its date (part of the derived id) does not make feed readers show it again as a new entry.
    2: """
    CREATE TABLE entry_ids (
        path TEXT PRIMARY KEY,
        entry_id TEXT NOT NULL,
        first_published TEXT NOT NULL
    );
    """,
    # articles_seen keeps only which entry ids runs have seen (`known_entry_ids`): the content hash and
    # the first-seen and changed times were written and never read.
    3: """
    CREATE TABLE articles_seen_new (entry_id TEXT PRIMARY KEY) WITHOUT ROWID;
    INSERT INTO articles_seen_new SELECT entry_id FROM articles_seen;
    DROP TABLE articles_seen;
    ALTER TABLE articles_seen_new RENAME TO articles_seen;
    """,
    # Which topic each topic feed file was first published for (by the topic's key), per feeds folder:
    # feed readers subscribe to a file, so once published a file stays its topic's, whichever topic's
    # articles are older later (`feeds.plan_feeds`).
    4: """
    CREATE TABLE feed_owners (
        folder TEXT NOT NULL,
        name TEXT NOT NULL,
        topic_key TEXT NOT NULL,
        PRIMARY KEY (folder, name)
    ) WITHOUT ROWID;
    """,
}

_FEED_OWNERS = "SELECT name, topic_key FROM feed_owners WHERE folder = ?"

DeliveryStatus = Literal["pending", "sent", "failed", "deferred", "cancelled"]
# Deliveries a run still has to make: never tried (or killed in flight), or refused for now (4xx).
OPEN_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "deferred")
_OPEN_SQL = "('pending', 'deferred')"


@dataclass(frozen=True)
class DigestRecord:
    id: int
    period: str
    since: dt.datetime
    cutoff: dt.datetime  # the `now` the digest was composed at; also its messages' Date
    status: Literal["sending", "sent"]
    message_id_base: str
    article_ids: tuple[str, ...]


@dataclass(frozen=True)
class Delivery:
    recipient: str
    name: str
    variant: str  # which stored rendering this recipient gets (one per distinct topic set)
    message_id: str
    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class History:
    """What composing the next digest needs to know about the earlier ones."""

    previous_cutoff: dt.datetime | None
    sent_ids: frozenset[str]
    periods: tuple[str, ...]  # of every recorded digest, oldest first


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("state times must be timezone-aware")
    return value.isoformat()


def schema_version(db: sqlite3.Connection) -> int:
    """0 for a new database, or one only `build` used (no state_meta yet)."""
    return meta_version(db, "state_meta", "schema_version") or 0


def migrate(db: sqlite3.Connection) -> None:
    """Bring the state tables to SCHEMA_VERSION, one transaction per step; refuse a newer database."""
    migrate_schema(db, MIGRATIONS, table="state_meta", what="state database")


class State:
    """The state tables on one connection; open with `State.open(path)` (creates and migrates)."""

    def __init__(self, db: sqlite3.Connection, path: Path | None = None) -> None:
        self.db = db
        self.path = path
        self._identity = _file_identity(path) if path is not None else None
        self._keep_empty = False
        try:
            migrate(db)
        except sqlite3.Error as exc:
            raise StateError(f"cannot migrate the state database: {exc}") from None

    @classmethod
    def open(cls, path: Path) -> State:
        db = open_database(path)
        try:
            return cls(db, path)
        except StateError as exc:
            db.close()
            exc.path = exc.path or str(path)
            raise

    def close(self) -> None:
        self.db.close()
        if self._keep_empty and self.path is not None:
            with contextlib.suppress(OSError):
                os.truncate(self.path, 0)

    @contextlib.contextmanager
    def _recording(self) -> Iterator[None]:
        """One transaction, then a check that it went into the file the run opened.

        A state file deleted, emptied or replaced under a running send would let the next run send
        everything again. A deleted file lives on in this open connection, so it is put back from it,
        with everything recorded so far; in every case the run stops here with an error.
        """
        with transaction(self.db):
            yield
        if self.path is None or self._identity is None:
            return
        now = _file_identity(self.path)
        if now is not None and now[:2] == self._identity[:2] and now[2] > 0:
            return
        if now is None:
            restored = self._restore(self.path)
            raise StateError(
                "the state database disappeared during the run; stopped before anything could go twice",
                path=str(self.path),
                hint=f"it was put back from the open database ({restored}); run again to finish",
            )
        if now[:2] == self._identity[:2]:
            # Closing would checkpoint this run's WAL into the emptied file and leave a partial database
            # that the next run takes for a whole one: keep the file empty (refused by the next run).
            self._keep_empty = True
            raise StateError(
                "the state database was emptied during the run; stopped before anything could go twice",
                path=str(self.path),
                hint="restore it from a backup before the next run",
            )
        saved = self._restore(self.path.with_name(self.path.name + ".recovered"))
        raise StateError(
            "the state database was replaced during the run; stopped before anything could go twice",
            path=str(self.path),
            hint=f"what this run recorded is in {saved}",
        )

    def _restore(self, target: Path) -> str:
        try:
            copy = sqlite3.connect(target)
            try:
                self.db.backup(copy)
            finally:
                copy.close()
        except (OSError, sqlite3.Error) as exc:
            return f"could not be saved: {exc}"
        return str(target)

    # -- articles seen

    def record_articles_seen(self, entry_ids: Iterable[str]) -> None:
        """The entry ids of every readable article a run saw (see `known_entry_ids`)."""
        with self._recording():
            self.db.executemany(
                "INSERT OR IGNORE INTO articles_seen VALUES (?)", [(entry_id,) for entry_id in entry_ids]
            )

    # -- entry ids, stable for an article's life

    def stable_entry_ids(self, candidates: Mapping[str, tuple[str, dt.datetime]]) -> dict[str, str]:
        """The entry id of every candidate, by permalink path: the one first recorded for that path.

        `candidates` maps a path to (the entry id derived from the article today, its publish date).
        A path not seen before is recorded with those, in the same transaction as the lookup, so an
        article whose date is corrected later keeps the id it was first published with.
        """
        paths = list(candidates)
        with self._recording():
            self._record_entry_ids(candidates)
            known = self.recorded_entry_ids(paths)
        return {path: known[path] for path in paths}

    def record_entry_ids(self, candidates: Mapping[str, tuple[str, dt.datetime]]) -> None:
        """`stable_entry_ids` without the answer: the paths not seen before are recorded."""
        with self._recording():
            self._record_entry_ids(candidates)

    def _record_entry_ids(self, candidates: Mapping[str, tuple[str, dt.datetime]]) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO entry_ids VALUES (?, ?, ?)",
            [(path, entry_id, _iso(published)) for path, (entry_id, published) in candidates.items()],
        )

    def feed_owners(self, folder: str) -> dict[str, str]:
        """{feed file name below `folder`, without `.xml` (`c`, `fr/c`): the key of the topic it was first
        published for}."""
        return dict(self.db.execute(_FEED_OWNERS, (folder,)))

    def record_feed_owners(self, folder: str, owners: Mapping[str, str]) -> None:
        """Remember the topic of each feed file not published before (a file keeps its first topic)."""
        with self._recording():
            self.db.executemany(
                "INSERT OR IGNORE INTO feed_owners VALUES (?, ?, ?)",
                [(folder, name, key) for name, key in owners.items()],
            )

    def recorded_entry_ids(self, paths: Sequence[str]) -> dict[str, str]:
        """The entry ids recorded for those of these permalink paths that have one."""
        return _entry_ids_for(self.db, paths)

    def known_entry_ids(self, among: Sequence[str] | None = None) -> frozenset[str]:
        """Every entry id digest has published or seen: the first ids of permalinks, and the articles
        seen by runs. Of two articles that claim one slug or id, the one known here keeps it. With
        `among`, only those of these ids that are known."""
        if among is not None:
            return frozenset(
                entry_id
                for table in ("entry_ids", "articles_seen")
                for (entry_id,) in select_in(
                    self.db,
                    f"SELECT entry_id FROM {table} WHERE entry_id IN ({{marks}})",  # noqa: S608
                    among,
                )
            )
        rows = self.db.execute("SELECT entry_id FROM entry_ids UNION SELECT entry_id FROM articles_seen")
        return frozenset(entry_id for (entry_id,) in rows)

    # -- digests

    def history(self) -> History:
        return read_history(self.db)

    def digest_for_period(self, period: str) -> DigestRecord | None:
        row = self.db.execute("SELECT * FROM digests WHERE period = ?", (period,)).fetchone()
        return self._digest(row) if row else None

    def unfinished(self) -> list[DigestRecord]:
        """Digests a killed or failing run left `sending`, oldest first: finish these before anything."""
        rows = self.db.execute("SELECT * FROM digests WHERE status = 'sending' ORDER BY id").fetchall()
        return [self._digest(row) for row in rows]

    def _digest(self, row: Sequence[Any]) -> DigestRecord:
        ids = self.db.execute(
            "SELECT entry_id FROM digest_articles WHERE digest_id = ? ORDER BY entry_id", (row[0],)
        ).fetchall()
        return DigestRecord(
            id=row[0],
            period=row[1],
            since=dt.datetime.fromisoformat(row[2]),
            cutoff=dt.datetime.fromisoformat(row[3]),
            status=row[4],
            message_id_base=row[5],
            article_ids=tuple(i for (i,) in ids),
        )

    def record_digest(
        self,
        *,
        period: str,
        since: dt.datetime,
        cutoff: dt.datetime,
        message_id_base: str,
        article_ids: Sequence[str],
        renders: Mapping[str, Mapping[str, Any]],
        deliveries: Sequence[Delivery],
    ) -> DigestRecord:
        """The digest, what it holds, its rendered parts and a pending row per recipient: one transaction.

        Older digests still waiting on `deferred` recipients give up on them here: a newer digest
        supersedes them, so a mailbox that is full for weeks does not get a stale digest later.
        This one commit is synced to disk (synchronous=FULL): it is what every later run relies on.
        Delivery records keep WAL's NORMAL sync, which survives any crash of the process (kill -9);
        only a power cut can lose the last few, and those messages then go again with their Message-ID.
        """
        with _fully_synced(self.db), self._recording():
            if self.db.execute("SELECT 1 FROM digests WHERE period = ?", (period,)).fetchone():
                raise StateError(f"a digest for {period} is already recorded")
            self.db.execute(
                "UPDATE deliveries SET status = 'failed', last_error = 'gave up: ' || last_error "
                "WHERE status = 'deferred'"
            )
            self.db.execute(
                "UPDATE digests SET status = 'sent', finished = ? WHERE status = 'sending' AND NOT EXISTS "
                "(SELECT 1 FROM deliveries d WHERE d.digest_id = digests.id AND d.status = 'pending')",
                (_iso(cutoff),),
            )
            cursor = self.db.execute(
                "INSERT INTO digests (period, since, cutoff, status, message_id_base) "
                "VALUES (?, ?, ?, 'sending', ?)",
                (period, _iso(since), _iso(cutoff), message_id_base),
            )
            digest_id = int(cursor.lastrowid or 0)
            self.db.executemany(
                "INSERT INTO digest_articles VALUES (?, ?)",
                [(digest_id, entry_id) for entry_id in sorted(set(article_ids))],
            )
            self.db.executemany(
                "INSERT INTO digest_renders VALUES (?, ?, ?)",
                [
                    (digest_id, variant, json.dumps(dict(parts), ensure_ascii=False, sort_keys=True))
                    for variant, parts in renders.items()
                ],
            )
            self.db.executemany(
                "INSERT INTO deliveries (digest_id, recipient, name, variant, message_id, status) "
                "VALUES (?, ?, ?, ?, ?, 'pending')",
                [(digest_id, d.recipient, d.name, d.variant, d.message_id) for d in deliveries],
            )
        record = self.digest_for_period(period)
        assert record is not None
        return record

    def renders(self, digest_id: int) -> dict[str, dict[str, Any]]:
        rows = self.db.execute("SELECT variant, parts FROM digest_renders WHERE digest_id = ?", (digest_id,))
        return {variant: json.loads(parts) for variant, parts in rows}

    # -- deliveries

    def deliveries(self, digest_id: int, statuses: Sequence[DeliveryStatus] = ()) -> list[Delivery]:
        """The digest's deliveries (only those in `statuses` when given), in the order they were planned."""
        query = (
            "SELECT recipient, name, variant, message_id, status, attempts, last_error "
            "FROM deliveries WHERE digest_id = ?"
        )
        args: list[Any] = [digest_id]
        if statuses:
            query += f" AND status IN ({','.join('?' * len(statuses))})"
            args.extend(statuses)
        rows = self.db.execute(query + " ORDER BY rowid", args).fetchall()
        return [Delivery(*row) for row in rows]

    def record_delivery(
        self,
        digest_id: int,
        recipient: str,
        status: DeliveryStatus,
        *,
        attempts: int,
        error: str = "",
        now: dt.datetime,
    ) -> None:
        """One recipient's outcome, in its own transaction; attempts add up across runs."""
        with self._recording():
            self.db.execute(
                "UPDATE deliveries SET status = ?, attempts = attempts + ?, last_error = ?, updated = ? "
                "WHERE digest_id = ? AND recipient = ?",
                (status, attempts, error, _iso(now), digest_id, recipient),
            )

    def find_delivery(self, *, token: str = "", message_id: str = "") -> tuple[str, str] | None:
        """(recipient, period) of the delivery with this Message-ID, or whose Message-ID holds this
        id (a bounce's VERP address); None when there is none."""
        query = "SELECT d.recipient, g.period FROM deliveries d JOIN digests g ON g.id = d.digest_id WHERE "
        if token:
            row = self.db.execute(query + "d.message_id LIKE ?", (f"%.{token}@%",)).fetchone()
        else:
            row = self.db.execute(query + "d.message_id = ?", (message_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def finish_if_complete(self, digest_id: int, now: dt.datetime) -> bool:
        """Mark the digest `sent` when no delivery is left to make; True when it is (or already was)."""
        with self._recording():
            open_rows = self.db.execute(
                f"SELECT count(*) FROM deliveries WHERE digest_id = ? AND status IN {_OPEN_SQL}",  # noqa: S608
                (digest_id,),
            ).fetchone()[0]
            if open_rows == 0:
                self.db.execute(
                    "UPDATE digests SET status = 'sent', finished = coalesce(finished, ?) WHERE id = ?",
                    (_iso(now), digest_id),
                )
        return bool(open_rows == 0)

    # -- the scheduler's record of its runs

    def last_scheduled_run(self, job: str) -> dt.datetime | None:
        row = self.db.execute("SELECT last_run FROM schedule_runs WHERE job = ?", (job,)).fetchone()
        return dt.datetime.fromisoformat(row[0]) if row else None

    def record_scheduled_run(self, job: str, when: dt.datetime) -> None:
        with self._recording():
            self.db.execute("INSERT OR REPLACE INTO schedule_runs VALUES (?, ?)", (job, _iso(when)))


def read_history(db: sqlite3.Connection) -> History:
    """Previous cut-off, every article id ever put in a digest, and the periods; empty for a new database."""
    if schema_version(db) < 1:
        return History(None, frozenset(), ())
    rows = db.execute("SELECT period, cutoff FROM digests ORDER BY id").fetchall()
    cutoffs = [dt.datetime.fromisoformat(cutoff) for _, cutoff in rows]
    sent = frozenset(entry_id for (entry_id,) in db.execute("SELECT DISTINCT entry_id FROM digest_articles"))
    return History(max(cutoffs) if cutoffs else None, sent, tuple(period for period, _ in rows))


@contextlib.contextmanager
def _fully_synced(db: sqlite3.Connection) -> Iterator[None]:
    """Commits inside are synced to disk (synchronous=FULL), then back to WAL's NORMAL."""
    db.execute("PRAGMA synchronous=FULL")
    try:
        yield
    finally:
        db.execute("PRAGMA synchronous=NORMAL")


def _entry_ids_for(db: sqlite3.Connection, paths: Sequence[str]) -> dict[str, str]:
    query = "SELECT path, entry_id FROM entry_ids WHERE path IN ({marks})"
    return dict(select_in(db, query, paths))


def peek_history(path: Path) -> History:
    """The history, read-only (for previews)."""
    with open_read_only(path) as db:
        if db is None:
            return History(None, frozenset(), ())
        try:
            return read_history(db)
        except sqlite3.Error as exc:
            raise StateError(f"cannot read the state database: {exc}", path=str(path)) from None


def peek_entry_ids(path: Path, paths: Sequence[str]) -> dict[str, str]:
    """The entry ids recorded for these permalink paths, read-only (for previews); {} without a state."""
    with open_read_only(path) as db:
        if db is None:
            return {}
        try:
            return _entry_ids_for(db, paths)
        except sqlite3.OperationalError:
            return {}  # a state from before entry ids were recorded


def peek_feed_owners(path: Path, folder: str) -> dict[str, str]:
    """`State.feed_owners`, read-only (for `check`); {} without a state, or one from before."""
    with open_read_only(path) as db:
        if db is None:
            return {}
        try:
            return dict(db.execute(_FEED_OWNERS, (folder,)))
        except sqlite3.OperationalError:
            return {}  # a state from before feed owners were recorded


# ---------------------------------------------------------------- the run lock


class StoppedWaiting(StateError):
    """Asked to stop (SIGTERM to the scheduler) while waiting for another run's lock: nothing was done."""


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """(device, inode, size) of the file, or None when it is gone."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size


def lock_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


@contextlib.contextmanager
def run_lock(
    state_path: Path,
    timeout: float,
    *,
    poll: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> Iterator[None]:
    """Hold `<state>.lock` exclusively (flock) for one run; wait up to `timeout` seconds, then fail.

    While waiting it polls every `poll` seconds, and gives up at once with `StoppedWaiting` when `stop`
    is set (then it waits on `stop` rather than calling `sleep`), so a scheduler told to stop never
    sits out another run's lock.

    An flock, unlike a lock row in SQLite, is released by the kernel when its holder dies, even by
    SIGKILL, so a killed run never leaves a stale lock, and it holds no database transaction open.
    """
    path = lock_path(state_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateError(f"cannot open the run lock: {exc.strerror}", path=str(path)) from None
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
                if stop is not None and stop.is_set():
                    raise StoppedWaiting(
                        f"stopped while waiting for another digest run (pid {holder}) to finish",
                        path=str(path),
                    ) from None
                if time.monotonic() >= deadline:
                    raise StateError(
                        f"another digest run (pid {holder}) has held the run lock for over {timeout:g} s",
                        path=str(path),
                        hint="wait for it to finish; `digest schedule` and `digest run` take turns",
                    ) from None
                if not waited:
                    log.info(
                        "another digest run (pid %s) holds the run lock; waiting up to %g s", holder, timeout
                    )
                    waited = True
                if stop is not None:
                    stop.wait(poll)
                else:
                    sleep(poll)
        # Who holds the lock, for the message another run prints; on a full disk it stays unsaid.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
