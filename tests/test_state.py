"""The state database: schema and migrations, what was sent, and the run lock (state.py)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest import cache
from digest import db as db_module
from digest import state as state_module
from digest.cache import Cache
from digest.db import open_database
from digest.errors import StateError
from digest.state import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Delivery,
    State,
    StoppedWaiting,
    lock_path,
    peek_history,
    run_lock,
    schema_version,
)

CST = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2025, 6, 30, 8, 0, tzinfo=CST)
PARTS = {
    "subject": "s",
    "html": "<p>h</p>",
    "text": "t",
    "encoded_html_bytes": 12,
    "warnings": [],
    "budget": 0,
}


def record(
    state: State,
    period: str = "2025-W27",
    now: dt.datetime = NOW,
    ids: tuple[str, ...] = ("a", "b"),
    recipients: tuple[str, ...] = ("x@example.com", "y@example.com"),
) -> int:
    digest = state.record_digest(
        period=period,
        since=now - dt.timedelta(days=7),
        cutoff=now,
        message_id_base="base",
        article_ids=ids,
        renders={"all": PARTS},
        deliveries=[Delivery(r, "", "all", f"<{period}.{r}>") for r in recipients],
    )
    return digest.id


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    opened = State.open(tmp_path / "state" / "state.sqlite3")
    yield opened
    opened.close()


def test_a_new_database_gets_the_current_schema_beside_the_caches(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = open_database(path)
    Cache(db)  # the feeds' caches first, as `digest build` leaves a database
    State(db)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"parse_cache", "render_cache", "digests", "deliveries", "articles_seen"} <= tables
    assert schema_version(db) == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    # Opening again migrates nothing and keeps what was recorded.
    again = State.open(path)
    assert again.history().periods == ()
    again.close()


def test_a_database_from_a_newer_digest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    State.open(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE state_meta SET value = '99' WHERE name = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="schema version 99, newer"):
        State.open(path)


def test_history_is_every_article_ever_sent_and_the_latest_cutoff(state: State) -> None:
    assert state.history().previous_cutoff is None
    record(state, "2025-W26", NOW - dt.timedelta(days=7), ids=("a",))
    record(state, "2025-W27", NOW, ids=("b", "c"))
    history = state.history()
    assert history.previous_cutoff == NOW
    assert history.sent_ids == {"a", "b", "c"}
    assert history.periods == ("2025-W26", "2025-W27")
    with pytest.raises(StateError, match="already recorded"):
        record(state, "2025-W27")


def test_a_digest_is_finished_when_no_delivery_is_left(state: State) -> None:
    digest_id = record(state)
    assert [d.status for d in state.deliveries(digest_id)] == ["pending", "pending"]
    assert [u.period for u in state.unfinished()] == ["2025-W27"]
    state.record_delivery(digest_id, "x@example.com", "sent", attempts=1, now=NOW)
    assert not state.finish_if_complete(digest_id, NOW)
    state.record_delivery(digest_id, "y@example.com", "failed", attempts=1, error="550 no", now=NOW)
    assert state.finish_if_complete(digest_id, NOW)
    assert state.unfinished() == []
    rows = {d.recipient: d for d in state.deliveries(digest_id)}
    assert rows["y@example.com"].last_error == "550 no"
    assert rows["x@example.com"].message_id == "<2025-W27.x@example.com>"


def test_a_newer_digest_gives_up_on_deferred_recipients_of_older_ones(state: State) -> None:
    old = record(state, "2025-W26", NOW - dt.timedelta(days=7))
    state.record_delivery(old, "x@example.com", "sent", attempts=1, now=NOW)
    state.record_delivery(old, "y@example.com", "deferred", attempts=3, error="452 full", now=NOW)
    assert not state.finish_if_complete(old, NOW)
    record(state, "2025-W27")
    rows = {d.recipient: d for d in state.deliveries(old)}
    assert rows["y@example.com"].status == "failed"
    assert rows["y@example.com"].last_error == "gave up: 452 full"
    assert [u.period for u in state.unfinished()] == ["2025-W27"]


def test_rendered_parts_are_stored_as_they_were(state: State) -> None:
    digest_id = record(state)
    assert state.renders(digest_id) == {"all": PARTS}


def test_articles_seen_are_known_entry_ids(state: State) -> None:
    state.record_articles_seen(["a"])
    state.record_articles_seen(["a", "b"])
    state.stable_entry_ids({"/posts/c/": ("c", NOW)})
    assert state.known_entry_ids() == {"a", "b", "c"}


def test_peek_history_writes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "state.sqlite3"
    assert peek_history(missing).previous_cutoff is None
    assert not missing.parent.exists()
    # A database only `digest build` has used has no state tables: still empty, and none is created.
    built = tmp_path / "built.sqlite3"
    db = open_database(built)
    Cache(db)
    db.close()
    assert peek_history(built).sent_ids == frozenset()
    db = sqlite3.connect(built)
    assert schema_version(db) == 0
    db.close()


def test_the_lock_makes_the_second_run_wait_then_fail_clearly(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with run_lock(path, timeout=1):
        started = time.monotonic()
        with pytest.raises(StateError) as caught, run_lock(path, timeout=0.3, poll=0.05):
            pass
        assert time.monotonic() - started >= 0.3
    assert f"another digest run (pid {os.getpid()})" in str(caught.value)
    assert "held the run lock for over 0.3 s" in str(caught.value)
    with run_lock(path, timeout=0):  # released: the next one gets it at once
        pass


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from digest.state import run_lock\n"
            "with run_lock(Path(sys.argv[1]), 5):\n    print('locked', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateError, match=f"pid {holder.pid}"), run_lock(path, timeout=0.1):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with run_lock(path, timeout=2):
            assert lock_path(path).read_text().strip() == str(os.getpid())
    finally:
        holder.kill()
        holder.wait()


def test_a_stop_ends_the_wait_for_the_lock_at_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    stop = threading.Event()
    stop.set()
    with run_lock(path, timeout=1):
        started = time.monotonic()
        with (
            pytest.raises(StoppedWaiting, match=f"another digest run \\(pid {os.getpid()}\\)"),
            run_lock(path, timeout=60, stop=stop),
        ):
            pass
        assert time.monotonic() - started < 1
    with run_lock(path, timeout=0, stop=stop):  # a free lock is taken even when stopping: no wait
        pass


def test_state_and_cache_share_one_database_module() -> None:
    assert state_module.transaction is cache.transaction is db_module.transaction
    assert not hasattr(state_module, "_transaction")
    assert not hasattr(cache, "open_database")


# ---------------------------------------------------------------- migrations


def version_1_database(path: Path) -> None:
    """A state database as digest 0.1 (schema version 1) left it, with one digest sent."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE state_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.executescript(MIGRATIONS[1])
    db.execute("INSERT INTO state_meta VALUES ('schema_version', '1')")
    db.execute(
        "INSERT INTO digests VALUES (1, '2025-W26', ?, ?, 'sent', 'base', ?)",
        ("2025-06-16T08:00:00+08:00", "2025-06-23T08:00:00+08:00", "2025-06-23T08:01:00+08:00"),
    )
    db.execute("INSERT INTO digest_articles VALUES (1, 'tag:example.com,2025-06-20:/posts/a/')")
    stamp = NOW.isoformat()
    db.execute("INSERT INTO articles_seen VALUES ('seen-id', 'hash', ?, ?)", (stamp, stamp))
    db.commit()
    db.close()


