"""The subscriber store on a real SQLite file: lifecycle, suppression, consent log, limits, import."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest import subscriptions as store
from digest.errors import StateError
from digest.subscriptions import Limits, SignupRequest

NOW = dt.datetime(2025, 6, 30, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
MANY = Limits(requests_per_ip=1_000_000)  # the mail limits alone


def minutes(n: float) -> dt.datetime:
    return NOW + dt.timedelta(minutes=n)


def open_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    store.migrate(db)
    return db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_db(tmp_path / "state.sqlite3")
    yield connection
    connection.close()


def ask(
    db: sqlite3.Connection, address: str, at: dt.datetime = NOW, limits: Limits = MANY, **fields: object
) -> store.Signup:
    request = SignupRequest(
        address=address,
        ip=str(fields.pop("ip", "192.0.2.1")),
        user_agent="Mozilla/5.0 test",
        source="subscribe-page",
        form_version="subscribe-page-1",
        **fields,  # type: ignore[arg-type]
    )
    return store.request_subscription(db, request, at, limits)


def consent(db: sqlite3.Connection, address: str | None = None) -> list[dict[str, object]]:
    rows = list(csv.DictReader(io.StringIO(store.export_consent(db))))
    return [row for row in rows if address is None or row["email"] == address]


def subscribed(db: sqlite3.Connection, address: str, at: dt.datetime = NOW, **fields: object) -> None:
    signup = ask(db, address, at, **fields)
    assert signup.status == "send"
    assert store.confirm(db, signup.address, signup.request_id, "192.0.2.9", at) == "confirmed"


def test_migrating_twice_is_harmless_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    open_db(path).close()
    db = open_db(path)
    assert db.execute("SELECT value FROM subscriptions_meta").fetchone() == (str(store.SCHEMA_VERSION),)
    db.execute("UPDATE subscriptions_meta SET value = '99'")
    with pytest.raises(StateError, match="schema version 99, newer"):
        store.migrate(db)


def test_an_address_is_keyed_in_its_normalised_form() -> None:
    assert store.normalise_address(" Reader@Example.COM ") == "reader@example.com"
    assert store.normalise_address("a@Bücher.de") == "a@xn--bcher-kva.de"
    for bad in ["", "reader", "a@b", "a@localhost", '"q"@example.com', "张@example.com", "x" * 400]:
        with pytest.raises(store.AddressError):
            store.normalise_address(bad)


def test_a_header_injection_address_is_invalid_and_nothing_is_stored(db: sqlite3.Connection) -> None:
    for address in [
        "victim@example.com\r\nBcc: everyone@example.com",
        "a@example.com\nX: y",
        "a@example.com\0",
    ]:
        assert ask(db, address).status == "invalid"
    assert consent(db) == []
    assert db.execute("SELECT count(*) FROM subscribers").fetchone() == (0,)


def test_request_then_confirm_activates_what_was_requested_and_logs_both(db: sqlite3.Connection) -> None:
    signup = ask(db, "Reader@Example.com", name="张三", language="en", topics=frozenset({"ai"}))
    assert (signup.status, signup.address, signup.topics) == ("send", "reader@example.com", {"ai"})
    assert store.recipients(db) == []  # pending gets no digest
    pending = store.subscriber(db, "reader@example.com")
    assert pending is not None and pending.status == "pending"

    later = minutes(30)
    assert store.confirm(db, "reader@example.com", signup.request_id, "198.51.100.7", later) == "confirmed"
    [active] = store.recipients(db)
    assert (active.address, active.name, active.language, active.topics) == (
        "reader@example.com",
        "张三",
        "en",
        {"ai"},
    )
    assert active.confirmed == later
    request, confirmation = consent(db, "reader@example.com")
    assert request["event"] == "subscribe-request"
    assert (request["ip"], request["user_agent"], request["source"]) == (
        "192.0.2.1",
        "Mozilla/5.0 test",
        "subscribe-page",
    )
    details = json.loads(str(request["details"]))
    assert details == {"form_version": "subscribe-page-1", "language": "en", "name": "张三", "topics": ["ai"]}
    assert request["at"] == NOW.astimezone(dt.UTC).isoformat(timespec="microseconds")
    assert (confirmation["event"], confirmation["ip"]) == ("confirm", "198.51.100.7")
    assert json.loads(str(confirmation["details"])) == {"request": signup.request_id}
    # Confirming again changes nothing and logs nothing.
    assert store.confirm(db, "reader@example.com", signup.request_id, "x", minutes(40)) == "already-active"
    assert len(consent(db)) == 2


def test_a_confirmation_applies_the_request_it_was_mailed_for_not_a_later_one(db: sqlite3.Connection) -> None:
    first = ask(db, "reader@example.com", topics=frozenset({"ai"}))
    ask(db, "reader@example.com", at=minutes(1), topics=frozenset({"chips"}))  # by someone else, unmailed
    store.confirm(db, "reader@example.com", first.request_id, "", minutes(2))
    [active] = store.recipients(db)
    assert active.topics == {"ai"}


def test_a_confirmation_of_another_address_or_no_request_changes_nothing(db: sqlite3.Connection) -> None:
    signup = ask(db, "reader@example.com")
    assert store.confirm(db, "other@example.com", signup.request_id, "", NOW) == "unknown"
    assert store.confirm(db, "reader@example.com", signup.request_id + 99, "", NOW) == "unknown"
    assert store.recipients(db) == []


def test_a_thousand_signups_of_one_address_get_one_confirmation_mail(db: sqlite3.Connection) -> None:
    statuses = [
        ask(db, "reader@example.com", at=NOW + dt.timedelta(milliseconds=i)).status for i in range(1000)
    ]
    assert statuses.count("send") == 1
    assert statuses[0] == "send"
    assert set(statuses[1:]) == {"limited-mail"}


def test_confirmation_mails_are_limited_to_one_per_ten_minutes_and_three_a_day(
    db: sqlite3.Connection,
) -> None:
    def due(at: dt.datetime) -> bool:
        return ask(db, "reader@example.com", at=at).status == "send"

    assert due(minutes(0))
    assert not due(minutes(9.99))
    assert due(minutes(10.01))
    assert due(minutes(20.02))
    assert not due(minutes(40))  # a fourth within the day
    assert not due(minutes(24 * 60 - 1))
    assert due(minutes(24 * 60 + 1))  # the first one is more than a day old


def test_subscribe_requests_are_limited_per_ip_and_a_refused_one_writes_nothing(
    db: sqlite3.Connection,
) -> None:
    limits = Limits(requests_per_ip=3, ip_window=dt.timedelta(hours=1))
    statuses = [ask(db, f"r{i}@example.com", limits=limits, ip="203.0.113.5").status for i in range(5)]
    assert statuses == ["send", "send", "send", "limited-ip", "limited-ip"]
    assert len(consent(db)) == 3
    assert ask(db, "r9@example.com", limits=limits, ip="203.0.113.6").status == "send"
    assert ask(db, "r8@example.com", at=minutes(61), limits=limits, ip="203.0.113.5").status == "send"


def test_an_active_subscriber_asking_again_gets_no_mail(db: sqlite3.Connection) -> None:
    subscribed(db, "reader@example.com")
    assert ask(db, "reader@example.com", at=minutes(60)).status == "already-active"


def test_unsubscribe_suppresses_is_idempotent_and_logs_once(db: sqlite3.Connection) -> None:
    subscribed(db, "reader@example.com")
    assert store.unsubscribe(db, "reader@example.com", "one-click", minutes(5), "192.0.2.3")
    assert not store.unsubscribe(db, "reader@example.com", "one-click", minutes(6), "192.0.2.3")
    assert store.recipients(db) == []
    assert store.is_suppressed(db, "reader@example.com")
    current = store.subscriber(db, "reader@example.com")
    assert current is not None and current.status == "unsubscribed"
    last = consent(db, "reader@example.com")[-1]
    assert (last["event"], last["method"], last["ip"]) == ("unsubscribe", "one-click", "192.0.2.3")
    assert [row["event"] for row in consent(db)].count("unsubscribe") == 1


def test_an_address_never_listed_can_be_suppressed_too(db: sqlite3.Connection) -> None:
    assert store.unsubscribe(db, "gone@example.com", "one-click", NOW)
    assert store.suppressed_among(db, ["gone@example.com", "other@example.com"]) == {"gone@example.com"}


def test_an_old_confirmation_link_does_not_undo_an_unsubscribe_but_a_fresh_one_does(
    db: sqlite3.Connection,
) -> None:
    old = ask(db, "reader@example.com")
    store.confirm(db, old.address, old.request_id, "", minutes(1))
    store.unsubscribe(db, "reader@example.com", "page", minutes(2))
    assert store.confirm(db, old.address, old.request_id, "", minutes(3)) == "unknown"
    assert store.recipients(db) == []

    fresh = ask(db, "reader@example.com", at=minutes(30))
    assert fresh.status == "send"
    assert store.recipients(db) == []  # a request alone brings nothing back
    assert store.confirm(db, fresh.address, fresh.request_id, "", minutes(31)) == "confirmed"
    assert [s.address for s in store.recipients(db)] == ["reader@example.com"]
    assert not store.is_suppressed(db, "reader@example.com")
    assert json.loads(str(consent(db)[-1]["details"]))["lifted_suppression"] == "unsubscribe"


def test_hard_bounces_and_complaints_suppress_with_their_method(db: sqlite3.Connection) -> None:
    subscribed(db, "bounced@example.com")
    subscribed(db, "angry@example.com")
    store.suppress(db, "bounced@example.com", "hard-bounce", minutes(1), detail="550 5.1.1 no such user")
    store.suppress(db, "angry@example.com", "complaint", minutes(1))
    assert store.recipients(db) == []
    methods = {row["email"]: row["method"] for row in consent(db) if row["event"] == "unsubscribe"}
    assert methods == {"bounced@example.com": "bounce", "angry@example.com": "complaint"}


def test_preference_changes_are_logged_with_old_and_new_values(db: sqlite3.Connection) -> None:
    subscribed(db, "reader@example.com", name="Li", topics=frozenset({"ai"}))
    change = {"name": "Li Si", "language": "zh-CN", "topics": frozenset({"ai", "chips"}), "ip": "192.0.2.4"}
    assert store.update_preferences(db, "reader@example.com", now=minutes(5), **change) == "saved"  # type: ignore[arg-type]
    assert store.update_preferences(db, "reader@example.com", now=minutes(6), **change) == "unchanged"  # type: ignore[arg-type]
    last = consent(db, "reader@example.com")[-1]
    assert last["event"] == "preferences"
    assert json.loads(str(last["details"])) == {
        "language": ["", "zh-CN"],
        "name": ["Li", "Li Si"],
        "topics": [["ai"], ["ai", "chips"]],
    }
    [active] = store.recipients(db)
    assert (active.name, active.topics) == ("Li Si", {"ai", "chips"})
    store.unsubscribe(db, "reader@example.com", "page", minutes(7))
    assert store.update_preferences(db, "reader@example.com", now=minutes(8), **change) == "not-subscribed"  # type: ignore[arg-type]


def test_long_fields_are_clipped_not_refused(db: sqlite3.Connection) -> None:
    signup = ask(db, "reader@example.com", name="名" * 10_000)
    store.confirm(db, signup.address, signup.request_id, "", NOW)
    [active] = store.recipients(db)
    assert active.name == "名" * store.MAX_NAME


def test_the_consent_log_is_append_only(db: sqlite3.Connection) -> None:
    subscribed(db, "reader@example.com")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE consent_log SET ip = 'forged'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM consent_log")
    assert len(consent(db)) == 2


def test_purge_forgets_signups_unconfirmed_for_seven_days_but_keeps_the_log(db: sqlite3.Connection) -> None:
    ask(db, "old@example.com")
    ask(db, "recent@example.com", at=NOW + dt.timedelta(days=6))
    subscribed(db, "active@example.com")
    assert store.purge(db, NOW + dt.timedelta(days=7, seconds=1)) == 1
    assert store.subscriber(db, "old@example.com") is None
    assert store.subscriber(db, "recent@example.com") is not None
    assert [s.address for s in store.recipients(db)] == ["active@example.com"]
    assert len(consent(db, "old@example.com")) == 1
    assert db.execute("SELECT count(*) FROM rate_events WHERE at < ?", ("2025-07-06",)).fetchone() == (0,)


CSV = """\
email,name,topics
new@example.com,New Reader,AI; 投融资
Active@Example.com,Overwritten?,
pending@example.com,Was Pending,
gone@example.com,Unsubscribed,
not-an-address,,
NEW@example.com,Twice,
"""


def test_import_adds_activates_keeps_and_never_brings_back_a_suppressed_address(
    db: sqlite3.Connection,
) -> None:
    subscribed(db, "active@example.com", name="Chosen", topics=frozenset({"chips"}))
    ask(db, "pending@example.com")
    subscribed(db, "gone@example.com")
    store.unsubscribe(db, "gone@example.com", "one-click", minutes(1))

    report = store.import_csv(db, CSV, "subscribers.csv", minutes(2))
    assert (report.added, report.activated, report.kept) == (1, 1, 1)
    assert report.suppressed == ["gone@example.com"]
    assert [(p.line, p.message.split(":")[0]) for p in report.problems] == [
        (6, "'not-an-address' is not a valid email address"),
        (7, "'NEW@example.com' is listed twice (first at subscribers.csv"),
    ]
    by_address = {s.address: s for s in store.recipients(db)}
    assert set(by_address) == {"active@example.com", "new@example.com", "pending@example.com"}
    assert by_address["new@example.com"].topics == {"ai", "投融资"}
    assert (by_address["active@example.com"].name, by_address["active@example.com"].topics) == (
        "Chosen",
        {"chips"},
    )
    # Every run imports the file again: nothing changes, nothing comes back.
    again = store.import_csv(db, CSV, "subscribers.csv", minutes(3))
    assert (again.added, again.activated, again.kept, again.suppressed) == (0, 0, 3, ["gone@example.com"])
    assert not any(s.address == "gone@example.com" for s in store.recipients(db))
    imports = [row for row in consent(db) if row["event"] == "import"]
    assert [(row["email"], row["source"]) for row in imports] == [
        ("new@example.com", "subscribers.csv:2"),
        ("pending@example.com", "subscribers.csv:4"),
    ]


def test_export_lists_subscribers_and_suppressed_addresses(db: sqlite3.Connection) -> None:
    subscribed(db, "reader@example.com", name="Reader", topics=frozenset({"ai", "chips"}))
    store.unsubscribe(db, "never@example.com", "one-click", NOW)
    rows = list(csv.DictReader(io.StringIO(store.export_subscribers(db))))
    assert [(r["email"], r["name"], r["topics"], r["status"], r["suppressed"]) for r in rows] == [
        ("never@example.com", "", "", "unsubscribed", "unsubscribe"),
        ("reader@example.com", "Reader", "ai;chips", "active", ""),
    ]
    assert rows[1]["confirmed"] == NOW.astimezone(dt.UTC).isoformat(timespec="microseconds")
    assert [r["event"] for r in consent(db)] == ["subscribe-request", "confirm", "unsubscribe"]


def test_a_failing_import_leaves_nothing_half_done(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON subscribers WHEN new.address = 'boom@example.com' "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    with pytest.raises(sqlite3.DatabaseError, match="disk full"):
        store.import_csv(db, "email\nfirst@example.com\nboom@example.com\n", "subscribers.csv", NOW)
    assert db.execute("SELECT count(*) FROM subscribers").fetchone() == (0,)
    assert consent(db) == []


# ---------------------------------------------------------------- the configured list, imported every run


def test_the_configured_list_is_synced_each_run_and_never_brings_back_a_suppressed_address(
    db: sqlite3.Connection,
) -> None:
    def sync(*rows: tuple[str, str, frozenset[str]], at: dt.datetime = NOW) -> store.SyncReport:
        return store.sync_list(db, [(*row, "") for row in rows], "config", at)

    everyone = frozenset[str]()
    first = sync(
        ("A@example.com", "A", everyone), ("b@example.com", "B", frozenset({"ai"})), ("nope", "", everyone)
    )
    assert (first.added, first.kept, first.removed) == (2, 0, 0)
    assert [p.message.split(":")[0] for p in first.problems] == ["'nope' is not a valid email address"]
    store.unsubscribe(db, "b@example.com", "one-click", minutes(1))
    subscribed(db, "web@example.com", at=minutes(2))  # a signup: not the list's to remove
    # b@ is still listed, with a corrected name: it stays suppressed; a@ is gone from the list.
    second = sync(("b@example.com", "B2", everyone), at=minutes(3))
    assert (second.added, second.kept, second.removed, second.suppressed) == (0, 0, 1, ["b@example.com"])
    assert [s.address for s in store.recipients(db)] == ["web@example.com"]
    assert store.why_not_send(db, "B@example.com") == "suppressed (unsubscribe)"
    assert store.why_not_send(db, "a@example.com") == "no longer subscribed"
    assert store.why_not_send(db, "web@example.com") is None
    # Listed again, a@ comes back (it was removed, not suppressed), with the list's corrections later on.
    assert sync(("a@example.com", "A", everyone), at=minutes(4)).added == 1
    sync(("a@example.com", "A (fixed)", frozenset({"ai"})), at=minutes(5))
    row = store.subscriber(db, "a@example.com")
    assert row is not None and (row.name, row.topics) == ("A (fixed)", frozenset({"ai"}))
    # Once the subscriber chooses for themselves, the list no longer overwrites it.
    assert (
        store.update_preferences(
            db, "a@example.com", name="Mine", language="en", topics=everyone, ip="", now=minutes(6)
        )
        == "saved"
    )
    sync(("a@example.com", "A (fixed)", frozenset({"ai"})), at=minutes(7))
    row = store.subscriber(db, "a@example.com")
    assert row is not None and (row.name, row.topics) == ("Mine", everyone)
    events = [
        (e["email"], e["event"], e["method"]) for e in consent(db) if e["event"] in ("import", "remove")
    ]
    assert ("a@example.com", "remove", "no longer listed") in events


def test_the_configured_lists_language_is_stored_and_corrected(db: sqlite3.Connection) -> None:
    store.sync_list(db, [("a@example.com", "A", frozenset(), "en")], "config", NOW)
    assert [(s.address, s.language) for s in store.recipients(db)] == [("a@example.com", "en")]
    store.sync_list(db, [("a@example.com", "A", frozenset(), "zh-CN")], "config", minutes(1))
    assert [(s.address, s.language) for s in store.recipients(db)] == [("a@example.com", "zh-CN")]
    report = store.import_csv(db, "email,language\nb@example.com,fr\nc@example.com,??\n", "x.csv", minutes(2))
    assert report.added == 1 and [p.line for p in report.problems] == [3]
    row = store.subscriber(db, "b@example.com")
    assert row is not None and row.language == "fr"
