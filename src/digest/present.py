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
from .render import truncate
from .selection import Digest, DigestItem
from .text import one_line

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


def archive_index_context(config: Config, periods: Sequence[str]) -> dict[str, Any]:
    """What the archive index template sees: every digest's period and link, in the order given."""
    return {
        "site": {"title": config.site.title, "language": config.site.language, "url": config.site.base_url},
        "t": strings(config),
        "self_url": archive_index_url(config),
        "digests": [{"period": p, "url": archive_url(config, p), "name": f"{p}.html"} for p in periods],
    }
