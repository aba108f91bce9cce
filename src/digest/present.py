"""What the digest's templates see: plain strings, already localized, linked and tagged. Pure.

`build_context` turns a selected `Digest` into the values the templates show: dates in the site's
language, links with UTM parameters, the archive links. Rendering and the MIME message are
`templating.py`'s and `message.py`'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from .config import Config
from .feeds import feeds_url
from .i18n import localisation
from .render import truncate
from .selection import Digest, DigestItem
from .text import one_line

# ---------------------------------------------------------------- how the digest reads

# Stands for the recipient's address until build_message fills it in. Letters, digits and '-' only, so
# lxml's URL escaping of href values leaves it intact (a literal "{email}" would become %7Bemail%7D).
RECIPIENT_PLACEHOLDER = "x-digest-recipient-5b1f0c"
# Stand for the recipient's signed tokens (`tokens.py`) in links to the subscriber service ([server]).
UNSUBSCRIBE_PLACEHOLDER = "x-digest-unsubscribe-5b1f0c"
PREFERENCES_PLACEHOLDER = "x-digest-preferences-5b1f0c"
# Featured images are laid out 16:9 across the text column (600 px minus 2 x 32 px padding). Outlook
# uses these attributes; every other client follows the CSS `height:auto` and keeps the real ratio.
IMAGE_WIDTH, IMAGE_HEIGHT = 536, 302


def strings(config: Config) -> dict[str, str]:
    """The digest's own words in the site's language (`i18n`'s catalogue), by the names templates use
    (`t.toc`, `t.browser`…). `articles` and `more` are the plural forms; `build_context` says each
    with its number (`articles_text`, `overflow_text`)."""
    loc = localisation(config.site.language)
    _, p = loc.gettext, loc.pgettext
    return {
        "toc": _("In this issue"),
        "read": _("Read more"),
        "count": p("table of contents: articles under a topic", "{n}"),
        "articles": loc.ngettext("{n} article", "{n} articles", 2),
        "more": loc.ngettext(
            "{n} more article is not shown in this email", "{n} more articles are not shown in this email", 2
        ),
        "more_link": _("See them all on the web"),
        "browser": _("View in browser"),
        "unsubscribe": _("Unsubscribe"),
        "manage": _("Manage preferences"),
        "reason": _("You receive this email because you subscribed to {site}."),
        "archive": _("Past issues"),
        "web_note": _("This is the web copy of the {site} digest."),
        "list_sep": p("between article titles in a list", " · "),
        "colon": p("before the list of titles", ": "),
        "issue": _("Week {week}"),
    }


def unsubscribe_link(config: Config) -> str:
    """The unsubscribe URL of every digest, with placeholders for the recipient ("" when there is
    none): the subscriber service's when `[server]` is configured, else `[digest] unsubscribe_url`.
    The footer and `List-Unsubscribe` both come from here."""
    if config.server.enabled:
        return config.server.public_url + "unsubscribe/" + UNSUBSCRIBE_PLACEHOLDER
    return config.digest.unsubscribe_url.replace("{email}", RECIPIENT_PLACEHOLDER)


def preferences_link(config: Config) -> str:
    """The "manage preferences" URL, with placeholders for the recipient ("" when there is none)."""
    if config.server.enabled:
        return config.server.public_url + "preferences/" + PREFERENCES_PLACEHOLDER
    return config.digest.manage_url.replace("{email}", RECIPIENT_PLACEHOLDER)


def articles_text(config: Config, count: int) -> str:
    """`12 articles`, `本期 12 篇`: the number in the site's locale, in the right plural."""
    loc = localisation(config.site.language)
    return loc.ngettext("{n} article", "{n} articles", count).format(n=loc.number(count))


def overflow_text(config: Config, count: int) -> str:
    loc = localisation(config.site.language)
    return loc.ngettext(
        "{n} more article is not shown in this email", "{n} more articles are not shown in this email", count
    ).format(n=loc.number(count))


def format_date(value: dt.datetime, config: Config) -> str:
    """A date as readers of the site's language write it (Babel): 2025年6月25日, June 25, 2025; ISO 8601
    for a language Babel does not know."""
    return localisation(config.site.language).date(value.astimezone(config.site.tz).date())


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
    preheader = truncate(articles_text(config, count) + t["colon"] + titles, 120)
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
        "overflow_text": overflow_text(config, len(overflow)),
        "articles_text": articles_text(config, count),
        "image_width": IMAGE_WIDTH,
        "image_height": IMAGE_HEIGHT,
        "links": {
            "browser": with_utm(archive_url(config, period), config, period),
            "archive": archive_index_url(config),
            # The web copy is for everyone: no link of one subscriber's in it.
            "unsubscribe": "" if web else unsubscribe_link(config),
            "manage": "" if web else preferences_link(config),
        },
        "web": web,
        "t": t,
        "reason": t["reason"].format(site=config.site.title),
        "web_note": t["web_note"].format(site=config.site.title),
    }


def archive_index_context(config: Config, periods: Sequence[str]) -> dict[str, Any]:
    """What the archive index template sees: every digest's period and link, in the order given."""
    folder = archive_folder_url(config)  # resolves paths: once, not once per digest
    return {
        "site": {"title": config.site.title, "language": config.site.language, "url": config.site.base_url},
        "t": strings(config),
        "self_url": archive_index_url(config),
        "digests": [{"period": p, "url": f"{folder}{p}.html", "name": f"{p}.html"} for p in periods],
    }