def test_a_version_1_database_is_migrated_and_keeps_its_history(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    version_1_database(path)
    opened = State.open(path)
    try:
        assert schema_version(opened.db) == SCHEMA_VERSION == 4
        assert opened.feed_owners("feeds") == {}  # version 4: the feed files' topics, none yet
        history = opened.history()
        assert history.periods == ("2025-W26",)
        assert history.sent_ids == {"tag:example.com,2025-06-20:/posts/a/"}
        assert opened.stable_entry_ids({"/posts/b/": ("id-b", NOW)}) == {"/posts/b/": "id-b"}
        # Version 3 keeps the ids runs have seen and drops the columns nothing read.
        assert opened.known_entry_ids() == {"seen-id", "id-b"}
        columns = [row[1] for row in opened.db.execute("PRAGMA table_info(articles_seen)")]
        assert columns == ["entry_id"]
    finally:
        opened.close()
    assert peek_history(path).periods == ("2025-W26",)


# ---------------------------------------------------------------- entry ids, stable for life


def test_an_entry_id_is_the_one_first_recorded_for_its_path(state: State) -> None:
    first = state.stable_entry_ids(
        {
            "/posts/a/": ("tag:example.com,2025-06-25:/posts/a/", NOW),
            "/posts/b/": ("tag:example.com,2025-06-26:/posts/b/", NOW),
        }
    )
    assert first == {
        "/posts/a/": "tag:example.com,2025-06-25:/posts/a/",
        "/posts/b/": "tag:example.com,2025-06-26:/posts/b/",
    }
    # a's date is corrected (so is the id derived from it), c is new, b is gone for now.
    corrected = NOW + dt.timedelta(days=2)
    later = state.stable_entry_ids(
        {
            "/posts/a/": ("tag:example.com,2025-06-27:/posts/a/", corrected),
            "/posts/c/": ("tag:example.com,2025-06-28:/posts/c/", corrected),
        }
    )
    assert later == {
        "/posts/a/": "tag:example.com,2025-06-25:/posts/a/",
        "/posts/c/": "tag:example.com,2025-06-28:/posts/c/",
    }
    # b comes back under its first id, and the first publish date is what was recorded first.
    assert state.stable_entry_ids({"/posts/b/": ("other", corrected)}) == {
        "/posts/b/": "tag:example.com,2025-06-26:/posts/b/"
    }
    rows = dict(state.db.execute("SELECT path, first_published FROM entry_ids").fetchall())
    assert rows["/posts/a/"] == NOW.isoformat()
    assert state.stable_entry_ids({}) == {}


def test_stable_entry_ids_for_many_articles_in_one_transaction(state: State) -> None:
    candidates = {f"/posts/{n}/": (f"id-{n}", NOW) for n in range(2_000)}  # more than one IN (…) chunk
    statements: list[str] = []
    state.db.set_trace_callback(statements.append)
    try:
        assert state.stable_entry_ids(candidates) == {
            path: entry_id for path, (entry_id, _) in candidates.items()
        }
    finally:
        state.db.set_trace_callback(None)
    assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT")] == ["BEGIN IMMEDIATE", "COMMIT"]
    changed = {path: (f"new-{path}", NOW) for path in candidates}
    assert state.stable_entry_ids(changed) == {path: entry_id for path, (entry_id, _) in candidates.items()}


def test_a_migration_holds_whole_statements_triggers_and_literal_semicolons(tmp_path: Path) -> None:
    """db.migrate runs each statement whole (sqlite3.complete_statement), so a trigger's body and a ';'
    in a string literal stay in one statement."""
    import sqlite3

    from digest.db import migrate as migrate_schema
    from digest.db import open_database, statements

    script = """
    CREATE TABLE log (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
    CREATE TRIGGER log_no_update BEFORE UPDATE ON log
    BEGIN SELECT RAISE(ABORT, 'append-only; never rewritten'); END;
    INSERT INTO log (text) VALUES ('a; b');
    """
    assert len(statements(script)) == 3
    db = open_database(tmp_path / "x.sqlite3")
    try:
        migrate_schema(db, {1: script}, table="x_meta")
        assert db.execute("SELECT text FROM log").fetchall() == [("a; b",)]
        with pytest.raises(sqlite3.IntegrityError, match="append-only; never rewritten"):
            db.execute("UPDATE log SET text = 'c'")
    finally:
        db.close()
    with pytest.raises(StateError, match="an unfinished SQL statement"):
        statements("CREATE TRIGGER t BEFORE UPDATE ON log BEGIN SELECT 1;")
