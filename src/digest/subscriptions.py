"""The subscriber store on SQLite: subscribers, the suppression list, the consent log, rate limits.

Every function takes an open connection (autocommit mode, as `open_database` makes it) and the `now` it
acts at, and runs as one `BEGIN IMMEDIATE … COMMIT`, so a kill leaves the old or the new state.

- A subscriber is `pending` from the first request until it is confirmed, then `active`; an unsubscribe
  makes it `unsubscribed`. Only `active` and not suppressed addresses get a digest (`recipients`).
- The suppression list is keyed by the normalised address and outlives the subscriber: an unsubscribe, a
  hard bounce or a complaint puts the address there; an import skips it; only confirming a subscribe
  request made after the suppression lifts it.
- The consent log is append-only (triggers refuse UPDATE and DELETE): each subscribe request (time, IP,
  user agent, source, topics, form version), confirmation (time, IP), preference change and unsubscribe
  (time, method). A confirmation activates exactly what the confirmed request asked for.
- Rate limits: at most one confirmation mail per address per `mail_interval`, `mails_per_day` a day, and
  `requests_per_ip` subscribe requests per `ip_window`. A refused request writes nothing.

The schema has its own version (`subscriptions_meta`) and migrations, numbered like `state.py`'s, so it
can join the state database's migrations as they are.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from email_validator import EmailNotValidError, validate_email

from .db import migrate as migrate_schema
from .db import select_in, transaction
from .errors import DigestError, Problem, StateError
from .subscribers import language_problem, parse_csv
from .text import one_line

SCHEMA_VERSION = 1
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE subscribers (
        address TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        language TEXT NOT NULL DEFAULT '',
        topics TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'unsubscribed')),
        source TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL,
        confirmed TEXT,
        updated TEXT NOT NULL
    );
    CREATE INDEX subscribers_status ON subscribers(status, updated);
    CREATE TABLE suppressions (
        address TEXT PRIMARY KEY,
        reason TEXT NOT NULL
            CHECK (reason IN ('unsubscribe', 'hard-bounce', 'soft-bounces', 'complaint')),
        since TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE consent_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        address TEXT NOT NULL,
        event TEXT NOT NULL CHECK (
            event IN ('subscribe-request', 'confirm', 'preferences', 'unsubscribe', 'import', 'remove')
        ),
        ip TEXT NOT NULL DEFAULT '',
        user_agent TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '',
        method TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX consent_log_address ON consent_log(address, id);
    -- The consent log is append-only: what was agreed to, and when, is never rewritten.
    CREATE TRIGGER consent_log_no_update BEFORE UPDATE ON consent_log
    BEGIN SELECT RAISE(ABORT, 'the consent log is append-only'); END;
    CREATE TRIGGER consent_log_no_delete BEFORE DELETE ON consent_log
    BEGIN SELECT RAISE(ABORT, 'the consent log is append-only'); END;
    CREATE TABLE rate_events (
        kind TEXT NOT NULL CHECK (kind IN ('mail', 'ip')),
        key TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX rate_events_key ON rate_events(kind, key, at);
    -- One row per address, digest and kind: reading the same bounce twice counts once.
    CREATE TABLE bounces (
        address TEXT NOT NULL,
        period TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('hard', 'soft')),
        at TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (address, period, kind)
    ) WITHOUT ROWID;
    """,
}

Status = Literal["pending", "active", "unsubscribed"]
Reason = Literal["unsubscribe", "hard-bounce", "soft-bounces", "complaint"]
LANGUAGES = ("zh-CN", "en")
MAX_NAME = 100  # characters, after folding to one line
MAX_FIELD = 256  # user agent, source, form version: clipped, never refused
_METHOD_OF_REASON = {
    "unsubscribe": "",
    "hard-bounce": "bounce",
    "soft-bounces": "bounce",
    "complaint": "complaint",
}
# Soft bounces in this many of the last digests suppress an address…
SOFT_BOUNCES = 3
# …out of these last digests.
SOFT_BOUNCE_DIGESTS = 5


class AddressError(DigestError):
    """Not an address digest can send to (email-validator's reason in the message)."""


@dataclass(frozen=True)
class Limits:
    mail_interval: dt.timedelta = dt.timedelta(minutes=10)
    mails_per_day: int = 3
    requests_per_ip: int = 20
    ip_window: dt.timedelta = dt.timedelta(hours=1)
    unconfirmed_for: dt.timedelta = dt.timedelta(days=7)


