"""Which articles a digest holds, in what order, and how it reads. Pure: no clock, no files.

A digest is the published articles that are new since the last one, each shown once under its first
topic (its other topics become labels), topics ordered by `[digest] topic_order` and then by size,
articles newest first. `build_context` turns it into what the templates show: dates in the site's
language, links with UTM parameters, the archive links. Rendering and the MIME message are `message.py`'s
job; deciding what was already sent is the caller's (`jobs.py` hands in the previous cut-off and the ids
already sent).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from .config import Config
from .content import Article, Topic, is_published, site_topics, topic_key
from .feeds import feeds_url, topic_slug
from .render import image_url, summary_text, truncate

# The group of articles that have no topic; its key can never be a real topic key (those are non-empty).
OTHER_KEY = ""
_OTHER_NAMES = {"zh": "其他", "ja": "その他"}


@dataclass(frozen=True)
class DigestItem:
    article: Article
    summary: str  # render.summary_text
    image: str  # render.image_url ("" if none)
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


def select_digest(
    articles: Sequence[Article],
    config: Config,
    now: dt.datetime,
    previous_cutoff: dt.datetime | None = None,
    sent_ids: frozenset[str] = frozenset(),
) -> Digest | None:
    """The digest that goes out at `now`, or None when nothing is new."""
    lower = lower_bound(config, now, previous_cutoff)
    chosen = [
        a for a in articles if is_published(a, now) and a.entry_id not in sent_ids and a.publish_date > lower
    ]
    if not chosen:
        return None
    # Display names come from every article, so a topic is spelled as in the feeds.
    names = site_topics(articles)
    groups = group_articles(chosen, names, config)
    return Digest(period=period_of(now, config), since=lower, now=now, groups=groups)


def group_articles(
    articles: Sequence[Article], names: dict[str, Topic], config: Config
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
        item = DigestItem(
            article, summary_text(article, config.content.summary_chars), image_url(article), labels
        )
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
    return _OTHER_NAMES.get(config.site.language.split("-")[0].lower(), "Other")


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
    would share one (the feeds refuse that clash; a digest only needs the ids to differ)."""
    anchors: dict[str, str] = {}
    used: set[str] = set()
    for t in topics:
        slug = "other" if t.key == OTHER_KEY else topic_slug(t, config)
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


# ---------------------------------------------------------------- how the digest reads

# Stands for the recipient's address until build_message fills it in. Letters, digits and '-' only, so
# lxml's URL escaping of href values leaves it intact (a literal "{email}" would become %7Bemail%7D).
RECIPIENT_PLACEHOLDER = "x-digest-recipient-5b1f0c"
# Featured images are laid out 16:9 across the text column (600 px minus 2 x 32 px padding). Outlook
# uses these attributes; every other client follows the CSS `height:auto` and keeps the real ratio.
IMAGE_WIDTH, IMAGE_HEIGHT = 536, 302

_STRINGS: dict[str, dict[str, str]] = {
    "zh": {
        "toc": "本期目录",
        "read": "阅读全文",
        "count": "{n} 篇",
        "articles": "本期 {n} 篇",
        "more": "还有 {n} 篇文章未在邮件中展开",
        "more_link": "在网页版查看全部",
        "browser": "在浏览器中查看",
        "unsubscribe": "退订",
        "manage": "管理订阅",
        "reason": "你收到这封邮件，是因为订阅了「{site}」。",
        "archive": "往期周报",
        "web_note": "这是「{site}」周报的网页版。",
        "list_sep": "、",
        "colon": "：",
        "issue": "第 {week} 周",
    },
    "en": {
        "toc": "In this issue",
        "read": "Read more",
        "count": "{n}",
        "articles": "{n} articles",
        "more": "{n} more articles are not shown in this email",
        "more_link": "See them all on the web",
        "browser": "View in browser",
        "unsubscribe": "Unsubscribe",
        "manage": "Manage preferences",
        "reason": "You receive this email because you subscribed to {site}.",
        "archive": "Past issues",
        "web_note": "This is the web copy of the {site} digest.",
        "list_sep": " · ",
        "colon": ": ",
        "issue": "Week {week}",
    },
}
# English month names, never the process locale's.
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def strings(config: Config) -> dict[str, str]:
    language = config.site.language.lower()
    return _STRINGS["zh" if language.startswith("zh") else "en"]


