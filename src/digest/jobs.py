"""The one orchestration layer: every entry point (CLI, scheduler, preview, tests) calls these functions.

`build` writes the feeds; `run` is the weekly job (feeds first, then the digest's steps from
`weekly.py`); `check` finds every problem either would meet; `upcoming` is the next digest as the
preview shows it; the scheduler's record of its runs is read and written here too. Only this module
decides when to open the state database and touch the output folders; the stages it calls are pure or
are handed what they need.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import __version__
from .cache import Cache
from .config import Config
from .content import (
    Article,
    Collection,
    SourceFile,
    collect,
    index_key,
    is_published,
    listing,
    load_bodies,
    refresh,
    reject_duplicates,
    scan,
    shown_path,
    tree_signature,
    utf8_names,
)
from .errors import DigestError, OutputError, Problem
from .jinja import feed_pages_fingerprint
from .output import read_manifest, write_tree
from .reports import BuildReport, RunReport
from .state import History, State, peek_entry_ids, peek_feed_owners, peek_history, run_lock

if TYPE_CHECKING:
    from flask import Flask

    from .audience import BounceSummary
    from .render import RenderedEntry
    from .selection import Digest, Edition
    from .subscribers import Subscriber
    from .subscriptions import ImportReport

log = logging.getLogger(__name__)

RENDER_VERSION = 1
# How long a manual `digest run` or `build` waits for another run (the scheduler's) to release the state.
LOCK_TIMEOUT = 30.0
_PARALLEL_RENDER_THRESHOLD = 60


def build(
    config: Config,
    now: dt.datetime,
    *,
    workers: int | None = None,
    lock_timeout: float | None = None,
    stop: threading.Event | None = None,
) -> BuildReport:
    """Collect the articles published at `now` and write the feeds; unreadable articles are reported.

    When no article file changed since the last build (same names, sizes and mtimes), the config is the
    same, no article's publish or expiry time has passed in between, and the output files are still the
    ones written, nothing is read or rendered: the output would be byte-identical.
    """
    # The same lock as `run`: a build from cron or the scheduler never writes feeds/ beside a run.
    with run_lock(config.state.path, LOCK_TIMEOUT if lock_timeout is None else lock_timeout, stop=stop):
        return _build(config, now, workers)


def _build(config: Config, now: dt.datetime, workers: int | None) -> BuildReport:
    files = _scan(config)
    lines = listing(files) if config.hugo is None else None
    if config.hugo is None:
        tree = tree_signature(config, files, lines)
    else:
        from . import hugo_content

        tree = hugo_content.tree_signature(config, files)
    made_by = f"{__version__}:{RENDER_VERSION}:{_config_fingerprint(config)}:{feed_pages_fingerprint(config)}"
    signature = f"{made_by}:{tree}"
    folder = str(config.feeds.dir)
    state = State.open(config.state.path)
    try:
        cache = Cache(state.db)
        previous = cache.build_record(folder, signature, now)
        if isinstance(previous, BuildReport) and _outputs_intact(config.feeds.dir):
            return _unchanged(previous, config, parsed=0)
        if config.hugo is not None or not config.content.dir.is_dir():
            # A Hugo site's pages are read whole (their shortcodes need the other pages' URLs).
            collection = _collect(config, cache, workers, files=files, known_ids=state.known_entry_ids())
            articles = stable_ids(collection.articles, state, now)
            report = _build_feeds(
                config,
                now,
                articles,
                collection.problems,
                cache,
                state,
                parsed=collection.parsed,
                workers=workers,
            )
            cache.set_build_record(folder, signature, publication_window(articles, now), report)
            return report
        # The index answers what the feeds need from every file; only the articles that can be in a
        # feed are read back: the work grows with what changed, not with the site.
        named, unnamed = utf8_names(config, files)
        parsed = refresh(config, cache, named, workers, lines if not unnamed else None)
        # A file read again with the same result (touched, or saved unchanged) leaves the index as it
        # was: the last build's feeds stand, as when no file changed.
        unreadable = hashlib.sha256("\0".join(p.path for p in unnamed).encode("utf-8", "surrogateescape"))
        contents = f"{made_by}:{cache.generation()}:{unreadable.hexdigest()}"
        previous = cache.build_record(folder, signature, now, contents=contents)
        if isinstance(previous, BuildReport) and _outputs_intact(config.feeds.dir):
            return _unchanged(previous, config, parsed=parsed)
        clashing = cache.clashing()
        known = state.known_entry_ids(among=[a.entry_id for a in clashing]) if clashing else frozenset()
        kept, clashes = reject_duplicates(config, clashing, known)
        skipped = {index_key(config, a.source) for a in clashing} - {
            index_key(config, a.source) for a in kept
        }
        problems = sorted(cache.problems() + clashes + unnamed, key=lambda p: p.path)
        unrecorded = [row for row in cache.unrecorded(now) if row[0] not in skipped]
        if unrecorded:
            state.record_entry_ids(
                {path: (entry_id, published) for _, path, entry_id, published in unrecorded}
            )
            cache.mark_recorded([row[0] for row in unrecorded])

        def candidates(leaving_out: Set[str] = frozenset()) -> list[Article]:
            """What the feeds can show, when the articles of these sources are not there."""
            found = cache.feed_candidates(
                now, config.feeds.max_entries, skipped | {index_key(config, s) for s in leaving_out}
            )
            paths = [urlsplit(a.url).path for a in found if a.derived_id]
            return _with_ids(found, state.recorded_entry_ids(paths))

        total, published = cache.counts(len(named), now, skipped)
        report = _build_feeds(
            config,
            now,
            candidates(),
            problems,
            cache,
            state,
            parsed=parsed,
            counts=(total, published),
            workers=workers,
            reselect=candidates,
        )
        window = publication_window(cache.events_around(now, skipped), now)
        cache.set_build_record(folder, signature, window, report, contents=contents)
        return report
    finally:
        state.close()


def _unchanged(previous: BuildReport, config: Config, *, parsed: int) -> BuildReport:
    """The last build's report, for a build that finds its feeds still right."""
    return dataclasses.replace(
        previous,
        parsed=parsed,
        rendered=0,
        written=[],
        removed=[],
        unchanged=sorted(read_manifest(config.feeds.dir)),
        up_to_date=True,
    )


