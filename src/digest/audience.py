"""The subscriber half of the jobs, as steps `jobs.py` calls: who gets the digest (the subscriber store,
`[subscribers] file` and `list` imported into it), what the courier asks about each recipient, the
subscriber pages' app, the subscriber commands and bounce reports. Like `weekly.py`, it never imports
`jobs`; it is handed the config, the state and the `now` it acts at.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.policy
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

from . import subscriptions as store
from .bounces import (
    is_permanent_refusal,
    parse_report,
    read_reports,
    verp_address,
    verp_pattern,
)
from .config import Config
from .content import collect, is_published, topic_key
from .db import open_database
from .errors import ConfigError, DeliveryError, DigestError, Problem
from .reports import RunReport
from .state import State
from .subscribers import Subscriber, SubscriberList, load_subscribers, require_subscribers
from .tokens import Tokens, parse_keys
from .weekly import Audience

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

# The source of the subscribers imported from `[subscribers] file` and `list` on every run.
CONFIG_SOURCE = "config"
TOPICS_MAX_AGE = 600.0  # seconds before the topic names the pages offer are read again


def signing_keys(config: Config, environ: Mapping[str, str] | None = None) -> Tokens:
    """The link tokens, keyed by the environment variable `[server] secret_env` names."""
    variable = config.server.secret_env
    try:
        keys = parse_keys((os.environ if environ is None else environ).get(variable), variable)
    except ConfigError as exc:
        exc.path = exc.path or str(config.path)
        raise
    return Tokens(keys)


# ---------------------------------------------------------------- the run's recipients


def recipients(config: Config, state: State, report: RunReport, now: dt.datetime) -> SubscriberList:
    """Who gets this digest: the store's active, unsuppressed subscribers, after importing the
    configured list (a suppressed address never comes back) and purging unconfirmed signups.

    Raises before anything is recorded when nobody is left to send to."""
    store.migrate(state.db)
    section = config.subscribers
    configured = section.file is not None or bool(section.list)
    if configured:
        listed = load_subscribers(config)
        require_subscribers(config, listed)  # a list with nobody usable in it is a mistake
        report.problems.extend(listed.problems)
        entries = [(s.email, s.name, s.topics, s.language) for s in listed.subscribers]
        synced = store.sync_list(state.db, entries, CONFIG_SOURCE, now)
        report.problems.extend(synced.problems)
    store.purge(state.db, now)
    active = store.recipients(state.db)
    if not active:
        if not configured:
            raise ConfigError(
                "no subscribers: none is configured and none has subscribed",
                path=str(config.path),
                key="subscribers.file",
                hint="set [subscribers] file or list, `digest subscribers import FILE.csv`, "
                "or let readers subscribe (`digest serve`)",
            )
        raise DigestError(
            "no subscriber to send to: every one listed is unsubscribed or suppressed",
            path=str(config.path),
            hint="`digest subscribers list` shows each one's status",
        )
    return SubscriberList([Subscriber(s.address, s.name, s.topics, s.language) for s in active])


def audience(config: Config, state: State, now: dt.datetime) -> Audience:
    """The courier's questions, answered from the store on the run's own connection: each one is a
    fresh read (autocommit, WAL), so it sees an unsubscribe committed a moment ago by `digest serve`."""
    tokens = signing_keys(config) if config.server.enabled else None
    db = state.db
    # The store's own keys need no normalising (email-validator: most of a message's cost otherwise).
    keys = frozenset(row[0] for row in db.execute("SELECT address FROM subscribers"))

    def key(address: str) -> str:
        return address if address in keys else store.key_of(address)

    def why_not(address: str) -> str | None:
        return store.why_not_send_key(db, key(address))

    def links(address: str) -> tuple[str, str]:
        return ("", "") if tokens is None else tokens.list_links(key(address))

    def refused(address: str, error: str) -> bool:
        if not is_permanent_refusal(error):
            return False
        return store.suppress(db, key(address), "hard-bounce", now, detail=error)

    def return_path(message_id: str) -> str | None:
        return verp_address(config.subscribers.return_path, message_id)

    return Audience(why_not=why_not, tokens=links, refused=refused, return_path=return_path)


# ---------------------------------------------------------------- the subscriber pages


class TopicNames:
    """The topic names the pages offer: those of the published articles, `[digest] topic_order`
    first. Read at start, then again in the background once they are `TOPICS_MAX_AGE` old (a page
    never waits for the content folder)."""

    def __init__(self, config: Config, now: Callable[[], dt.datetime]) -> None:
        self._config, self._now = config, now
        self._lock = threading.Lock()
        self._names = self._read()
        self._read_at = time.monotonic()
        self._reading = False

    def _read(self) -> list[str]:
        config, moment = self._config, self._now()
        names: dict[str, str] = {}
        for article in collect(config, cache=None, bodies=False).articles:
            if is_published(article, moment):
                for name in article.topics:
                    names.setdefault(topic_key(name), name)
        order = [topic_key(name) for name in config.digest.topic_order]
        ranked = sorted(names, key=lambda k: (order.index(k) if k in order else len(order), names[k]))
        return [names[key] for key in ranked]

    def _refresh(self) -> None:
        try:
            names = self._read()
        except DigestError as exc:
            log.error("the topic names were not read again: %s", exc)
            names = self._names
        with self._lock:
            self._names, self._read_at, self._reading = names, time.monotonic(), False

    def __call__(self) -> Sequence[str]:
        with self._lock:
            if not self._reading and time.monotonic() - self._read_at > TOPICS_MAX_AGE:
                self._reading = True
                threading.Thread(target=self._refresh, name="digest-topics", daemon=True).start()
            return self._names


def confirmation_sender(config: Config) -> Callable[[EmailMessage], None]:
    """Hands a confirmation mail to the configured delivery (the outbox or SMTP), one at a time."""
    from .delivery import envelope_sender, open_transport

    sender = envelope_sender(config)

    def send(message: EmailMessage) -> None:
        recipient = message["To"].addresses[0].addr_spec
        data = message.as_bytes(policy=email.policy.SMTP)
        key = "confirm--" + hashlib.sha256(data).hexdigest()[:16]
        transport = open_transport(config)
        try:
            outcome = transport.send(sender, recipient, data, key=key)
        finally:
            transport.close()
        if outcome.status != "sent":
            raise DeliveryError(f"{outcome.status}: {outcome.error}")

    return send


def subscriber_app(
    config: Config, now: Callable[[], dt.datetime], environ: Mapping[str, str] | None = None
) -> Flask:
    """The subscriber pages for `[server]`, on the state database."""
    from .jinja import sandboxed_environment
    from .service import SubscriberService
    from .web import WebSettings, create_app

    if not config.server.enabled:
        raise ConfigError(
            "the subscriber service is off: [server] public_url is not set",
            path=str(config.path),
            key="server.public_url",
            hint='e.g. public_url = "https://example.com/newsletter/"',
        )
    tokens = signing_keys(config, environ)
    with contextlib.closing(State.open(config.state.path)) as state:
        # Migrated once, before any thread opens it; signups never confirmed are forgotten.
        store.migrate(state.db)
        store.purge(state.db, now())
    section = config.subscribers
    limits = store.Limits(
        mail_interval=dt.timedelta(seconds=section.mail_interval),
        mails_per_day=section.mails_per_day,
        requests_per_ip=section.requests_per_ip,
        ip_window=dt.timedelta(seconds=section.ip_window),
    )
    path = config.state.path

    def connect() -> sqlite3.Connection:
        return open_database(path)

    service = SubscriberService(connect, tokens, TopicNames(config, now), limits)
    settings = WebSettings(
        public_url=config.server.public_url,
        site_title=config.site.title,
        sender=config.digest.sender,
        language=config.site.language,
        proxy_hops=config.server.proxy_hops,
    )
    return create_app(
        service,
        send=confirmation_sender(config),
        templates=sandboxed_environment(config),
        settings=settings,
        now=now,
    )


# ---------------------------------------------------------------- the subscriber commands


def read_csv(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DigestError("file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DigestError(f"cannot read the file: {exc}", path=str(path)) from None


def remove(db: sqlite3.Connection, address: str, now: dt.datetime) -> tuple[str, bool]:
    """Suppress `address` (an editor's removal: no import or signup without confirmation brings it
    back); (its normalised form, False when it already was suppressed)."""
    try:
        key = store.normalise_address(address)
    except store.AddressError as exc:
        raise DigestError(f"not an email address: {address!r} ({exc})") from None
    return key, store.unsubscribe(db, key, "admin", now)


@dataclass
class BounceSummary:
    """What `digest bounces` did."""

    read: int = 0
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    suppressed: list[tuple[str, str]] = field(default_factory=list)  # (address, reason)
    unmatched: list[Problem] = field(default_factory=list)  # reports naming no delivery


def read_bounces(config: Config, state: State, path: Path, now: dt.datetime) -> BounceSummary:
    """Apply every bounce report in the mbox or Maildir at `path`: hard bounces and spam complaints
    suppress; soft bounces suppress after `SOFT_BOUNCES` of the last `SOFT_BOUNCE_DIGESTS` digests.
    Reading a report twice counts it once."""
    store.migrate(state.db)
    summary = BounceSummary()
    pattern = verp_pattern(config.subscribers.return_path)
    periods = state.history().periods
    for where, message in read_reports(path):
        summary.read += 1
        report = parse_report(where, message, pattern)
        failed = report.permanent | report.temporary
        found = state.find_delivery(token=report.token) if report.token else None
        for message_id in report.message_ids if found is None else ():
            found = state.find_delivery(message_id=message_id)
            if found is not None:
                break
        if report.complained:
            complainers = (
                {store.key_of(found[0])} if found is not None else set(map(store.key_of, report.complaint))
            )
            if not complainers:
                summary.unmatched.append(Problem(where, "a complaint naming no recipient", None, "skipped"))
                continue
            summary.complaints += len(complainers)
            for address in sorted(complainers):
                if store.suppress(state.db, address, "complaint", now, detail=where):
                    summary.suppressed.append((address, "complaint"))
            continue
        if found is not None and failed:
            address, period = store.key_of(found[0]), found[1]
            # A VERP report is about its delivery, whatever address the forwarder's server named.
            kind: store.BounceKind = "hard" if report.permanent else "soft"
            pairs = [(address, period, kind)]
        elif failed and periods:
            # No delivery named: each failing address, in the last digest.
            pairs = [
                (store.key_of(a), periods[-1], "hard" if a in report.permanent else "soft") for a in failed
            ]
        else:
            summary.unmatched.append(Problem(where, "not a bounce report of a digest", None, "skipped"))
            continue
        for address, period, kind in pairs:
            if kind == "hard":
                summary.hard += 1
            else:
                summary.soft += 1
            reason = store.record_bounce(
                state.db, address, period, kind, f"{where}", now, periods[-store.SOFT_BOUNCE_DIGESTS :]
            )
            if reason is not None:
                summary.suppressed.append((address, reason))
    return summary
