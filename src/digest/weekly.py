"""The weekly run: build the feeds, finish an interrupted digest, compose what is new, record it, deliver
it, and record each delivery as the server accepts it. `jobs.run` is the entry point every caller uses.

The exit statuses of `digest run` are defined here, with the report that decides them; the CLI uses
these constants.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cache import Cache
from .compose import Digest, for_topics, lower_bound, period_of, select_digest
from .config import Config
from .content import Article, collect, is_published, load_bodies
from .delivery import Transport, envelope_sender, open_transport
from .errors import DeliveryError, Problem
from .jobs import LOCK_TIMEOUT, BuildReport, _build_feeds, count, peek_stable_ids, stable_ids
from .message import RenderedDigest, build_message, make_message_id, render_digest, write_archive
from .output import safe_join, write_atomic
from .state import OPEN_STATUSES, Delivery, DigestRecord, State, peek_history, run_lock
from .subscribers import SubscriberList, load_subscribers, require_subscribers

log = logging.getLogger(__name__)

# Exit statuses (documented in the README; cron and systemd read them). 1 (error) and 2 (usage) are
# the CLI's own.
EXIT_OK = 0
EXIT_CONTENT_ERRORS = 3  # some articles (or subscribers) were skipped; everything else went out
EXIT_DELIVERY_FAILED = 4  # some deliveries failed, were deferred, or were left when delivery stopped
EXIT_NOTHING_NEW = 5  # `run`: nothing new to send

WEB_VARIANT = "web"  # the archive copy's stored rendering; never sent to anyone
_MAX_LISTED = 20  # failed recipients listed one per line; the rest are counted


def feeds_line(build: BuildReport) -> str:
    """What a feeds build did, in the words of `digest build`'s line."""
    return "feeds: " + build.summary()


def next_digest(config: Config, now: dt.datetime) -> Digest | None:
    """The digest that would go out at `now` if `run` composed one: read-only, nothing is recorded.

    Works without a state database. When a digest for `now`'s period is already recorded, `run` sends
    nothing more this period, and this is what the next period's digest holds so far.
    """
    now = config.site.localize(now)
    history = peek_history(config.state.path)
    articles = peek_stable_ids(collect(config, cache=None, bodies=False).articles, config.state.path)
    return _compose(config, articles, now, history.previous_cutoff, history.sent_ids)


def _compose(
    config: Config,
    articles: Sequence[Article],
    now: dt.datetime,
    previous_cutoff: dt.datetime | None,
    sent_ids: frozenset[str],
) -> Digest | None:
    """`select_digest`, reading the Markdown of only the articles that can be in the digest (their
    summaries need it), not of the whole archive: the same rule as select_digest's, as a superset."""
    lower = lower_bound(config, now, previous_cutoff)
    wanted = [
        a
        for a in articles
        if a.body is None and is_published(a, now) and a.entry_id not in sent_ids and a.publish_date > lower
    ]
    if wanted:
        loaded = {a.entry_id: a for a in load_bodies(config, wanted)}
        articles = [loaded.get(a.entry_id, a) for a in articles]
    return select_digest(articles, config, now, previous_cutoff, sent_ids)


@dataclass
class RunReport:
    """What `run` did: for the CLI's lines and exit status, the scheduler's log, and tests."""

    now: dt.datetime
    problems: list[Problem] = field(default_factory=list)
    build: BuildReport | None = None
    period: str | None = None  # the digest composed by this run
    articles: int = 0
    recipients: int = 0  # deliveries planned for that digest
    no_match: int = 0  # subscribers whose topics had nothing in it
    renders: int = 0  # distinct renderings (one per distinct topic set that has articles)
    resumed: list[str] = field(default_factory=list)  # unfinished digests this run went back to
    already_sent: str | None = None  # the period's digest was recorded by an earlier run
    transport: str = ""
    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (recipient, reply): final
    deferred: list[tuple[str, str]] = field(default_factory=list)  # 4xx until max_attempts: next run
    cancelled: int = 0  # unsubscribed between a kill and the resume
    left: int = 0  # not attempted because delivery stopped early
    stopped: str = ""  # why it stopped early ("" when it did not)
    warnings: list[str] = field(default_factory=list)
    archive: list[str] = field(default_factory=list)  # files written under [digest] archive_dir

    @property
    def nothing_new(self) -> bool:
        return self.period is None and not self.resumed

    def exit_code(self) -> int:
        """Failed deliveries first, then skipped content, then idle."""
        if self.failed or self.deferred or self.left:
            return EXIT_DELIVERY_FAILED
        if self.problems:
            return EXIT_CONTENT_ERRORS
        return EXIT_NOTHING_NEW if self.nothing_new else EXIT_OK

    def summary_lines(self) -> list[str]:
        lines: list[str] = []
        if self.build is not None:
            lines.append(feeds_line(self.build))
        for period in self.resumed:
            lines.append(f"digest {period}: resumed its unfinished delivery")
        if self.period is not None:
            line = (
                f"digest {self.period}: {count(self.articles, 'article')} for "
                f"{count(self.recipients, 'recipient')} ({count(self.renders, 'rendering')})"
            )
            if self.no_match:
                verb = "has" if self.no_match == 1 else "have"
                line += f"; {count(self.no_match, 'subscriber')} {verb} nothing in their topics"
            lines.append(line)
        elif self.already_sent and not self.resumed:
            lines.append(f"digest {self.already_sent} was already sent; nothing more until the next period")
        elif self.nothing_new:
            lines.append("nothing new since the last digest; nothing sent")
        lines.extend(f"warning: {w}" for w in self.warnings)
        if self.transport:
            line = f"delivered via {self.transport}: {self.sent} sent, {len(self.failed)} failed"
            line += f", {len(self.deferred)} deferred"
            if self.cancelled:
                line += f", {self.cancelled} cancelled (unsubscribed)"
            lines.append(line)
        problems = [(r, e, "failed") for r, e in self.failed] + [(r, e, "deferred") for r, e in self.deferred]
        for recipient, error, kind in problems[:_MAX_LISTED]:
            lines.append(f"{kind}: {recipient}: {error}")
        if len(problems) > _MAX_LISTED:
            lines.append(f"… and {len(problems) - _MAX_LISTED} more")
        if self.deferred:
            deferred = len(self.deferred)
            verb = "is" if deferred == 1 else "are"
            lines.append(f"{count(deferred, 'deferred recipient')} {verb} retried by the next run")
        if self.stopped:
            verb = "is" if self.left == 1 else "are"
            lines.append(
                f"stopped: {self.stopped}; {count(self.left, 'recipient')} {verb} left for the next run"
            )
        if self.problems:
            lines.append(f"{count(len(self.problems), 'problem')} (articles or subscribers skipped)")
        return lines