def format_date(value: dt.datetime, config: Config) -> str:
    """A date as readers of the site's language write it: 2025年6月25日, June 25, 2025, else ISO."""
    day = value.astimezone(config.site.tz).date()
    language = config.site.language.lower()
    if language.startswith(("zh", "ja")):
        return f"{day.year}年{day.month}月{day.day}日"
    if language.startswith("en"):
        return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"
    return day.isoformat()


def with_utm(url: str, config: Config, period: str) -> str:
    """The link with `[digest] utm` parameters, only when it points to the site itself and carries no
    utm_* parameter yet (an author's own campaign tags win; never doubled, never on other sites)."""
    utm = config.digest.utm
    parts = urlsplit(url)
    if not utm or parts.scheme not in ("http", "https") or (parts.hostname or "") != config.site.domain:
        return url
    if any(key.startswith("utm_") for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return url
    added = urlencode([(key, value.replace("{period}", period)) for key, value in utm.items()])
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


def archive_folder_url(config: Config) -> str:
    """The public URL of `[digest] archive_dir`: under the feeds' URL when it is inside the feeds folder."""
    root = config.root
    folder = config.digest.archive_dir
    folder = folder if folder.is_absolute() else root / folder
    feeds = config.feeds.dir if config.feeds.dir.is_absolute() else root / config.feeds.dir
    for base, url in ((feeds, feeds_url(config)), (root, config.site.base_url)):
        if folder.resolve().is_relative_to(base.resolve()):
            relative = folder.resolve().relative_to(base.resolve()).as_posix()
            return urljoin(url, quote(relative) + "/") if relative != "." else url
    return urljoin(config.site.base_url, "digests/")


def archive_url(config: Config, period: str) -> str:
    return archive_folder_url(config) + f"{period}.html"


def archive_index_url(config: Config) -> str:
    return archive_folder_url(config) + "index.html"


@dataclass(frozen=True)
class ItemView:
    title: str
    url: str  # with UTM
    summary: str
    image: str
    image_alt: str
    labels: tuple[str, ...]
    date: str  # in the site's language
    iso_date: str
    author: str


@dataclass(frozen=True)
class GroupView:
    name: str
    anchor: str
    count: int
    items: tuple[ItemView, ...]


def one_line(value: str) -> str:
    """Whitespace (CR and LF included) collapsed to single spaces: a value that can't start a header."""
    return " ".join(value.split())


def _item_view(item: DigestItem, config: Config, period: str) -> ItemView:
    article = item.article
    return ItemView(
        title=one_line(article.title),
        url=with_utm(article.url, config, period),
        summary=item.summary,
        image=item.image,
        image_alt=one_line(article.title),
        labels=item.labels,
        date=format_date(article.publish_date, config),
        iso_date=article.publish_date.astimezone(config.site.tz).date().isoformat(),
        author=article.author,
    )


def build_context(digest: Digest, config: Config, *, web: bool, subject: str) -> dict[str, Any]:
    """Everything the templates see: plain values, already localized, linked and tagged."""
    t = strings(config)
    period = digest.period
    groups = [
        GroupView(g.topic.name, g.anchor, len(g.items), tuple(_item_view(i, config, period) for i in g.items))
        for g in digest.groups
    ]
    overflow = [_item_view(i, config, period) for i in digest.overflow]
    titles = t["list_sep"].join(item.title for group in groups for item in group.items)
    count = digest.count
    preheader = truncate(t["articles"].format(n=count) + t["colon"] + titles, 120)
    return {
        "site": {
            "title": config.site.title,
            "description": config.site.description,
            "language": config.site.language,
            "url": with_utm(config.site.base_url, config, period),
        },
        "subject": subject,
        "period": period,
        "week": t["issue"].format(week=int(period.rsplit("W", 1)[1])),
        "date": format_date(digest.now, config),
        "preheader": preheader,
        "groups": groups,
        "overflow": overflow,
        "overflow_text": t["more"].format(n=len(overflow)),
        "articles_text": t["articles"].format(n=count),
        "image_width": IMAGE_WIDTH,
        "image_height": IMAGE_HEIGHT,
        "links": {
            "browser": with_utm(archive_url(config, period), config, period),
            "archive": archive_index_url(config),
            # The web copy is for everyone: no link of one subscriber's in it.
            "unsubscribe": ""
            if web
            else config.digest.unsubscribe_url.replace("{email}", RECIPIENT_PLACEHOLDER),
            "manage": "" if web else config.digest.manage_url.replace("{email}", RECIPIENT_PLACEHOLDER),
        },
        "web": web,
        "t": t,
        "reason": t["reason"].format(site=config.site.title),
        "web_note": t["web_note"].format(site=config.site.title),
    }