@dataclass(frozen=True)
class Subscriber:
    address: str
    name: str
    language: str  # "" = the site's
    topics: frozenset[str]  # topic keys; empty = every topic
    status: Status
    created: dt.datetime
    confirmed: dt.datetime | None


@dataclass(frozen=True)
class SignupRequest:
    address: str  # as typed: normalised here
    name: str = ""
    language: str = ""
    topics: frozenset[str] = frozenset()
    ip: str = ""
    user_agent: str = ""
    source: str = ""
    form_version: str = ""


SignupStatus = Literal["invalid", "limited-ip", "already-active", "limited-mail", "send"]


@dataclass(frozen=True)
class Signup:
    """What a subscribe request did; only `send` means "mail a confirmation for request `request_id`"."""

    status: SignupStatus
    address: str = ""
    request_id: int = 0
    name: str = ""
    language: str = ""
    topics: frozenset[str] = frozenset()


@dataclass
class ImportReport:
    added: int = 0
    activated: int = 0  # pending (never confirmed) signups the file lists
    kept: int = 0  # already active: the file does not overwrite what the subscriber chose
    suppressed: list[str] = field(default_factory=list)  # skipped: unsubscribed, bounced or complained
    problems: list[Problem] = field(default_factory=list)


# ---------------------------------------------------------------- plumbing


def migrate(db: sqlite3.Connection) -> None:
    """Bring the subscriber tables to `SCHEMA_VERSION` (each step in one transaction with its bump)."""
    try:
        migrate_schema(db, MIGRATIONS, table="subscriptions_meta", what="subscriber tables")
    except sqlite3.Error as exc:
        raise StateError(f"cannot migrate the subscriber tables: {exc}") from None


def _at(moment: dt.datetime) -> str:
    """A UTC time of fixed width, so that text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _clip(value: str, limit: int = MAX_FIELD) -> str:
    return one_line(value)[:limit]


def normalise_address(raw: str) -> str:
    """The address as digest keys it: email-validator's normalised ASCII form (an internationalised
    domain in its IDNA form), lower-cased, so `Reader@Example.COM` and `reader@example.com` are one
    subscriber and one suppression. Raises `AddressError` for anything smtplib could not send to."""
    if len(raw) > 320:
        raise AddressError("the address is too long")
    try:
        valid = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from None
    assert valid.ascii_email is not None  # always set without SMTPUTF8
    return valid.ascii_email.lower()


def normalise_language(value: str) -> str:
    """One of `LANGUAGES`, or "" (the site's) for anything else."""
    lowered = value.strip().lower()
    if lowered.startswith("zh"):
        return "zh-CN"
    return "en" if lowered.startswith("en") else ""


def clean_name(value: str) -> str:
    return _clip(value, MAX_NAME)


def _log(db: sqlite3.Connection, now: dt.datetime, address: str, event: str, **fields: Any) -> int:
    details = fields.pop("details", {})
    columns = {"ip": "", "user_agent": "", "source": "", "method": "", **fields}
    cursor = db.execute(
        "INSERT INTO consent_log (at, address, event, ip, user_agent, source, method, details) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            _at(now),
            address,
            event,
            _clip(columns["ip"], 64),
            _clip(columns["user_agent"]),
            _clip(columns["source"]),
            columns["method"],
            _json(details),
        ),
    )
    return int(cursor.lastrowid or 0)


def _row(db: sqlite3.Connection, address: str) -> Subscriber | None:
    row = db.execute(
        "SELECT address, name, language, topics, status, created, confirmed FROM subscribers "
        "WHERE address = ?",
        (address,),
    ).fetchone()
    return None if row is None else _subscriber(row)


def _subscriber(row: Sequence[Any]) -> Subscriber:
    created = _time(row[5])
    assert created is not None
    return Subscriber(row[0], row[1], row[2], frozenset(json.loads(row[3])), row[4], created, _time(row[6]))


def _suppression(db: sqlite3.Connection, address: str) -> tuple[str, str] | None:
    row = db.execute("SELECT reason, since FROM suppressions WHERE address = ?", (address,)).fetchone()
    return None if row is None else (row[0], row[1])


def _count(db: sqlite3.Connection, kind: str, key: str, since: dt.datetime) -> int:
    row = db.execute(
        "SELECT count(*) FROM rate_events WHERE kind = ? AND key = ? AND at > ?", (kind, key, _at(since))
    ).fetchone()
    return int(row[0])