def run(
    config: Config,
    now: dt.datetime,
    *,
    sleep: Callable[[float], None] | None = None,
    stop: threading.Event | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> RunReport:
    """The weekly job once: collect, build the feeds, finish an interrupted digest, compose what is new,
    record it, write its web copy, deliver it, and record each delivery as it is accepted.

    `stop` (set by the scheduler on SIGTERM) ends the run promptly: waiting for the run lock gives up
    (`state.StoppedWaiting`), an SMTP backoff is cut short, and delivery ends after the message in
    hand is recorded. `sleep` replaces the backoff's wait on `stop` (tests pass one that records it).
    """
    now = config.site.localize(now)
    stop = stop or threading.Event()
    with run_lock(config.state.path, lock_timeout, stop=stop):
        state = State.open(config.state.path)
        try:
            return _run_locked(config, now, state, sleep, stop)
        finally:
            state.close()


def _run_locked(
    config: Config,
    now: dt.datetime,
    state: State,
    sleep: Callable[[float], None] | None,
    stop: threading.Event,
) -> RunReport:
    report = RunReport(now=now)
    subscribers = load_subscribers(config)
    # No usable subscriber would record a digest sent to nobody, and mark its articles sent.
    require_subscribers(config, subscribers)
    report.problems.extend(subscribers.problems)
    # Settings that would stop every delivery (no sender address, no password) fail here, before
    # anything is recorded; opening the transport does not connect yet.
    sender = envelope_sender(config)
    transport = open_transport(config, sleep=sleep, stop=stop)
    courier = _Courier(config, state, report, now, transport, sender, stop)
    try:
        # The feeds first: they must not go stale while the mail server is down.
        cache = Cache(state.db)
        collection = collect(config, cache, bodies=False, known_ids=state.known_entry_ids())
        articles = stable_ids(collection.articles, state, now)
        report.problems[:0] = collection.problems
        report.build = _build_feeds(
            config, now, articles, collection.problems, cache, parsed=collection.parsed
        )
        state.record_articles_seen(a.entry_id for a in articles)

        # A killed run's digest is finished, exactly as it was recorded, before anything new is composed.
        for record in state.unfinished():
            report.resumed.append(record.period)
            _write_web_copy(config, state, record, None, report)
            courier.deliver(record, subscribers)
            if report.stopped:
                return report

        period = period_of(now, config)
        if state.digest_for_period(period) is not None:
            report.already_sent = period
            log.info("digest %s was already sent; nothing new to send", period)
            return report
        history = state.history()
        digest = _compose(config, articles, now, history.previous_cutoff, history.sent_ids)
        if digest is None:
            log.info("nothing new since the last digest; nothing sent")
            return report
        record, web = _record_digest(config, state, digest, subscribers, report)
        _write_web_copy(config, state, record, web, report)
        courier.deliver(record, subscribers)
        return report
    finally:
        courier.close()


def _parts(rendered: RenderedDigest) -> dict[str, Any]:
    """What a resumed run needs to send the identical message (the composed Digest is not kept)."""
    return {
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "encoded_html_bytes": rendered.encoded_html_bytes,
        "warnings": list(rendered.warnings),
        "budget": rendered.budget,
    }


def _rendered(parts: dict[str, Any]) -> RenderedDigest:
    return RenderedDigest(
        subject=parts["subject"],
        html=parts["html"],
        text=parts["text"],
        encoded_html_bytes=parts["encoded_html_bytes"],
        warnings=tuple(parts["warnings"]),
        budget=parts["budget"],
    )


def _record_digest(
    config: Config, state: State, digest: Digest, subscribers: SubscriberList, report: RunReport
) -> tuple[DigestRecord, RenderedDigest]:
    """Render once per distinct subset of the digest, then record everything before the first send."""
    ids = digest.article_ids
    # From the period and the articles, not the clock: should the record ever be lost (a power cut
    # before the disk had it), composing again gives the same Message-IDs to the same messages.
    base = hashlib.sha256("\0".join([digest.period, *ids]).encode()).hexdigest()[:16]
    renders: dict[str, RenderedDigest] = {}
    variant_of: dict[tuple[str, ...], str] = {}  # article ids of a subset → its variant
    deliveries: list[Delivery] = []
    for topics, members in subscribers.by_topics().items():
        part = for_topics(digest, topics) if topics else digest
        if part is None:
            report.no_match += len(members)
            continue
        # Two topic sets that pick the same articles get the same rendering.
        variant = variant_of.get(part.article_ids)
        if variant is None:
            variant = "all" if part.article_ids == ids else "topics:" + ";".join(sorted(topics))
            variant_of[part.article_ids] = variant
            renders[variant] = render_digest(part, config)
        deliveries.extend(
            Delivery(s.email, s.name, variant, make_message_id(digest.period, s.email, config, salt=base))
            for s in members
        )
    web = render_digest(digest, config, web=True)
    stored = {variant: _parts(r) for variant, r in renders.items()}
    stored[WEB_VARIANT] = _parts(web)
    record = state.record_digest(
        period=digest.period,
        since=digest.since,
        cutoff=digest.now,
        message_id_base=base,
        article_ids=ids,
        renders=stored,
        deliveries=deliveries,
    )
    report.period, report.articles = digest.period, len(ids)
    report.recipients, report.renders = len(deliveries), len(renders)
    report.warnings.extend(dict.fromkeys(w for r in renders.values() for w in r.warnings))
    log.info(
        "digest %s: %d articles for %d recipients, %d renderings",
        digest.period,
        len(ids),
        len(deliveries),
        len(renders),
    )
    return record, web


def _write_web_copy(
    config: Config, state: State, record: DigestRecord, web: RenderedDigest | None, report: RunReport
) -> None:
    """The digest's web copy and the index of every digest, under `[digest] archive_dir`."""
    if web is None:
        stored = state.renders(record.id).get(WEB_VARIANT)
        if stored is None:
            return
        web = _rendered(stored)
    # write_archive reads only the period from the digest when handed its rendering.
    shell = Digest(period=record.period, since=record.since, now=record.cutoff, groups=())
    files = write_archive(shell, config, state.history().periods, rendered=web)
    folder = config.digest.archive_dir
    for name in sorted(files):
        if write_atomic(safe_join(folder, name), files[name]):
            report.archive.append(name)


class _Courier:
    """Delivers recorded digests over one transport (opened on first use) and records every outcome."""

    def __init__(
        self,
        config: Config,
        state: State,
        report: RunReport,
        now: dt.datetime,
        transport: Transport,
        sender: str,
        stop: threading.Event,
    ) -> None:
        self.config, self.state, self.report, self.now = config, state, report, now
        self.transport, self.sender, self.stop = transport, sender, stop

    def deliver(self, record: DigestRecord, subscribers: SubscriberList) -> None:
        state, report = self.state, self.report
        renders = {variant: _rendered(parts) for variant, parts in state.renders(record.id).items()}
        current = {s.email.casefold() for s in subscribers.subscribers}
        todo = state.deliveries(record.id, OPEN_STATUSES)
        if todo:
            report.transport = self.transport.description
        for index, delivery in enumerate(todo):
            if self.stop.is_set():
                report.stopped, report.left = "asked to stop", report.left + len(todo) - index
                break
            if delivery.recipient.casefold() not in current:
                state.record_delivery(
                    record.id,
                    delivery.recipient,
                    "cancelled",
                    attempts=0,
                    error="no longer subscribed",
                    now=self.now,
                )
                report.cancelled += 1
                continue
            data = build_message(
                renders[delivery.variant],
                self.config,
                to=delivery.recipient,
                to_name=delivery.name,
                message_id=delivery.message_id,
                date=record.cutoff,
            )
            try:
                outcome = self.transport.send(
                    self.sender, delivery.recipient, data, key=f"{record.period}--{delivery.recipient}"
                )
            except DeliveryError as exc:
                report.stopped, report.left = str(exc), report.left + len(todo) - index
                break
            # Recorded at once, in its own transaction: this is what makes a resumed run skip it.
            state.record_delivery(
                record.id,
                delivery.recipient,
                outcome.status,
                attempts=outcome.attempts,
                error=outcome.error,
                now=self.now,
            )
            if outcome.status == "sent":
                report.sent += 1
            elif outcome.status == "failed":
                report.failed.append((delivery.recipient, outcome.error))
            else:
                report.deferred.append((delivery.recipient, outcome.error))
        state.finish_if_complete(record.id, self.now)

    def close(self) -> None:
        self.transport.close()
