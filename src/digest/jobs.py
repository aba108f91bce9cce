"""The stages wired together: every entry point (CLI, scheduler, tests) calls these functions.

Only this module (with the CLI and the scheduler above it) decides when to touch the state database and
the output folders; the stages it calls are pure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .cache import Cache, open_database
from .compose import Digest, for_topics, lower_bound, period_of, select_digest
from .config import Config
from .content import Article, collect, is_published, load_bodies, scan, tree_signature
from .delivery import Transport, envelope_sender, open_transport
from .errors import DeliveryError, Problem
from .feeds import FeedPlan, RenderedEntry, plan_feeds, render_files
from .message import RenderedDigest, build_message, make_message_id, render_digest, write_archive
from .output import read_manifest, safe_join, write_atomic, write_tree
from .render import article_html, image_url, summary_text
from .state import OPEN_STATUSES, Delivery, DigestRecord, State, peek_history, run_lock
from .subscribers import SubscriberList, load_subscribers

RENDER_VERSION = 1
_PARALLEL_RENDER_THRESHOLD = 60


@dataclass
class BuildReport:
    """What `build` did, for the CLI to print and for tests to assert."""

    articles: int = 0
    published: int = 0
    feeds: int = 0
    parsed: int = 0
    rendered: int = 0
    problems: list[Problem] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    up_to_date: bool = False  # nothing could have changed, so nothing was rendered


def build(config: Config, now: dt.datetime, *, workers: int | None = None) -> BuildReport:
    """Collect the articles published at `now` and write the feeds; unreadable articles are reported.

    When no article file changed since the last build (same names, sizes and mtimes), the config is the
    same, no article's publish or expiry time has passed in between, and the output files are still the
    ones written, nothing is read or rendered: the output would be byte-identical.
    """
    files = scan(config)
    signature = (
        f"{__version__}:{RENDER_VERSION}:{tree_signature(config, files)}:{_config_fingerprint(config)}"
    )
    folder = str(config.feeds.dir)
    connection = open_database(config.state.path)
    try:
        cache = Cache(connection)
        previous = cache.build_record(folder, signature, now)
        if isinstance(previous, BuildReport) and _outputs_intact(config.feeds.dir):
            return dataclasses.replace(
                previous,
                parsed=0,
                rendered=0,
                written=[],
                removed=[],
                unchanged=sorted(read_manifest(config.feeds.dir)),
                up_to_date=True,
            )
        collection = collect(config, cache, workers, bodies=False, files=files)
        report = _build_feeds(
            config,
            now,
            collection.articles,
            collection.problems,
            cache,
            parsed=collection.parsed,
            workers=workers,
        )
        cache.set_build_record(folder, signature, publication_window(collection.articles, now), report)
        return report
    finally:
        connection.close()


def _config_fingerprint(config: Config) -> str:
    return hashlib.sha256(repr((config.site, config.content, config.feeds)).encode()).hexdigest()


def publication_window(articles: Sequence[Article], now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The span around `now` in which the same articles are published: between the last publish or
    expiry time at or before now and the first one after it."""
    events = [a.publish_date for a in articles if not a.draft]
    events += [a.expiry for a in articles if a.expiry is not None and not a.draft]
    start = max((e for e in events if e <= now), default=_DAWN)
    end = min((e for e in events if e > now), default=_DUSK)
    return start, end


_DAWN = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_DUSK = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)


def _build_feeds(
    config: Config,
    now: dt.datetime,
    articles: Sequence[Article],
    problems: list[Problem],
    cache: Cache,
    *,
    parsed: int = 0,
    workers: int | None = None,
) -> BuildReport:
    published = [a for a in articles if is_published(a, now)]
    plan = plan_feeds(published, config)
    report = BuildReport(
        articles=len(articles),
        published=len(published),
        feeds=len(plan.feeds),
        parsed=parsed,
        problems=list(problems),
    )
    folder = config.feeds.dir
    fingerprint = f"{__version__}:{RENDER_VERSION}:{plan.fingerprint(config)}"
    if cache.fingerprint(str(folder)) == fingerprint and _outputs_intact(folder):
        report.up_to_date = True
        report.unchanged = sorted(read_manifest(folder))
        return report

    entries = render_entries(plan, config, cache, workers)
    report.rendered = len(entries)
    files = render_files(plan, entries, config)
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    written = write_tree(folder, files, digests)
    report.written, report.unchanged, report.removed = written.written, written.unchanged, written.removed
    cache.set_fingerprint(str(folder), fingerprint)
    return report


def _outputs_intact(folder: os.PathLike[str] | str) -> bool:
    """The files the last build wrote are all there, byte for byte (nobody edited or deleted one)."""
    from pathlib import Path

    manifest = read_manifest(Path(folder))
    if not manifest:
        return False
    for name, expected in manifest.items():
        try:
            data = (Path(folder) / name).read_bytes()
        except OSError:
            return False
        if hashlib.sha256(data).hexdigest() != expected:
            return False
    return True


def _render_key(article: Article, config: Config) -> str:
    return f"{RENDER_VERSION}:{config.content.summary_chars}:{article.content_hash}:{article.url}"


def _render_one(article: Article, summary_chars: int) -> RenderedEntry:
    html = article_html(article)
    return RenderedEntry(html, summary_text(article, summary_chars, rendered_html=html), image_url(article))