# ---------------------------------------------------------------- the lifecycle


def request_subscription(
    db: sqlite3.Connection, request: SignupRequest, now: dt.datetime, limits: Limits = Limits()
) -> Signup:
    """Record a subscribe request; `Signup.status == "send"` when a confirmation mail is due.

    The caller answers the same whatever the status: it is never shown to the person who asked."""
    try:
        address = normalise_address(request.address)
    except AddressError:
        return Signup("invalid")
    name, language = clean_name(request.name), normalise_language(request.language)
    topics = frozenset(request.topics)
    with transaction(db):
        if _count(db, "ip", request.ip, now - limits.ip_window) >= limits.requests_per_ip:
            return Signup("limited-ip", address)
        db.execute("INSERT INTO rate_events VALUES ('ip', ?, ?)", (request.ip, _at(now)))
        current = _row(db, address)
        if current is not None and current.status == "active":
            return Signup("already-active", address)
        db.execute(
            "INSERT INTO subscribers (address, name, language, topics, status, source, created, updated) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (address) DO UPDATE SET "
            "name = excluded.name, language = excluded.language, topics = excluded.topics, "
            "status = 'pending', source = excluded.source, updated = excluded.updated",
            (address, name, language, _json(sorted(topics)), _clip(request.source), _at(now), _at(now)),
        )
        request_id = _log(
            db,
            now,
            address,
            "subscribe-request",
            ip=request.ip,
            user_agent=request.user_agent,
            source=request.source,
            details={
                "name": name,
                "language": language,
                "topics": sorted(topics),
                "form_version": _clip(request.form_version, 64),
            },
        )
        if (
            _count(db, "mail", address, now - limits.mail_interval) >= 1
            or _count(db, "mail", address, now - dt.timedelta(days=1)) >= limits.mails_per_day
        ):
            return Signup("limited-mail", address, request_id)
        db.execute("INSERT INTO rate_events VALUES ('mail', ?, ?)", (address, _at(now)))
    return Signup("send", address, request_id, name, language, topics)


ConfirmStatus = Literal["confirmed", "already-active", "unknown"]


def confirm(
    db: sqlite3.Connection, address: str, request_id: int, ip: str, now: dt.datetime
) -> ConfirmStatus:
    """Activate the subscription that request `request_id` asked for (its topics, name, language).

    `unknown`: no such request for this address, or it was made before the address was suppressed
    (an old confirmation link must not undo a later unsubscribe)."""
    with transaction(db):
        row = db.execute(
            "SELECT at, source, details FROM consent_log "
            "WHERE id = ? AND address = ? AND event = 'subscribe-request'",
            (request_id, address),
        ).fetchone()
        if row is None:
            return "unknown"
        requested, source, details = row[0], row[1], json.loads(row[2])
        suppression = _suppression(db, address)
        if suppression is not None and suppression[1] >= requested:
            return "unknown"
        current = _row(db, address)
        if current is not None and current.status == "active":
            return "already-active"
        db.execute(
            "INSERT INTO subscribers (address, name, language, topics, status, source, created, confirmed, "
            "updated) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET "
            "name = excluded.name, language = excluded.language, topics = excluded.topics, "
            "status = 'active', confirmed = excluded.confirmed, updated = excluded.updated",
            (
                address,
                details.get("name", ""),
                details.get("language", ""),
                _json(sorted(details.get("topics", []))),
                source,
                requested,
                _at(now),
                _at(now),
            ),
        )
        lifted: dict[str, Any] = {}
        if suppression is not None:
            db.execute("DELETE FROM suppressions WHERE address = ?", (address,))
            lifted = {"lifted_suppression": suppression[0]}
        _log(db, now, address, "confirm", ip=ip, details={"request": request_id, **lifted})
    return "confirmed"


def suppress(
    db: sqlite3.Connection,
    address: str,
    reason: Reason,
    now: dt.datetime,
    *,
    method: str = "",
    ip: str = "",
    detail: str = "",
) -> bool:
    """Put `address` on the suppression list and mark it unsubscribed; False when it already was.

    `method` is how (one-click, page, admin; bounce and complaint by default for those reasons)."""
    with transaction(db):
        if _suppression(db, address) is not None:
            return False
        db.execute(
            "INSERT INTO suppressions VALUES (?, ?, ?, ?)", (address, reason, _at(now), _clip(detail, 1000))
        )
        db.execute(
            "UPDATE subscribers SET status = 'unsubscribed', updated = ? WHERE address = ?",
            (_at(now), address),
        )
        how = method or _METHOD_OF_REASON[reason]
        _log(db, now, address, "unsubscribe", ip=ip, method=how, details={"reason": reason})
    return True