def _scan(config: Config) -> list[SourceFile]:
    if config.hugo is not None:
        from . import hugo_content

        return hugo_content.scan(config)
    return scan(config)


def _collect(
    config: Config,
    cache: Cache | None = None,
    workers: int | None = None,
    *,
    files: Sequence[SourceFile] | None = None,
    known_ids: Set[str] = frozenset(),
) -> Collection:
    """The articles without their bodies: a Hugo site's pages (`hugo_content`, bodies loaded: their
    shortcodes need the other pages' URLs), else the content folder's (`content`); both reuse the
    cache's per-file parses."""
    if config.hugo is not None:
        from . import hugo_content

        return hugo_content.collect(config, cache, workers, files=files, known_ids=known_ids)
    return collect(config, cache, workers, bodies=False, files=files, known_ids=known_ids)


def stable_ids(articles: Sequence[Article], state: State, now: dt.datetime) -> list[Article]:
    """The articles with entry ids that stay the same for life.

    A derived id (no `id` in the front matter) holds the first publish date; were it derived afresh
    every time, correcting an article's date would make feed readers show it again as a new entry and
    the next digest send it again. So the id an article has when it is first published (at `now`) is
    recorded for its permalink and used from then on; a draft or a scheduled article records nothing
    yet, since its date may still change before it goes out.
    """
    derived = {urlsplit(a.url).path: a for a in articles if a.derived_id}
    if not derived:
        return list(articles)
    published = {path: a for path, a in derived.items() if is_published(a, now)}
    first = state.stable_entry_ids({path: (a.entry_id, a.publish_date) for path, a in published.items()})
    first.update(state.recorded_entry_ids([path for path in derived if path not in published]))
    return _with_ids(articles, first)


