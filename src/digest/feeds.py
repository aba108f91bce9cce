"""Per-topic Atom feeds (RFC 4287) as bytes, plus the OPML list and an HTML index. Pure.

`plan_feeds` decides what goes where from article metadata alone (cheap, so an unchanged build can stop
there); `render_files` turns a plan and the rendered entries into the bytes of every file under `feeds/`.
Nothing here reads the clock: a feed's `<updated>` is its newest entry's, so it changes only when an
entry does.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

from . import DISTRIBUTION, __version__
from .config import Config
from .content import Article, Topic, clean_xml_text, shown_path, site_topics, topic_key
from .errors import OutputError, Problem
from .jinja import FEEDS_INDEX_TEMPLATE, FEEDS_OPML_TEMPLATE, feed_pages_fingerprint, render_template
from .render import RenderedEntry
from .urls import absolute, as_url, term_key, term_link

SITE_FEED = "index"
GENERATOR = "digest"
GENERATOR_URI = f"https://pypi.org/project/{DISTRIBUTION}/"  # the project's own page, not the config's
MEDIA_NS = "http://search.yahoo.com/mrss/"
ATOM = "{http://www.w3.org/2005/Atom}"
EMPTY_FEED_UPDATED = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SLUG_OK = re.compile(r"^[a-z0-9][a-z0-9_-]{0,80}$")
_RESERVED = {SITE_FEED, "feeds"}
_MAX_SLUG_BYTES = 200  # a file name of at most 255 bytes everywhere, with ".xml" and room to spare
DEFAULT_TOPIC_PAGE = "/topics/{slug}/"


@dataclass(frozen=True)
class FeedSpec:
    slug: str  # the file is feeds/<slug>.xml (`feed_href` is how a URL names it)
    title: str
    topic: Topic | None  # None for the site-wide feed
    articles: tuple[Article, ...]  # newest first, at most max_entries
    page: str  # the feed's `alternate` link: the site's home, or its page of the topic (`topic_page_url`)


@dataclass(frozen=True)
class FeedPlan:
    feeds: tuple[FeedSpec, ...]  # the site feed first, then topics by slug
    problems: tuple[Problem, ...] = ()  # topics that lost their file name to an older one

    @property
    def articles(self) -> list[Article]:
        """Every article that lands in some feed, once."""
        unique = {a.entry_id: a for spec in self.feeds for a in spec.articles}
        return [unique[key] for key in sorted(unique)]

    def fingerprint(self, config: Config) -> str:
        """Changes whenever any byte of the output could: the entries, their content, the config."""
        digest = hashlib.sha256(repr((config.site, config.content, config.feeds)).encode())
        digest.update(feed_pages_fingerprint(config).encode())
        for spec in self.feeds:
            digest.update(f"\0{spec.slug}\0{spec.title}\0{spec.page}".encode())
            for article in spec.articles:  # every field, so a change of settings that changes one counts
                digest.update(repr(article).encode())
        return digest.hexdigest()


def feeds_url(config: Config) -> str:
    """The public URL of the feeds folder, ending in '/'."""
    url = config.feeds.url or urljoin(config.site.base_url, "feeds/")
    return url if url.endswith("/") else url + "/"


def feed_href(slug: str) -> str:
    """A feed file's name as a URL path segment (relative to the feeds folder): every character
    outside RFC 3986's unreserved set percent-encoded, so `c#.xml` is `c%23.xml` (not a fragment),
    `c++.xml` is `c%2B%2B.xml` and `中文.xml` is `%E4%B8%AD%E6%96%87.xml`; a plain slug is unchanged."""
    return quote(f"{slug}.xml", safe="")


def topic_slug(topic: Topic, config: Config) -> str:
    """The file name a topic asks for: from `[feeds] topic_slugs`; else on a Hugo site its term's key
    (`hugo_slug`); else an ASCII slug of the name, else its hashed name (Chinese names have no ASCII
    letters to keep). `plan_feeds` settles clashes."""
    configured = configured_slug(topic, config)
    if configured is not None:
        return configured
    if config.hugo is not None:
        return hugo_slug(topic, config)
    ascii_name = unicodedata.normalize("NFKD", topic.key).encode("ascii", "ignore").decode()
    if ascii_name == topic.key:  # nothing was dropped: the name is ASCII
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:60].strip("-")
        if slug and slug not in _RESERVED:
            return slug
    return hashed_slug(topic)


def hugo_slug(topic: Topic, config: Config) -> str:
    """On a Hugo site, the topic's file name is its term's key, as Hugo names the term's page
    (`urls.term_key`: `C#` -> `c#`, `C++` -> `c++`, `Go Lang` -> `go-lang`, `中文` -> `中文`), made a
    safe file name: `/` and `\\` (Hugo's `tags/a/b/`) become `-`, no leading or trailing dot. A key
    that leaves nothing, is reserved (`index`) or is too long for a file name gets the hashed name."""
    assert config.hugo is not None
    key = term_key(topic.name, config.hugo.path_rules)
    slug = key.replace("/", "-").replace("\\", "-").strip(".")
    if not slug or slug.casefold() in _RESERVED or len(slug.encode("utf-8")) > _MAX_SLUG_BYTES:
        return hashed_slug(topic)
    return slug


def topic_page_url(topic: Topic, slug: str, config: Config, lang: str | None = None) -> str:
    """The topic feed's `alternate` link: `[feeds] topic_page` under the base URL; on a Hugo site
    whose topic field is one of its taxonomies, unless digest's config sets `topic_page`, the term's
    page as Hugo publishes it (`https://x.org/blog/fr/tags/c%23/`) for the language `lang` (None: the
    default language)."""
    pattern = config.feeds.topic_page
    site = config.hugo
    if pattern is None:
        plural = hugo_taxonomy(config)
        if site is not None and plural:
            prefix = site.lang_prefix(site.default_content_language if lang is None else lang)
            link = term_link(plural, topic.name, prefix, site.ugly_for(plural), site.path_rules)
            if link:
                return as_url(absolute(site.base_url, link))
        pattern = DEFAULT_TOPIC_PAGE
    # Relative to the base URL, so a site under a path (https://x.org/blog/) keeps it.
    page = pattern.format(slug=slug).lstrip("/")
    return urljoin(config.site.base_url, quote(page))


def hugo_taxonomy(config: Config) -> str:
    """The taxonomy (its plural, as the site's `[taxonomies]` names it) that `[content] topic_field`
    reads on a Hugo site, "" when the field is none of them (or the site is not a Hugo site)."""
    if config.hugo is None:
        return ""
    field_name = config.content.topic_field.lower()
    return next((p for p in config.hugo.taxonomies.values() if p.lower() == field_name), "")


def configured_slug(topic: Topic, config: Config) -> str | None:
    """The topic's slug from `[feeds] topic_slugs`, if it has one; an unusable one is a config error."""
    for name, slug in config.feeds.topic_slugs.items():
        if topic_key(name) == topic.key:
            if not _SLUG_OK.match(slug) or slug in _RESERVED:
                raise OutputError(
                    f"'feeds.topic_slugs' gives {name!r} the file name {slug!r}",
                    path=str(config.path),
                    key="feeds.topic_slugs",
                    hint="use lowercase letters, digits, '-' and '_', and not 'index'",
                )
            return slug
    return None


def hashed_slug(topic: Topic) -> str:
    """A short stable hash of the topic: the same on every machine and run (unlike hash())."""
    return "topic-" + hashlib.sha256(topic.key.encode("utf-8")).hexdigest()[:10]


def _newest_first(articles: Sequence[Article]) -> list[Article]:
    """Newest publish date first, ties broken by entry id (timestamps sort faster than aware datetimes)."""
    return sorted(articles, key=lambda a: (-a.publish_date.timestamp(), a.entry_id))


def plan_feeds(
    published: Sequence[Article],
    config: Config,
    lang: str | None = None,
    owners_before: Mapping[str, str] | None = None,
) -> FeedPlan:
    """Which articles go into which feed, and under which file name; `lang`: the Hugo site language
    whose feeds these are (None: the default language; its term pages' URLs carry its prefix);
    `owners_before`: {slug: topic key} of the feed files published before (`State.feed_owners`).

    Slugs from `[feeds] topic_slugs` come first; two topics given one there is a config error
    (OutputError). A derived slug already taken (`C#` and `C++` both make `c`) stays the topic's it was
    first published for, whichever topic's articles are older now (a feed reader subscribed to the
    file); among topics never published, it goes to the older topic, the one whose first article is
    older. The other topic gets its hashed name and a problem line, and everything else is published.
    On a Hugo site, topics that are one term to Hugo (`Go Lang` and `go-lang`: one key, one page) share
    one feed, named after the older.
    """
    owners_before = owners_before or {}
    limit = config.feeds.max_entries
    newest = _newest_first(published)
    site_title = clean_xml_text(config.site.title)
    specs = [FeedSpec(SITE_FEED, site_title, None, tuple(newest[:limit]), config.site.base_url)]
    members: dict[str, list[Article]] = {}
    first_seen: dict[str, Article] = {}
    for article in newest:
        for name in article.topics:
            members.setdefault(topic_key(name), []).append(article)
            first_seen[topic_key(name)] = article  # the last one seen is the oldest
    topics = site_topics(published)  # oldest first
    owners: dict[str, Topic] = {}
    slugs: dict[str, str] = {}
    for topic in topics.values():
        slug = configured_slug(topic, config)
        if slug is None:
            continue
        if slug in owners:
            first, second = sorted((owners[slug].name, topic.name))
            raise OutputError(
                f"topics {first!r} and {second!r} would share the feed file {slug}.xml",
                path=str(config.path),
                key="feeds.topic_slugs",
                hint="give one of them its own slug",
            )
        owners[slug], slugs[topic.key] = topic, slug
    problems: list[Problem] = []
    # On a Hugo site: each term's feed, by its identity (`_hugo_term`), the configured ones first.
    term_feeds = {_hugo_term(t, config): slugs[t.key] for t in topics.values() if t.key in slugs}
    # Then the topics that keep the file they were published under, then the others, oldest first.
    for topic in topics.values():
        slug = topic_slug(topic, config)
        term = _hugo_term(topic, config)
        kept = owners_before.get(slug) == topic.key and slug not in owners
        if topic.key in slugs or not kept or (term and term in term_feeds):
            continue
        owners[slug], slugs[topic.key] = topic, slug
        if term:
            term_feeds[term] = slug
    for topic in topics.values():
        if topic.key in slugs:
            continue
        term = _hugo_term(topic, config)
        if term and term in term_feeds:
            slugs[topic.key] = term_feeds[term]  # Hugo lists both under one term page
            continue
        slug = topic_slug(topic, config)
        if slug in owners:
            wanted, slug = slug, hashed_slug(topic)
            problems.append(
                Problem(
                    shown_path(config, first_seen[topic.key].source),
                    f"topic {topic.name!r} would share the feed file {wanted}.xml with "
                    f"{owners[wanted].name!r}: published as {slug}.xml",
                    hint=f"give {topic.name!r} a slug of its own in [feeds] topic_slugs",
                    skipped=False,
                )
            )
        owners[slug], slugs[topic.key] = topic, slug
        if term:
            term_feeds[term] = slug  # after a clash: the file this term's feed really has
    keys_of: dict[str, list[str]] = {}
    for key in topics:  # oldest first: a shared feed's first topic is its owner
        keys_of.setdefault(slugs[key], []).append(key)
    for slug, keys in keys_of.items():
        topic = owners[slug]
        title = clean_xml_text(f"{config.site.title} · {topic.name}")
        articles = members[keys[0]] if len(keys) == 1 else _newest_first(_union(members, keys))
        page = topic_page_url(topic, slug, config, lang)
        specs.append(FeedSpec(slug, title, topic, tuple(articles[:limit]), page))
    specs[1:] = sorted(specs[1:], key=lambda s: s.slug)
    return FeedPlan(tuple(specs), tuple(problems))


def _hugo_term(topic: Topic, config: Config) -> str:
    """The identity of the topic's term on a Hugo site ("" elsewhere, or when the name has nothing a
    path keeps): its key, lower-cased. Two topics with one are one term, one page to Hugo (0.111
    lower-cases a term's key for its identity even with `disablePathToLower`, which only keeps the
    first spelling's case in the page's path): `Go Lang` and `go-lang`."""
    if config.hugo is None:
        return ""
    return term_key(topic.name, config.hugo.path_rules).lower()


def _union(members: Mapping[str, Sequence[Article]], keys: Sequence[str]) -> list[Article]:
    """The articles of several topics, each once."""
    return list({a.entry_id: a for key in keys for a in members[key]}.values())


# ---------------------------------------------------------------- feedgen, with two fixes


@functools.cache
def _feedgen() -> tuple[type, type, type]:
    """feedgen and our two extensions, imported on first use: a build with nothing to do never needs them."""
    from feedgen.ext.base import BaseEntryExtension, BaseExtension
    from feedgen.feed import FeedGenerator

    class MediaExtension(BaseExtension):  # type: ignore[misc]
        def extend_ns(self) -> dict[str, str]:
            return {"media": MEDIA_NS}

    class EntryFixes(BaseEntryExtension):  # type: ignore[misc]
        """Writes entry links itself: feedgen 1.0.0 drops their rel/type/length (python-feedgen issue
        #135). Also adds the featured image as media:thumbnail."""

        def __init__(self) -> None:
            self.links: list[dict[str, str]] = []
            self.thumbnail = ""

        def extend_atom(self, entry: Any) -> Any:
            # feedgen builds Atom elements with no namespace of their own ("link", not "{Atom}link"):
            # they are Atom through the root's default xmlns. Ours are built the same way, so they
            # serialise as plain <link> too; an "{Atom}link" would come out as <ns0:link xmlns:ns0=…>.
            from feedgen.util import xml_elem

            for old in entry.findall("link"):
                entry.remove(old)
            anchor = entry.find("content")  # where feedgen itself puts an entry's links
            position = list(entry).index(anchor) + 1 if anchor is not None else len(entry)
            for offset, attributes in enumerate(self.links):
                entry.insert(position + offset, xml_elem("link", attrib=attributes))
            if self.thumbnail:
                xml_elem(f"{{{MEDIA_NS}}}thumbnail", entry, url=self.thumbnail)
            return entry

        def extend_rss(self, item: Any) -> Any:  # pragma: no cover - Atom only
            return item

    return FeedGenerator, MediaExtension, EntryFixes


def _atom_time(value: dt.datetime) -> dt.datetime:
    # Keep the author's own offset (readers show it), to the second.
    return value.replace(microsecond=0)


def render_feed(spec: FeedSpec, entries: Mapping[str, RenderedEntry], config: Config) -> bytes:
    site = config.site
    self_url = urljoin(feeds_url(config), feed_href(spec.slug))
    feed_generator, media_extension, entry_fixes = _feedgen()
    generator = feed_generator()
    generator.register_extension("digest", media_extension, entry_fixes, atom=True, rss=False)
    generator.id(self_url)
    generator.title(spec.title)
    if site.description:
        generator.subtitle(clean_xml_text(site.description))
    generator.link(href=self_url, rel="self", type="application/atom+xml")
    generator.link(href=spec.page, rel="alternate", type="text/html")
    generator.language(site.language)
    generator.author({"name": clean_xml_text(site.author or site.title)})
    generator.generator(GENERATOR, version=__version__, uri=GENERATOR_URI)
    updated = max((_atom_time(a.lastmod) for a in spec.articles), default=EMPTY_FEED_UPDATED)
    generator.updated(updated)
    topics_scheme = urljoin(site.base_url, "topics/")
    tags_scheme = urljoin(site.base_url, "tags/")
    for article in spec.articles:
        rendered = entries[article.entry_id]
        entry = generator.add_entry(order="append")
        entry.id(article.entry_id)
        entry.title(clean_xml_text(article.title))
        entry.published(_atom_time(article.date))
        entry.updated(_atom_time(article.lastmod))
        if article.author and article.author != site.author:
            entry.author({"name": clean_xml_text(article.author)})
        entry.summary(rendered.summary, type="text")
        if config.feeds.full_content:
            entry.content(rendered.html, type="html")
        else:
            entry.content(_teaser_html(article, rendered), type="html")
        for name in article.topics:
            entry.category(term=clean_xml_text(name), scheme=topics_scheme, label=clean_xml_text(name))
        for tag in article.tags:
            entry.category(term=clean_xml_text(tag), scheme=tags_scheme, label=clean_xml_text(tag))
        entry.digest.links = [{"rel": "alternate", "type": "text/html", "href": article.url}] + [
            {"rel": "alternate", "type": "text/html", "hreflang": lang, "href": url}
            for lang, url in article.translations
        ]
        entry.digest.thumbnail = rendered.image
    return bytes(generator.atom_str(pretty=True, encoding="UTF-8"))


def _teaser_html(article: Article, rendered: RenderedEntry) -> str:
    image = f'<p><img src="{html.escape(rendered.image)}" alt="" /></p>\n' if rendered.image else ""
    return (
        f"{image}<p>{html.escape(rendered.summary)}</p>\n"
        f'<p><a href="{html.escape(article.url)}">{html.escape(clean_xml_text(article.title))}</a></p>'
    )


OPML = "feeds.opml"
INDEX = "index.html"


def _page_context(plan: FeedPlan, config: Config) -> dict[str, object]:
    """What the index page and the OPML templates see: the site, and every feed in the plan's order."""
    base = feeds_url(config)
    title = clean_xml_text(config.site.title)
    return {
        "site": {"title": title, "language": config.site.language, "url": config.site.base_url},
        "opml": OPML,
        "feeds": [
            {
                "slug": spec.slug,
                "file": feed_href(spec.slug),  # what a link relative to the feeds folder says
                "url": urljoin(base, feed_href(spec.slug)),
                "title": spec.title,
                "name": clean_xml_text(spec.topic.name) if spec.topic else title,
                "entries": len(spec.articles),
            }
            for spec in plan.feeds
        ],
    }


def render_opml(plan: FeedPlan, config: Config) -> bytes:
    """The OPML list of every feed, from `feeds.opml.j2`."""
    return render_template(config, FEEDS_OPML_TEMPLATE, _page_context(plan, config)).encode("utf-8")


def render_index_html(plan: FeedPlan, config: Config) -> bytes:
    """The feeds folder's index page (autodiscovery links and a list), from `feeds_index.html.j2`."""
    return render_template(config, FEEDS_INDEX_TEMPLATE, _page_context(plan, config)).encode("utf-8")


def feed_key(spec: FeedSpec, entry_keys: Mapping[str, str], config: Config) -> str:
    """Changes whenever any byte of `render_feed(spec, entries, config)` could: `entry_keys` holds, by
    entry id, the key each rendered entry was made from (`jobs.render_entries`: the same key, the same
    rendering), so the entries' HTML need not be read again."""
    digest = hashlib.sha256(repr((GENERATOR, GENERATOR_URI, config.site, config.feeds, spec)).encode())
    for article in spec.articles:
        digest.update(f"\0{entry_keys[article.entry_id]}".encode())
    return digest.hexdigest()


def pages_key(plan: FeedPlan, config: Config) -> str:
    """Changes whenever any byte of the OPML or the index page could (their templates included)."""
    context = repr(_page_context(plan, config))
    return hashlib.sha256(f"{feed_pages_fingerprint(config)}\0{context}".encode()).hexdigest()


def render_files(
    plan: FeedPlan,
    entries: Mapping[str, RenderedEntry],
    config: Config,
    known: Mapping[str, bytes] | None = None,
) -> dict[str, bytes]:
    """Every file digest writes under `[feeds] dir`, by relative path. `known`: the bytes of files
    whose inputs did not change (see `feed_key`, `pages_key`), taken as they are rather than made again."""
    known = known or {}
    files = {
        name: known[name] if name in known else render_feed(spec, entries, config)
        for spec in plan.feeds
        for name in [f"{spec.slug}.xml"]
    }
    files[OPML] = known[OPML] if OPML in known else render_opml(plan, config)
    files[INDEX] = known[INDEX] if INDEX in known else render_index_html(plan, config)
    return files