def unsubscribe(db: sqlite3.Connection, address: str, method: str, now: dt.datetime, ip: str = "") -> bool:
    """One-click, the page or an admin: idempotent, and for an address not (or no longer) listed too."""
    return suppress(db, address, "unsubscribe", now, method=method, ip=ip)


PreferencesStatus = Literal["saved", "unchanged", "not-subscribed"]


def update_preferences(
    db: sqlite3.Connection,
    address: str,
    *,
    name: str,
    language: str,
    topics: frozenset[str],
    ip: str,
    now: dt.datetime,
) -> PreferencesStatus:
    """Change what an active subscriber gets; each change is logged with its old and new value."""
    wanted = {"name": clean_name(name), "language": normalise_language(language), "topics": sorted(topics)}
    with transaction(db):
        current = _row(db, address)
        if current is None or current.status != "active":
            return "not-subscribed"
        before = {"name": current.name, "language": current.language, "topics": sorted(current.topics)}
        changes = {key: [before[key], value] for key, value in wanted.items() if before[key] != value}
        if not changes:
            return "unchanged"
        db.execute(
            # The subscriber's own choice from now on: a configured list no longer overwrites it.
            "UPDATE subscribers SET name = ?, language = ?, topics = ?, source = 'preferences', updated = ? "
            "WHERE address = ?",
            (wanted["name"], wanted["language"], _json(wanted["topics"]), _at(now), address),
        )
        _log(db, now, address, "preferences", ip=ip, details=changes)
    return "saved"


def subscriber(db: sqlite3.Connection, address: str) -> Subscriber | None:
    return _row(db, address)


def is_suppressed(db: sqlite3.Connection, address: str) -> bool:
    return _suppression(db, address) is not None


def suppressed_among(db: sqlite3.Connection, addresses: Iterable[str]) -> set[str]:
    """Which of `addresses` (normalised) are suppressed: what a running send checks before each batch."""
    query = "SELECT address FROM suppressions WHERE address IN ({marks})"
    return {row[0] for row in select_in(db, query, list(addresses))}


def recipients(db: sqlite3.Connection) -> list[Subscriber]:
    """Who gets the digest: active and not suppressed, oldest first (one import: in its order)."""
    rows = db.execute(
        "SELECT address, name, language, topics, status, created, confirmed FROM subscribers "
        "WHERE status = 'active' AND address NOT IN (SELECT address FROM suppressions) "
        "ORDER BY created, rowid"
    ).fetchall()
    return [_subscriber(row) for row in rows]


def purge(db: sqlite3.Connection, now: dt.datetime, limits: Limits = Limits()) -> int:
    """Forget signups never confirmed within `unconfirmed_for` of their last request, and rate events
    older than a day; returns how many signups went. The consent log keeps their requests."""
    with transaction(db):
        cursor = db.execute(
            "DELETE FROM subscribers WHERE status = 'pending' AND updated < ?",
            (_at(now - limits.unconfirmed_for),),
        )
        db.execute(
            "DELETE FROM rate_events WHERE at < ?",
            (_at(now - max(dt.timedelta(days=1), limits.ip_window)),),
        )
    return cursor.rowcount


# ---------------------------------------------------------------- import and export