def peek_stable_ids(articles: Sequence[Article], state_path: Path) -> list[Article]:
    """`stable_ids`, only reading the state: for previews, which record nothing."""
    paths = [urlsplit(a.url).path for a in articles if a.derived_id]
    return _with_ids(articles, peek_entry_ids(state_path, paths))


def _with_ids(articles: Sequence[Article], first: Mapping[str, str]) -> list[Article]:
    stable = []
    for article in articles:
        entry_id = article.entry_id
        if article.derived_id:
            entry_id = first.get(urlsplit(article.url).path, entry_id)
        stable.append(
            article if entry_id == article.entry_id else dataclasses.replace(article, entry_id=entry_id)
        )
    return stable


def _config_fingerprint(config: Config) -> str:
    return hashlib.sha256(repr((config.site, config.content, config.feeds)).encode()).hexdigest()


def publication_window(
    articles: Iterable[Article | dt.datetime], now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """The span around `now` in which the same articles are published: between the last publish or
    expiry time at or before now and the first one after it. Given the articles, or their publish and
    expiry times (drafts aside)."""
    events: list[dt.datetime] = []
    for item in articles:
        if isinstance(item, dt.datetime):
            events.append(item)
        elif not item.draft:
            events.append(item.publish_date)
            if item.expiry is not None:
                events.append(item.expiry)
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
    state: State,
    *,
    parsed: int = 0,
    counts: tuple[int, int] | None = None,
    workers: int | None = None,
    reselect: Callable[[Set[str]], Sequence[Article]] | None = None,
) -> BuildReport:
    """The feeds of `articles` written; `counts` (articles, published) when `articles` holds only the
    published ones that can be in a feed (see `cache.Cache.feed_candidates`), and then `reselect`
    gives them again without the articles of some sources."""
    published = [a for a in articles if is_published(a, now)]
    from .feed_sets import plan_feed_sets  # feedgen and Markdown load only when a build has work
    from .feeds import INDEX, OPML, feed_key, pages_key

    folder = config.feeds.dir
    owners_before = state.feed_owners(str(folder))  # a published feed file keeps its topic
    plan = plan_feed_sets(published, config, owners_before)  # one set of feeds per language
    total, published_count = counts if counts is not None else (len(articles), len(published))
    report = BuildReport(
        articles=total,
        published=published_count,
        feeds=plan.feeds,
        parsed=parsed,
        problems=[*problems, *plan.problems],  # unreadable articles, then topics renamed by a clash
    )
    fingerprint = f"{__version__}:{RENDER_VERSION}:{plan.fingerprint()}"
    if cache.fingerprint(str(folder)) == fingerprint and _outputs_intact(folder):
        state.record_feed_owners(str(folder), plan.owners())  # feeds published before owners were kept
        report.up_to_date = True
        report.unchanged = sorted(read_manifest(folder))
        return report
    # The files are about to change: the last `build`'s record no longer describes them (this may be a
    # `run`, at another time); `build` records anew when it is the caller.
    cache.forget_build_record(str(folder))

    # An article whose Markdown cannot be rendered within its budget is not published: the feeds are
    # planned again without it (another may take its place), as if it were not there. Its verdict is
    # cached, so whichever worker was killed for it, the same input makes the same feeds.
    unrenderable: list[Article] = []
    while True:
        render_problems: list[Problem] = []
        entries = render_entries(
            [*plan.articles, *unrenderable], config, cache, workers, problems=render_problems
        )
        newly = [a for a in plan.articles if a.entry_id not in entries]
        if not newly:
            break
        unrenderable += newly
        gone = {a.source for a in unrenderable}
        remaining = articles if reselect is None else reselect(gone)
        plan = plan_feed_sets(
            [a for a in remaining if is_published(a, now) and a.source not in gone], config, owners_before
        )
    if unrenderable:
        fingerprint = f"{__version__}:{RENDER_VERSION}:{plan.fingerprint()}"
        report.feeds = plan.feeds
        report.published = published_count - len(unrenderable)
        report.problems = [*sorted([*problems, *render_problems], key=lambda p: p.path), *plan.problems]
    report.rendered = len(entries)
    # A feed whose inputs are those it was last written from is the file on disk (when nobody changed
    # it): only the feeds an edit reaches are made again.
    entry_keys = {a.entry_id: _render_key(a, config) for a in plan.articles if a.entry_id in entries}
    feed_keys = {
        f"{feed_set.prefix}{spec.slug}.xml": f"{RENDER_VERSION}:{feed_key(spec, entry_keys, feed_set.config)}"
        for feed_set in plan.sets
        for spec in feed_set.plan.feeds
    }
    for feed_set in plan.sets:  # the OPML and the index page, made from the list of feeds
        key = pages_key(feed_set.plan, feed_set.config)
        feed_keys |= {f"{feed_set.prefix}{OPML}": key, f"{feed_set.prefix}{INDEX}": key}
    known = cache.feed_keys(str(folder))
    manifest = read_manifest(folder)
    kept = {}
    for name, key in feed_keys.items():
        if known.get(name) == key and name in manifest:
            with contextlib.suppress(OSError):
                data = (folder / name).read_bytes()
                if hashlib.sha256(data).hexdigest() == manifest[name]:
                    kept[name] = data
    files = plan.render(entries, kept)
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    cache.set_feed_keys(str(folder), {})  # the files are about to change
    written = write_tree(folder, files, digests)
    state.record_feed_owners(str(folder), plan.owners())
    report.written, report.unchanged, report.removed = written.written, written.unchanged, written.removed
    cache.set_feed_keys(str(folder), feed_keys)
    cache.set_fingerprint(str(folder), fingerprint)
    return report


