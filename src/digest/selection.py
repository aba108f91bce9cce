"""Which articles a digest holds, grouped and in what order. Pure: no clock, no files.

A digest is the published articles that are new since the last one, each shown once under its first
topic (its other topics become labels), topics ordered by `[digest] topic_order` and then by size,
articles newest first. What the templates see is `present.py`'s; each item's summary and image come from
the render stage (`render.RenderedEntry`, the same value the feeds show); deciding what was already sent
is the caller's (`jobs.py` hands in the previous cut-off and the ids already sent).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from .config import Config
from .content import Article, Topic, is_published, site_topics, topic_key
from .feed_sets import articles_by_language, site_languages
from .feeds import hashed_slug, topic_slug
from .i18n import localisation
from .render import RenderedEntry, render_entry

# The group of articles that have no topic; its key can never be a real topic key (those are non-empty).
OTHER_KEY = ""
_ANCHOR_SAFE = re.compile(r"[a-z0-9_-]+")


@dataclass(frozen=True)
class DigestItem:
    article: Article
    summary: str  # the rendered entry's: the same summary the feeds show
    image: str  # the rendered entry's featured image URL ("" if none)
    labels: tuple[str, ...]  # the article's other topics (display names)


@dataclass(frozen=True)
class TopicGroup:
    topic: Topic
    anchor: str  # stable ASCII id for the table of contents' "#..." link
    items: tuple[DigestItem, ...]


@dataclass(frozen=True)
class Digest:
    period: str  # ISO week of `now` in the site timezone, "%G-W%V"
    since: dt.datetime  # lower bound used (exclusive)
    now: dt.datetime  # cut-off (inclusive)
    groups: tuple[TopicGroup, ...]
    overflow: tuple[DigestItem, ...] = ()  # oldest items moved to "and N more" by the size budget

    @property
    def items(self) -> tuple[DigestItem, ...]:
        """The items shown in full, in display order."""
        return tuple(item for group in self.groups for item in group.items)

    @property
    def article_ids(self) -> tuple[str, ...]:
        """entry_ids of every article in the digest, overflow included, sorted."""
        return tuple(sorted(item.article.entry_id for item in (*self.items, *self.overflow)))

    @property
    def count(self) -> int:
        """Articles in the digest, overflow included (no __len__: an empty shell must still be truthy)."""
        return len(self.items) + len(self.overflow)


def period_of(now: dt.datetime, config: Config) -> str:
    """The ISO week of `now` in the site timezone, e.g. "2025-W26"."""
    return now.astimezone(config.site.tz).strftime("%G-W%V")


def lower_bound(config: Config, now: dt.datetime, previous_cutoff: dt.datetime | None) -> dt.datetime:
    """Articles published after this instant may go in the digest.

    The first digest covers `first_lookback` days, or everything since `[digest] since`, so it does not
    dump the archive. Later ones look back `max_age` days: the ids already sent (not the previous cut-off)
    prevent repeats, so an article backdated or fixed after a digest went out still goes out once.
    """
    since = config.site.localize(config.digest.since) if config.digest.since is not None else None
    if previous_cutoff is None:
        return since if since is not None else now - dt.timedelta(days=config.digest.first_lookback)
    lower = now - dt.timedelta(days=config.digest.max_age)
    return max(lower, since) if since is not None else lower


def new_articles(
    articles: Sequence[Article],
    config: Config,
    now: dt.datetime,
    previous_cutoff: dt.datetime | None = None,
    sent_ids: frozenset[str] = frozenset(),
) -> list[Article]:
    """The articles a digest at `now` holds: published, never sent, and after the lower bound."""
    lower = lower_bound(config, now, previous_cutoff)
    return [
        a for a in articles if is_published(a, now) and a.entry_id not in sent_ids and a.publish_date > lower
    ]


def select_digest(
    articles: Sequence[Article],
    config: Config,
    now: dt.datetime,
    previous_cutoff: dt.datetime | None = None,
    sent_ids: frozenset[str] = frozenset(),
    entries: Mapping[str, RenderedEntry] | None = None,
) -> Digest | None:
    """The digest that goes out at `now`, or None when nothing is new.

    `entries` are the chosen articles' renderings by entry id (`jobs` hands them in from the render
    cache); an article missing there is rendered here, by the same function, so it needs its body.
    """
    chosen = new_articles(articles, config, now, previous_cutoff, sent_ids)
    if not chosen:
        return None
    # Display names come from every article, so a topic is spelled as in the feeds.
    names = site_topics(articles)
    groups = group_articles(chosen, names, config, entries or {})
    lower = lower_bound(config, now, previous_cutoff)
    return Digest(period=period_of(now, config), since=lower, now=now, groups=groups)


@dataclass(frozen=True)
class Edition:
    """The digest of one site language: what its subscribers get (before their topics pick from it)."""

    language: str  # the site language's key (`feed_sets.SiteLanguage`); "" on a one-language site
    config: Config  # the config as that language's digest sees it: its title, words, dates, URLs
    digest: Digest


def select_editions(
    articles: Sequence[Article],
    config: Config,
    now: dt.datetime,
    previous_cutoff: dt.datetime | None = None,
    sent_ids: frozenset[str] = frozenset(),
    entries: Mapping[str, RenderedEntry] | None = None,
) -> tuple[Edition, ...]:
    """One digest per site language that has something new, from that language's articles only, in
    the order of `feed_sets.site_languages` (the default language first); () when nothing is new. A
    one-language site has one edition: `select_digest`'s digest."""
    by_language = articles_by_language(articles, config)
    editions = []
    for language in site_languages(config):
        digest = select_digest(
            by_language.get(language.key, []), language.config, now, previous_cutoff, sent_ids, entries
        )
        if digest is not None:
            editions.append(Edition(language.key, language.config, digest))
    return tuple(editions)