def render_entries(
    plan: FeedPlan, config: Config, cache: Cache | None, workers: int | None = None
) -> dict[str, RenderedEntry]:
    """Rendered HTML and summary of every article that lands in some feed, by entry id.

    Markdown is rendered only for these articles, only when the cache has no rendering of the same bytes,
    and on every core when there are many.
    """
    articles = plan.articles
    keys = {a.entry_id: _render_key(a, config) for a in articles}
    cached = cache.rendered(keys.values()) if cache is not None else {}
    missing = load_bodies(config, [a for a in articles if keys[a.entry_id] not in cached])
    cores = workers if workers is not None else (os.cpu_count() or 1)
    chars = config.content.summary_chars
    if cores > 1 and len(missing) >= _PARALLEL_RENDER_THRESHOLD:
        with ProcessPoolExecutor(max_workers=cores) as pool:
            fresh = list(
                pool.map(
                    _render_one,
                    missing,
                    [chars] * len(missing),
                    chunksize=max(1, len(missing) // (cores * 4)),
                )
            )
    else:
        fresh = [_render_one(a, chars) for a in missing]
    new_entries = {keys[a.entry_id]: entry for a, entry in zip(missing, fresh, strict=True)}
    if cache is not None:
        cache.store_rendered(new_entries, keep=set(keys.values()))
    by_key = {**cached, **new_entries}
    return {entry_id: by_key[key] for entry_id, key in keys.items()}


def check(config: Config) -> list[Problem]:
    """Every problem with the articles, without writing anything."""
    return collect(config, cache=None).problems


# ---------------------------------------------------------------- the weekly job

log = logging.getLogger(__name__)

# How long a manual `digest run` waits for another run (the scheduler's) to release the state.
LOCK_TIMEOUT = 30.0
WEB_VARIANT = "web"  # the archive copy's stored rendering; never sent to anyone
_MAX_LISTED = 20  # failed recipients listed one per line; the rest are counted


def _aware(now: dt.datetime, config: Config) -> dt.datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=config.site.tz)


def next_digest(config: Config, now: dt.datetime) -> Digest | None:
    """The digest that would go out at `now` if `run` composed one: read-only, nothing is recorded.

    Works without a state database. When a digest for `now`'s period is already recorded, `run` sends
    nothing more this period, and this is what the next period's digest holds so far.
    """
    now = _aware(now, config)
    history = peek_history(config.state.path)
    articles = collect(config, cache=None, bodies=False).articles
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
        """The codes in cli.py's docstring: failed deliveries first, then skipped content, then idle."""
        if self.failed or self.deferred or self.left:
            return 4
        if self.problems:
            return 3
        return 5 if self.nothing_new else 0

    def summary_lines(self) -> list[str]:
        lines: list[str] = []
        if self.build is not None:
            b = self.build
            changed = len(b.written) + len(b.removed)
            lines.append(
                f"feeds: {b.published} of {b.articles} articles published in {b.feeds} feeds; "
                + (f"{changed} files changed" if changed else "no file changed")
            )
        for period in self.resumed:
            lines.append(f"digest {period}: resumed its unfinished delivery")
        if self.period is not None:
            line = f"digest {self.period}: {self.articles} articles for {self.recipients} recipients"
            line += f" ({self.renders} renderings)"
            if self.no_match:
                line += f"; {self.no_match} subscribers have nothing in their topics"
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
            lines.append(f"{len(self.deferred)} deferred recipients are retried by the next run")
        if self.stopped:
            lines.append(f"stopped: {self.stopped}; {self.left} recipients are left for the next run")
        if self.problems:
            lines.append(f"{len(self.problems)} problems (articles or subscribers skipped)")
        return lines


def run(
    config: Config,
    now: dt.datetime,
    *,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> RunReport:
    """The weekly job once: finish an interrupted digest, collect, build the feeds, compose what is new,
    record it, write its web copy, deliver it, and record each delivery as it is accepted.

    `stop` (set by the scheduler on SIGTERM) ends delivery after the message in hand is recorded;
    `sleep` is the backoff between SMTP retries (tests pass a fake one).
    """
    now = _aware(now, config)
    with run_lock(config.state.path, lock_timeout):
        state = State.open(config.state.path)
        try:
            return _run_locked(config, now, state, sleep, stop or threading.Event())
        finally:
            state.close()


def _run_locked(
    config: Config, now: dt.datetime, state: State, sleep: Callable[[float], None], stop: threading.Event
) -> RunReport:
    report = RunReport(now=now)
    subscribers = load_subscribers(config)
    report.problems.extend(subscribers.problems)
    # Settings that would stop every delivery (no sender address, no password) fail here, before
    # anything is recorded; opening the transport does not connect yet.
    sender = envelope_sender(config)
    courier = _Courier(config, state, report, now, open_transport(config, sleep=sleep), sender, stop)
    try:
        # A killed run's digest comes first, exactly as it was recorded, before anything new is composed.
        for record in state.unfinished():
            report.resumed.append(record.period)
            _write_web_copy(config, state, record, None, report)
            courier.deliver(record, subscribers)
            if report.stopped:
                return report

        cache = Cache(state.db)
        collection = collect(config, cache, bodies=False)
        report.problems[:0] = collection.problems
        report.build = _build_feeds(
            config, now, collection.articles, collection.problems, cache, parsed=collection.parsed
        )
        state.record_articles_seen(((a.entry_id, a.content_hash) for a in collection.articles), now)

        period = period_of(now, config)
        if state.digest_for_period(period) is not None:
            report.already_sent = period
            log.info("digest %s was already sent; nothing new to send", period)
            return report
        history = state.history()
        digest = _compose(config, collection.articles, now, history.previous_cutoff, history.sent_ids)
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