def _outputs_intact(folder: Path) -> bool:
    """The files the last build wrote are all there, byte for byte (nobody edited or deleted one)."""
    manifest = read_manifest(folder)
    if not manifest:
        return False
    for name, expected in manifest.items():
        try:
            data = (folder / name).read_bytes()
        except OSError:
            return False
        if hashlib.sha256(data).hexdigest() != expected:
            return False
    return True


def _render_key(article: Article, config: Config) -> str:
    """Everything a rendered entry depends on: the file, and the fields settings choose or derive."""
    inputs = (
        article.content_hash,
        article.url,
        article.entry_id,
        article.title,
        article.summary,
        article.image,
    )
    digest = hashlib.sha256(repr(inputs).encode()).hexdigest()
    return f"{RENDER_VERSION}:{config.content.summary_chars}:{digest}"


def render_entries(
    articles: Sequence[Article],
    config: Config,
    cache: Cache | None,
    workers: int | None = None,
    *,
    prune: bool = True,
    problems: list[Problem] | None = None,
) -> dict[str, RenderedEntry]:
    """Rendered HTML, summary and image of each article (`render.render_entry`), by entry id.

    Markdown is rendered only when the cache has no rendering of the same bytes, in worker processes
    (on every core when there are many), each article within `[content] render_timeout`: one that
    runs out of it, or fails, is left out and reported in `problems`. That verdict is cached as a
    rendering is, so the feeds and the digest agree on it and no later build spends the budget on the
    same bytes again (until the budget is raised). `prune` (a feeds build) drops the cache's renderings
    of every other article.
    """
    from .render import RenderedEntry, prepare, render_parts, unrendered  # Markdown and nh3 load here

    budget = config.content.render_timeout
    keys = {a.entry_id: _render_key(a, config) for a in articles}
    cached = cache.rendered(keys.values()) if cache is not None else {}
    verdicts = cache.render_failures(k for k in keys.values() if k not in cached) if cache is not None else {}
    # A failure stands; running out of time stands unless the budget is larger now.
    failed = {k: v for k, v in verdicts.items() if v[0] is None or budget <= v[0]}
    settled = cached.keys() | failed.keys()
    missing = load_bodies(config, [a for a in articles if keys[a.entry_id] not in settled])
    cores = workers if workers is not None else (os.cpu_count() or 1)
    new_entries: dict[str, RenderedEntry] = {}
    new_failures: dict[str, tuple[float | None, str]] = {}
    if missing:  # worker processes (and multiprocessing) only when there is something to render
        from .workers import Failed, Overrun, bounded_map

        # Imported and built once, here: the workers fork with the converters.
        prepare(*sorted({a.markup for a in missing}))
        outcomes = bounded_map(
            functools.partial(render_parts, summary_chars=config.content.summary_chars),
            missing,
            budget=budget,
            workers=cores if len(missing) >= _PARALLEL_RENDER_THRESHOLD else 1,
        )
        for article, outcome in zip(missing, outcomes, strict=True):
            if isinstance(outcome, Overrun):
                new_failures[keys[article.entry_id]] = (outcome.seconds, "")
            elif isinstance(outcome, Failed):
                new_failures[keys[article.entry_id]] = (None, outcome.message)
            else:
                new_entries[keys[article.entry_id]] = RenderedEntry(*outcome)
    if cache is not None:
        keep = set(keys.values()) if prune else None
        cache.store_rendered(new_entries, keep=keep)
        cache.store_render_failures(new_failures, keep=keep)
    failed.update(new_failures)
    if problems is not None:
        for article in articles:
            if keys[article.entry_id] in failed:
                message, hint = unrendered(*failed[keys[article.entry_id]])
                problems.append(Problem(shown_path(config, article.source), message, hint=hint))
    by_key = {**cached, **new_entries}
    return {entry_id: by_key[key] for entry_id, key in keys.items() if key in by_key}