def group_articles(
    articles: Sequence[Article],
    names: dict[str, Topic],
    config: Config,
    entries: Mapping[str, RenderedEntry],
) -> tuple[TopicGroup, ...]:
    """Each article once, under its first topic; topics in the configured order, then by size."""
    by_topic: dict[str, list[DigestItem]] = {}
    for article in articles:
        keys = [topic_key(name) for name in article.topics]
        first = keys[0] if keys else OTHER_KEY
        labels = tuple(
            names[k].name if k in names else n.strip()
            for k, n in zip(keys[1:], article.topics[1:], strict=True)
        )
        entry = entries.get(article.entry_id) or render_entry(article, config.content.summary_chars)
        item = DigestItem(article, entry.summary, entry.image, labels)
        by_topic.setdefault(first, []).append(item)

    def topic(key: str) -> Topic:
        if key == OTHER_KEY:
            return Topic(key=OTHER_KEY, name=other_label(config))
        return names.get(key, Topic(key=key, name=key))

    order = _topic_order(by_topic, {k: topic(k) for k in by_topic}, config.digest.topic_order)
    anchors = _anchors([topic(k) for k in order], config)
    return tuple(
        TopicGroup(topic=topic(key), anchor=anchors[key], items=tuple(_newest_first(by_topic[key])))
        for key in order
    )


def other_label(config: Config) -> str:
    """The name of the group of articles without a topic, in the site's language."""
    return localisation(config.site.language).pgettext("the topic of articles that have none", "Other")


def _topic_order(
    by_topic: dict[str, list[DigestItem]], topics: dict[str, Topic], configured: Sequence[str]
) -> list[str]:
    wanted = [topic_key(name) for name in configured]
    first = [key for key in dict.fromkeys(wanted) if key in by_topic and key != OTHER_KEY]
    rest = sorted(
        (key for key in by_topic if key not in first and key != OTHER_KEY),
        key=lambda key: (-len(by_topic[key]), topics[key].name, key),
    )
    # Articles without a topic always come last: they are the least curated part of the issue.
    tail = [OTHER_KEY] if OTHER_KEY in by_topic else []
    return first + rest + tail


def _newest_first(items: Iterable[DigestItem]) -> list[DigestItem]:
    ordered = sorted(items, key=lambda item: item.article.entry_id)
    return sorted(ordered, key=lambda item: item.article.publish_date, reverse=True)


def _anchors(topics: Sequence[Topic], config: Config) -> dict[str, str]:
    """An ASCII id per topic for the TOC links: `topic-` and the topic's feed slug (`feeds.topic_slug`:
    stable, from `[feeds] topic_slugs`, an ASCII name or a hash), suffixed `-2`, `-3` when two topics
    would share one (the feeds refuse that clash; a digest only needs the ids to differ). A slug with
    more than `a-z 0-9 - _` (a Hugo term's: `c#`, `中文`) gives the topic's hashed name instead, so the
    id is also a `#fragment` as it is, in any mail client."""
    anchors: dict[str, str] = {}
    used: set[str] = set()
    for t in topics:
        slug = "other" if t.key == OTHER_KEY else topic_slug(t, config)
        if not _ANCHOR_SAFE.fullmatch(slug):
            slug = hashed_slug(t)
        base = slug if slug.startswith("topic-") else "topic-" + slug
        anchor, n = base, 2
        while anchor in used:
            anchor, n = f"{base}-{n}", n + 1
        used.add(anchor)
        anchors[t.key] = anchor
    return anchors


def for_topics(digest: Digest, topic_keys: frozenset[str]) -> Digest | None:
    """The part of the digest a subscriber of these topics gets: articles with ANY of the topics."""
    wanted = {topic_key(key) for key in topic_keys}

    def matches(item: DigestItem) -> bool:
        return any(topic_key(name) in wanted for name in item.article.topics)

    groups = []
    for group in digest.groups:
        items = tuple(item for item in group.items if matches(item))
        if items:
            groups.append(replace(group, items=items))
    overflow = tuple(item for item in digest.overflow if matches(item))
    if not groups and not overflow:
        return None
    return replace(digest, groups=tuple(groups), overflow=overflow)


def move_oldest_to_overflow(digest: Digest, count: int) -> Digest:
    """The digest with its `count` oldest shown items moved into the "and N more" overflow."""
    if count <= 0:
        return digest
    shown = sorted(digest.items, key=lambda item: item.article.entry_id)
    shown.sort(key=lambda item: item.article.publish_date)
    moved = shown[:count]
    moved_ids = {id(item) for item in moved}
    groups = []
    for group in digest.groups:
        items = tuple(item for item in group.items if id(item) not in moved_ids)
        if items:
            groups.append(replace(group, items=items))
    overflow = tuple(_newest_first([*digest.overflow, *moved]))
    return replace(digest, groups=tuple(groups), overflow=overflow)