def import_csv(db: sqlite3.Connection, text: str, where: str, now: dt.datetime) -> ImportReport:
    """Import a subscribers CSV (`email,name,topics,language`, as `subscribers.parse_csv` reads it), in one
    transaction: new addresses become active, pending ones are activated, active ones are kept as the
    subscriber left them, and suppressed ones are skipped (listed in the report)."""
    report = ImportReport()
    seen: dict[str, str] = {}
    rows = parse_csv(text, where)
    with transaction(db):
        for row in rows:
            if isinstance(row, Problem):
                report.problems.append(row)
                continue
            place, line, raw, name, topics, language = row
            shown = f"{place}:{line}" if line else place
            try:
                address = normalise_address(raw)
            except AddressError as exc:
                report.problems.append(
                    Problem(
                        place, f"{raw!r} is not a valid email address: {exc}", line, "this row is skipped"
                    )
                )
                continue
            wrong_language = language_problem(language)
            if wrong_language is not None:
                report.problems.append(Problem(place, wrong_language, line, "this row is skipped"))
                continue
            if address in seen:
                report.problems.append(
                    Problem(place, f"{raw!r} is listed twice (first at {seen[address]})", line, "skipped")
                )
                continue
            seen[address] = shown
            if _suppression(db, address) is not None:
                report.suppressed.append(address)
                continue
            current = _row(db, address)
            if current is not None and current.status == "active":
                report.kept += 1
                continue
            db.execute(
                "INSERT INTO subscribers (address, name, language, topics, status, source, created, updated) "
                "VALUES (?, ?, ?, ?, 'active', 'import', ?, ?) ON CONFLICT (address) DO UPDATE SET "
                "name = excluded.name, language = excluded.language, topics = excluded.topics, "
                "status = 'active', updated = excluded.updated",
                (address, clean_name(name), language, _json(sorted(topics)), _at(now), _at(now)),
            )
            details = {"name": name, "topics": sorted(topics), "language": language}
            _log(db, now, address, "import", source=shown, details=details)
            if current is None:
                report.added += 1
            else:
                report.activated += 1
    return report


@dataclass
class SyncReport:
    """What importing a configured list did (`sync_list`)."""

    added: int = 0
    kept: int = 0
    removed: int = 0  # listed by the last import from this source, no longer listed
    suppressed: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def sync_list(
    db: sqlite3.Connection,
    entries: Sequence[tuple[str, str, frozenset[str], str]],
    source: str,
    now: dt.datetime,
) -> SyncReport:
    """Make the active subscribers from `source` (`[subscribers] file`, `list`) the `entries`
    (address, name, topic keys, language tag), in one transaction: a new address becomes active; an
    active one the list added gets the list's name, topics and language, one from elsewhere (a signup,
    a change of preferences) is kept as its subscriber left it; a suppressed one is skipped, whatever
    the list says; an address this source listed before and lists no longer is removed (not
    suppressed: listing it again brings it back). Addresses that came from elsewhere (a signup,
    `digest subscribers import`) are left alone."""
    report = SyncReport()
    wanted: set[str] = set()
    with transaction(db):
        for raw, name, topics, language in entries:
            try:
                address = normalise_address(raw)
            except AddressError as exc:
                report.problems.append(
                    Problem(source, f"{raw!r} is not a valid email address: {exc}", None, "skipped")
                )
                continue
            wanted.add(address)
            if _suppression(db, address) is not None:
                report.suppressed.append(address)
                continue
            current = _row(db, address)
            if current is not None and current.status == "active":
                owned = db.execute(
                    "SELECT 1 FROM subscribers WHERE address = ? AND source = ?", (address, _clip(source))
                ).fetchone()
                wanted_row = (clean_name(name), frozenset(topics), language)
                if owned and (current.name, current.topics, current.language) != wanted_row:
                    # The list's own row, corrected in the list: the list is its authority.
                    db.execute(
                        "UPDATE subscribers SET name = ?, topics = ?, language = ?, updated = ? "
                        "WHERE address = ?",
                        (wanted_row[0], _json(sorted(topics)), language, _at(now), address),
                    )
                    _log(
                        db,
                        now,
                        address,
                        "import",
                        source=source,
                        details={"name": name, "topics": sorted(topics), "language": language},
                    )
                report.kept += 1
                continue
            db.execute(
                "INSERT INTO subscribers (address, name, language, topics, status, source, created, updated) "
                "VALUES (?, ?, ?, ?, 'active', ?, ?, ?) ON CONFLICT (address) DO UPDATE SET "
                "name = excluded.name, language = excluded.language, topics = excluded.topics, "
                "status = 'active', source = excluded.source, updated = excluded.updated",
                (
                    address,
                    clean_name(name),
                    language,
                    _json(sorted(topics)),
                    _clip(source),
                    _at(now),
                    _at(now),
                ),
            )
            details = {"name": name, "topics": sorted(topics), "language": language}
            _log(db, now, address, "import", source=source, details=details)
            report.added += 1
        listed = db.execute(
            "SELECT address FROM subscribers WHERE source = ? AND status = 'active'", (_clip(source),)
        ).fetchall()
        for (address,) in listed:
            if address not in wanted:
                db.execute("DELETE FROM subscribers WHERE address = ?", (address,))
                _log(db, now, address, "remove", source=source, method="no longer listed")
                report.removed += 1
    return report