def check(config: Config, notes: list[str] | None = None) -> list[Problem]:
    """Every problem `build` and `run` would meet, without writing anything: unreadable articles, two
    topics on one feed file, and unusable subscribers. `notes` receives what is worth saying but is no
    problem (a Hugo site's undated pages, files Hugo skips, unknown shortcodes)."""
    from .cron import feeds_trigger, run_trigger
    from .delivery import envelope_sender
    from .subscribers import load_subscribers, require_subscribers

    collection = _collect(config)
    problems = list(collection.problems)
    if notes is not None:
        notes.extend(collection.notes)
        notes.extend(_permalink_notes(config))
    try:
        run_trigger(config)  # what `digest schedule` would refuse at start
        feeds_trigger(config)
    except DigestError as exc:
        problems.append(Problem.from_error(exc, str(config.path)))
    try:
        from .feed_sets import plan_feed_sets

        owners = peek_feed_owners(config.state.path, str(config.feeds.dir))
        problems.extend(plan_feed_sets(collection.articles, config, owners).problems)  # every topic
    except OutputError as exc:
        problems.append(Problem.from_error(exc, str(config.path)))
    if config.server.enabled:
        from .audience import signing_keys

        try:
            signing_keys(config)  # `run` signs each recipient's links; `serve` checks every token
        except DigestError as exc:
            problems.append(Problem.from_error(exc, str(config.path)))
    if config.subscribers.file is not None or config.subscribers.list:
        try:
            envelope_sender(config)  # `run` needs an address in [digest] from to send anything
            subscribers = load_subscribers(config)
            problems.extend(subscribers.problems)
            if notes is not None:
                notes.extend(_language_notes(config, subscribers.subscribers))
            require_subscribers(config, subscribers)  # `run` refuses a list with nobody usable in it
        except DigestError as exc:
            problems.append(Problem.from_error(exc, str(config.path)))
    return problems


def _permalink_notes(config: Config) -> list[str]:
    """The deprecation note of a `[content] permalink` written with the old `{slug}` placeholders."""
    from .urls import legacy_permalink

    tokens = legacy_permalink(config.content.permalink) if config.hugo is None else None
    if tokens is None:
        return []
    return [
        f"{config.path}: [content] permalink {config.content.permalink!r} uses the old {{…}} placeholders, "
        f"deprecated: it reads as {tokens!r} (Hugo's tokens); write that instead"
    ]


def _language_notes(config: Config, subscribers: Sequence[Subscriber]) -> list[str]:
    """One note per language tag of the list that names none of the site's languages."""
    from .feed_sets import language_of, site_languages

    tags = collections.Counter(subscriber.language for subscriber in subscribers)
    unknown = {tag: n for tag, n in tags.items() if language_of(config, tag) is None}
    default = site_languages(config)[0].config.site.language
    return [
        f"subscribers: language {tag!r} ({count} subscriber{'s' if count != 1 else ''}) is none of the "
        f"site's; they get the digest in {default}"
        for tag, count in unknown.items()
    ]


def schedule_lines(config: Config, now: dt.datetime) -> list[str]:
    """`next runs: …` for each schedule, from the triggers `digest schedule` uses (cron.schedule_lines)."""
    from .cron import schedule_lines as lines

    return lines(config, now)


# ---------------------------------------------------------------- the weekly job