def why_not_send(db: sqlite3.Connection, address: str) -> str | None:
    """None when `address` is to get mail now (active, not suppressed), else why not: what a running
    send asks right before each message, so an unsubscribe during the send skips everyone not yet sent."""
    return why_not_send_key(db, key_of(address))


def key_of(address: str) -> str:
    """The store's key for a recipient address (a digest recorded before the store: any case)."""
    try:
        return normalise_address(address)
    except AddressError:
        return address.strip().lower()


def why_not_send_key(db: sqlite3.Connection, key: str) -> str | None:
    """`why_not_send` for an address already in the store's normalised form (one query)."""
    row = db.execute(
        "SELECT p.reason, s.status FROM (SELECT ? AS address) k LEFT JOIN suppressions p USING (address) "
        "LEFT JOIN subscribers s USING (address)",
        (key,),
    ).fetchone()
    if row[0] is not None:
        return f"suppressed ({row[0]})"
    if row[1] != "active":
        return "no longer subscribed"
    return None


def listing(db: sqlite3.Connection) -> list[tuple[str, str, frozenset[str], str]]:
    """(address, status, topic keys, suppression reason or "") of every subscriber and every suppressed
    address, by address."""
    rows = db.execute(
        "SELECT s.address, s.status, s.topics, coalesce(p.reason, '') FROM subscribers s "
        "LEFT JOIN suppressions p USING (address) "
        "UNION ALL SELECT p.address, 'unsubscribed', '[]', p.reason FROM suppressions p "
        "WHERE p.address NOT IN (SELECT address FROM subscribers) ORDER BY 1"
    )
    return [(a, status, frozenset(json.loads(topics)), reason) for a, status, topics, reason in rows]


BounceKind = Literal["hard", "soft"]


def record_bounce(
    db: sqlite3.Connection,
    address: str,
    period: str,
    kind: BounceKind,
    detail: str,
    now: dt.datetime,
    recent: Sequence[str],
) -> Reason | None:
    """Record that the digest of `period` bounced for `address`; the suppression it caused, if any.

    A hard bounce suppresses at once; soft bounces suppress once the address bounced in `SOFT_BOUNCES`
    of the `recent` digests' periods (the last `SOFT_BOUNCE_DIGESTS`). The same report read twice counts
    once."""
    with transaction(db):
        db.execute(
            "INSERT OR IGNORE INTO bounces VALUES (?, ?, ?, ?, ?)",
            (address, period, kind, _at(now), _clip(detail, 1000)),
        )
        if kind == "soft":
            windows = list(recent)[-SOFT_BOUNCE_DIGESTS:]
            marks = ",".join("?" * len(windows)) or "NULL"
            row = db.execute(
                f"SELECT count(DISTINCT period) FROM bounces WHERE address = ? AND period IN ({marks})",  # noqa: S608
                (address, *windows),
            ).fetchone()
            if int(row[0]) < SOFT_BOUNCES:
                return None
    reason: Reason = "hard-bounce" if kind == "hard" else "soft-bounces"
    return reason if suppress(db, address, reason, now, detail=detail) else None


SUBSCRIBER_COLUMNS = ("email", "name", "topics", "language", "status", "created", "confirmed", "suppressed")
CONSENT_COLUMNS = ("id", "at", "email", "event", "ip", "user_agent", "source", "method", "details")


def export_subscribers(db: sqlite3.Connection) -> str:
    """Every subscriber and every suppressed address, as CSV (topics `;`-separated, as on import)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SUBSCRIBER_COLUMNS)
    rows = db.execute(
        "SELECT s.address, s.name, s.topics, s.language, s.status, s.created, s.confirmed, "
        "coalesce(p.reason, '') FROM subscribers s LEFT JOIN suppressions p USING (address) "
        "UNION ALL SELECT p.address, '', '[]', '', 'unsubscribed', p.since, NULL, p.reason "
        "FROM suppressions p WHERE p.address NOT IN (SELECT address FROM subscribers) ORDER BY 1"
    )
    for row in rows:
        writer.writerow(
            [row[0], row[1], ";".join(json.loads(row[2])), row[3], row[4], row[5], row[6] or "", row[7]]
        )
    return out.getvalue()


def export_consent(db: sqlite3.Connection) -> str:
    """The consent log, oldest first, as CSV (details as JSON)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CONSENT_COLUMNS)
    writer.writerows(
        db.execute(
            "SELECT id, at, address, event, ip, user_agent, source, method, details "
            "FROM consent_log ORDER BY id"
        )
    )
    return out.getvalue()