def run(
    config: Config,
    now: dt.datetime,
    *,
    sleep: Callable[[float], None] | None = None,
    stop: threading.Event | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> RunReport:
    """The weekly job once: collect, build the feeds, then check what delivery needs, finish an
    interrupted digest, compose what is new, record it, write its web copy, deliver it, and record each
    delivery as it is accepted.

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
    # Delivery, mail and templates load here, not at import: `digest build` should not pay for them.
    from . import audience, weekly
    from .delivery import Transport, envelope_sender, open_transport

    report = RunReport(now=now)
    # The feeds first: they must not go stale while the mail server is down or the list is empty.
    cache = Cache(state.db)
    collection = _collect(config, cache, known_ids=state.known_entry_ids())
    articles = stable_ids(collection.articles, state, now)
    report.build = _build_feeds(
        config, now, articles, collection.problems, cache, state, parsed=collection.parsed
    )
    report.problems.extend(report.build.problems)  # the unreadable articles, then renamed topics

    # Then what delivery needs, before the digest records anything: a list with nobody usable in it
    # would record a digest sent to nobody and mark its articles sent; no sender address, password or
    # signing key would stop every delivery. Opening the transport does not connect yet.
    subscribers = audience.recipients(config, state, report, now)
    sender = envelope_sender(config)
    questions = audience.audience(config, state, now)

    def connect(halt: threading.Event) -> Transport:  # one of `[delivery] connections`
        return open_transport(config, sleep=sleep, stop=halt)

    courier = weekly.Courier(config, state, report, now, connect, sender, stop, questions)
    try:
        state.record_articles_seen(a.entry_id for a in articles)

        # A killed run's digest is finished, exactly as it was recorded, before anything new is composed.
        for record in state.unfinished():
            report.resumed.append(record.period)
            weekly.write_web_copy(config, state, record, None, report)
            courier.deliver(record, subscribers)
            if report.stopped:
                return report

        from .selection import period_of

        period = period_of(now, config)
        if state.digest_for_period(period) is not None:
            report.already_sent = period
            log.info("digest %s was already sent; nothing new to send", period)
            return report
        history = state.history()
        unrendered: list[Problem] = []
        editions = _compose_editions(config, articles, now, history, cache, unrendered)
        report.problems.extend(p for p in unrendered if p not in report.problems)
        if not editions:
            log.info("nothing new since the last digest; nothing sent")
            return report
        record, webs = weekly.record_digest(config, state, editions, subscribers, report)
        weekly.write_web_copy(config, state, record, webs, report)
        courier.deliver(record, subscribers)
        return report
    finally:
        courier.close()


def _compose(
    config: Config,
    articles: Sequence[Article],
    now: dt.datetime,
    history: History,
    cache: Cache | None,
    problems: list[Problem] | None = None,
) -> Digest | None:
    """The digest of what is new, its summaries read from the render stage (the cache when there is
    one): the same values the feeds show. Only the new articles' Markdown is read, when not cached."""
    from .selection import select_digest

    usable, entries = _new_rendered(config, articles, now, history, cache, problems)
    return select_digest(usable, config, now, history.previous_cutoff, history.sent_ids, entries)


def _compose_editions(
    config: Config,
    articles: Sequence[Article],
    now: dt.datetime,
    history: History,
    cache: Cache | None,
    problems: list[Problem] | None = None,
) -> tuple[Edition, ...]:
    """The digest of what is new in each site language (`selection.select_editions`), from the same
    renderings as `_compose`'s."""
    from .selection import select_editions

    usable, entries = _new_rendered(config, articles, now, history, cache, problems)
    return select_editions(usable, config, now, history.previous_cutoff, history.sent_ids, entries)


def _new_rendered(
    config: Config,
    articles: Sequence[Article],
    now: dt.datetime,
    history: History,
    cache: Cache | None,
    problems: list[Problem] | None,
) -> tuple[list[Article], Mapping[str, RenderedEntry]]:
    """The articles a digest may hold (without those that cannot be rendered) and the renderings of the
    new ones."""
    from .selection import new_articles

    chosen = new_articles(articles, config, now, history.previous_cutoff, history.sent_ids)
    entries = render_entries(chosen, config, cache, prune=False, problems=problems)
    return _rendered_only(articles, chosen, entries), entries


def _rendered_only(
    articles: Sequence[Article], chosen: Sequence[Article], entries: Mapping[str, RenderedEntry]
) -> list[Article]:
    """`articles` without those `chosen` for a digest that could not be rendered (the feeds' verdict,
    from the cache): they are not in the digest either."""
    unrenderable = {a.entry_id for a in chosen if a.entry_id not in entries}
    return [a for a in articles if a.entry_id not in unrenderable]


@dataclass(frozen=True)
class Upcoming:
    """The digest that would go out next, and the periods of those already recorded."""

    digest: Digest | None
    periods: tuple[str, ...]


def upcoming(config: Config, now: dt.datetime) -> Upcoming:
    """The digest `run` would compose at `now`, read-only: the state's history is read once and nothing
    is recorded (works without a state database). When a digest for `now`'s period is already recorded,
    `run` sends nothing more this period, and this is what the next period's digest holds so far."""
    now = config.site.localize(now)
    history = peek_history(config.state.path)
    articles = peek_stable_ids(_collect(config).articles, config.state.path)
    return Upcoming(_compose(config, articles, now, history, None), history.periods)


# ---------------------------------------------------------------- a first config


def init_hugo(config_path: Path, site_root: Path) -> list[Path]:
    """Write a starting config for the Hugo site at `site_root` (its Hugo config read and checked
    first), and an empty subscribers file beside it when there is none; never overwrites a config."""
    from .hugo_config import read_hugo_config
    from .hugo_content import starter_config
    from .output import write_atomic

    if config_path.exists():
        raise DigestError(
            "the config file already exists", path=str(config_path), hint="pass another --config"
        )
    root = site_root.resolve()
    site = read_hugo_config(root)
    folder = config_path.resolve().parent
    try:
        shown = root.relative_to(folder).as_posix() or "."
    except ValueError:
        shown = str(root)
    written = []
    subscribers = folder / "subscribers.csv"
    if not subscribers.exists():
        write_atomic(subscribers, b"email,name,topics\n")
        written.append(subscribers)
    write_atomic(config_path, starter_config(site, shown).encode("utf-8"))
    return [config_path, *written]


# ---------------------------------------------------------------- the scheduler's record


@dataclass(frozen=True)
class ScheduleStatus:
    last_run: dt.datetime | None  # when the last scheduled run of the job started
    unfinished: tuple[str, ...]  # periods of digests a killed run left unfinished


def schedule_status(config: Config, job: str, now: dt.datetime) -> ScheduleStatus:
    """What the scheduler needs at start-up; the first start records `now` as the job's last run, so
    that a fire time missed while the machine is off is owed from then on."""
    with _state(config) as state:
        last = state.last_scheduled_run(job)
        if last is None:
            state.record_scheduled_run(job, now)
        return ScheduleStatus(last, tuple(record.period for record in state.unfinished()))


def record_scheduled_run(config: Config, job: str, started: dt.datetime) -> None:
    """A scheduled run of `job` that started at `started` is done (or failed): it is not owed again."""
    with _state(config) as state:
        state.record_scheduled_run(job, started)


@contextlib.contextmanager
def _state(config: Config) -> Iterator[State]:
    state = State.open(config.state.path)
    try:
        yield state
    finally:
        state.close()


# ---------------------------------------------------------------- subscribers


def subscriber_app(
    config: Config, now: Callable[[], dt.datetime], environ: Mapping[str, str] | None = None
) -> Flask:
    """The subscriber pages (`digest serve`) as a WSGI app; `now` is its clock."""
    from .audience import subscriber_app as app

    return app(config, now, environ)


def serve(
    config: Config, now: Callable[[], dt.datetime], *, on_ready: Callable[[], None] | None = None
) -> None:
    """`digest serve`: the subscriber pages on waitress at `[server] host` and `port`, until stopped;
    `on_ready` is called once the app is made (the keys, the state and the sender were usable)."""
    from .web import serve as serve_app

    app = subscriber_app(config, now)
    if on_ready is not None:
        on_ready()
    serve_app(app, config.server.host, config.server.port, config.server.threads)


def import_subscribers(config: Config, path: Path, now: dt.datetime) -> ImportReport:
    """`digest subscribers import FILE.csv`: new addresses become active subscribers; suppressed ones
    are skipped; active ones keep what they chose."""
    from . import subscriptions as store
    from .audience import read_csv

    text = read_csv(path)
    with _state(config) as state:
        store.migrate(state.db)
        return store.import_csv(state.db, text, str(path), now)


def export_subscribers(config: Config, *, consent: bool = False) -> str:
    """Every subscriber and suppressed address as CSV, or (`consent`) the whole consent log."""
    from . import subscriptions as store

    with _state(config) as state:
        store.migrate(state.db)
        return store.export_consent(state.db) if consent else store.export_subscribers(state.db)


def list_subscribers(config: Config) -> list[tuple[str, str, frozenset[str], str]]:
    """(address, status, topic keys, suppression reason) of everyone in the store."""
    from . import subscriptions as store

    with _state(config) as state:
        store.migrate(state.db)
        return store.listing(state.db)


def remove_subscriber(config: Config, address: str, now: dt.datetime) -> tuple[str, bool]:
    """`digest subscribers remove`: suppress the address (logged as an editor's unsubscribe)."""
    from . import subscriptions as store
    from .audience import remove

    with _state(config) as state:
        store.migrate(state.db)
        return remove(state.db, address, now)


def read_bounces(config: Config, path: Path, now: dt.datetime) -> BounceSummary:
    """`digest bounces PATH`: apply the bounce reports of an mbox file or a Maildir."""
    from .audience import read_bounces as apply

    with _state(config) as state:
        return apply(config, state, path, now)
