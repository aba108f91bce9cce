"""The articles of a Hugo site (`[content] hugo_site`): Hugo's pages, at Hugo's URLs, as `Article`s.

`scan` lists the files below the site's content dirs; `collect` reads them all (front matter through
python-frontmatter's handlers, YAML with `HugoYAMLLoader`), lets `hugo_pages.decide_pages` make
Hugo's decisions, and turns every dated page that Hugo lists site-wide into the same `Article` the
plain mode makes. A page without a date, a file Hugo skips, an unknown shortcode are notes, not
problems; only front matter that Hugo itself rejects is a problem (that file is skipped).

Per-file parses are cached (`ParseStore`, which `cache.Cache` provides and `jobs` hands in): what
one file gives on its own (its classification, front matter and body), keyed by the file's path and
stamp and by the Hugo config. Everything that depends on other files (the `cascade` of an `_index.md`,
the section tree, URLs, `ref` targets, shortcodes) is decided afresh from those parses on every build
that has work, so no change to another file can leave a page stale. The no-change build
(`tree_signature`) and the render cache (keyed by the expanded body) still apply.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os
import pickle
import posixpath
import stat
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import yaml
from frontmatter.default_handlers import YAMLHandler

from . import front_matter, shortcodes
from .config import Config
from .content import (
    Article,
    Collection,
    SourceFile,
    clean_xml_text,
    map_in_chunks,
    read_at_most,
    shown_path,
    tag_uri,
    topic_key,
)
from .errors import ArticleError, Problem
from .hugo_config import HugoSite
from .hugo_dates import HugoCYAMLLoader, HugoCYAMLNoAliasLoader
from .hugo_pages import ContentFile, HugoPage, classify, content_dirs, decide_pages
from .hugo_pages import SourceFile as HugoSource

PARSER_VERSION = 1
MARKUP = "goldmark"
_HTML = (".html", ".htm")
MORE = "<!--more-->"  # Hugo's summary divider: exact and case-sensitive
# `decide_pages` is asked at a fixed moment: digest decides future and expired itself, at `now`, from
# the dates (and the section bounds) each page carries, so the same collection serves every `now`.
_DECIDED_AT = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


_YAML = YAMLHandler()  # python-frontmatter's, with HugoCYAMLLoader (TOML and JSON: front_matter.py's)


@dataclass(frozen=True)
class Split:
    format: str  # "yaml", "toml" or "json"
    front_matter: str
    body: str
    first_line: int  # the line of the front matter's first line (for error lines)


def split_front_matter(text: str) -> Split:
    """Front matter as Hugo finds it: `front_matter.split_front_matter`'s rule (after blank lines or
    whitespace, `---` YAML, `+++` TOML or a JSON object), also inside `<!-- -->`; and no front matter
    at all is a page with none, as Hugo has it."""
    stripped = text.lstrip()
    wrapped = stripped.startswith("<!--")
    if wrapped:  # the comment's opening as spaces: the lines keep their numbers
        at = len(text) - len(stripped)
        text = text[:at] + "    " + text[at + 4 :]
        stripped = text.lstrip()
    if not stripped.startswith(("---", "+++", "{")):
        return Split("yaml", "", text, 1)
    fmt, fm, body, first_line = front_matter.split_front_matter(text)
    if wrapped:
        body = body.lstrip()
        body = body[3:].lstrip("\n") if body.startswith("-->") else body
    return Split(fmt, fm, body, first_line)


def load_front_matter(split: Split) -> dict[str, Any]:
    """The front matter as a map, through python-frontmatter's handler for its format."""
    if split.format != "yaml":  # TOML and JSON mean the same to Hugo and to the plain mode
        value = front_matter.load_front_matter(split.format, split.front_matter, split.first_line)
        _check_depth(value, split.first_line)
        return value
    try:
        text = split.front_matter
        loader = HugoCYAMLLoader if "*" in text else HugoCYAMLNoAliasLoader  # no '*', no alias
        value = _YAML.load(text, Loader=loader) if text else {}
        _check_depth(value, split.first_line)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if (
            exc.context_mark is not None
            and mark is not None
            and mark.index >= len(split.front_matter.rstrip())
        ):
            mark = exc.context_mark  # "found end of stream": where the unclosed thing began helps more
        line = split.first_line + mark.line if mark is not None else None
        raise ArticleError(f"front matter: YAML: {exc.problem or exc.context}", line=line) from None
    except yaml.YAMLError as exc:
        raise ArticleError(f"front matter: YAML: {exc}", line=split.first_line) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # a scalar Python cannot hold
        raise ArticleError(
            f"front matter: YAML: {front_matter.shown(str(exc))}", line=split.first_line
        ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ArticleError("front matter must be a mapping of keys to values", line=split.first_line)
    return value


_MAX_DEPTH = 100  # deeper front matter is refused: Hugo's and digest's key walks recurse


def _check_depth(value: Any, line: int) -> None:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ArticleError("front matter: nested too deeply", line=line)
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


# ---------------------------------------------------------------- the site's files


def scan(config: Config) -> list[SourceFile]:
    """Every file below the site's content dirs (paths relative to the site root), with its stamp."""
    site = _site(config)
    root = os.path.realpath(site.root)
    found: dict[str, SourceFile] = {}
    for folder, _ in content_dirs(site):
        base = os.path.join(root, folder)
        for directory, subdirs, names in os.walk(base):  # symlinks are not followed
            subdirs.sort()
            for name in names:
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue  # a FIFO or device would block the read (Hugo reads only regular files too)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                stamp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"  # as content.scan's
                found[rel] = SourceFile(rel, path, stamp)
    return [found[rel] for rel in sorted(found)]


def tree_signature(config: Config, files: Sequence[SourceFile]) -> str:
    """Changes when any file of the site's content changes, or the Hugo config or digest's does."""
    listing = pickle.dumps([(source.rel, source.stamp) for source in files], protocol=5)
    settings = repr((PARSER_VERSION, config.hugo, config.site, config.content)).encode()
    return hashlib.sha256(settings + listing).hexdigest()


class ParseStore(Protocol):
    """Where `collect` keeps each file's parse between builds; `cache.Cache` provides one."""

    def hugo_parses(self) -> dict[str, tuple[str, bytes]]:
        """(the file's stamp when it was parsed, the pickled parse) by key."""

    def set_hugo_parses(self, fresh: Sequence[tuple[str, str, bytes]], keep: Set[str]) -> None:
        """Remember the fresh (key, stamp, pickled parse) rows; forget every key not in `keep`."""


def _unpickled(value: bytes) -> tuple[_Read | Problem | None, list[tuple[str, str]]] | None:
    """A stored parse, or None when it is not one this code wrote (then the file is read again)."""
    try:
        parse = pickle.loads(value)  # noqa: S301 - our own cache, written by `collect`
    except Exception:
        return None
    if isinstance(parse, tuple) and len(parse) == 2 and isinstance(parse[0], _Read | Problem | None):
        return parse
    return None


def _parse_key(config: Config) -> str:
    """What one file's parse depends on besides the file: the parser and the Hugo config."""
    settings = repr((PARSER_VERSION, config.hugo, config.content.max_file_bytes)).encode()
    return hashlib.sha256(settings).hexdigest()[:16]


def _site(config: Config) -> HugoSite:
    if config.hugo is None:
        raise ValueError("not a Hugo site: [content] hugo_site is not set")
    return config.hugo


@dataclass(frozen=True)
class _Read:
    source: HugoSource
    body: str
    raw_hash: str


def collect(
    config: Config,
    cache: ParseStore | None = None,
    workers: int | None = None,
    *,
    files: Sequence[SourceFile] | None = None,
    known_ids: Set[str] = frozenset(),
) -> Collection:
    """The Hugo site's articles (bodies loaded, shortcodes expanded), its problems and its notes. The
    files not read before are read on every core when there are many."""
    site = _site(config)
    collection = Collection()
    notes: list[tuple[str, str]] = []
    reads: dict[str, _Read] = {}
    prefix = _parse_key(config) + ":"
    known = cache.hugo_parses() if cache is not None else {}
    cached: set[str] = set()
    fresh: list[tuple[str, str, bytes]] = []
    sources = list(files if files is not None else scan(config))
    values: list[tuple[_Read | Problem | None, list[tuple[str, str]]] | None] = []
    for source in sources:
        hit = known.get(prefix + source.rel)
        values.append(_unpickled(hit[1]) if hit is not None and hit[0] == str(source.stamp) else None)
    unread = [n for n, value in enumerate(values) if value is None]
    reading = functools.partial(_read_pickled, site=site, limit=config.content.max_file_bytes)
    for start, parses in map_in_chunks(reading, [sources[n] for n in unread], workers):
        for n, parse in zip(unread[start:], parses, strict=False):
            values[n] = value = pickle.loads(parse)  # noqa: S301 - made by _read_pickled just now
            # Kept even for a file that is no page (an image, an .adoc), so it is not looked at again.
            fresh.append((prefix + sources[n].rel, str(sources[n].stamp), parse))
            collection.parsed += value[0] is not None
    for source, value in zip(sources, values, strict=True):
        assert value is not None
        result, file_notes = value
        cached.add(prefix + source.rel)
        notes.extend(file_notes)
        if isinstance(result, Problem):
            collection.problems.append(result)
        elif result is not None:
            reads[source.rel] = result
    if cache is not None and (fresh or set(known) - cached):
        cache.set_hugo_parses(fresh, cached)
    decided = decide_pages([r.source for r in reads.values()], site, _DECIDED_AT)
    notes.extend((note.path, note.message) for note in decided.notes)
    resolver = _Resolver(decided.pages, {rel: r.source.file for rel, r in reads.items()})
    unknown: dict[str, str] = {}
    articles = []
    keys: dict[str, str] = {}  # source -> translation key
    for page in decided.pages:
        article = _article(page, reads[page.path], site, config, resolver, unknown, notes)
        if article is not None:
            articles.append(article)
            keys[article.source] = page.translation_key
    # Two pages at one URL: Hugo writes one file over the other; a feed keeps one entry per URL (the
    # one already published, else the first published, drafts last).
    owners: dict[str, Article] = {}
    for article in sorted(
        articles,
        key=lambda a: (a.draft, a.entry_id not in known_ids, a.publish_date.timestamp(), a.source),
    ):
        owner = owners.setdefault(article.url, article)
        if owner is not article and not article.draft:
            notes.append(
                (
                    article.source,
                    f"its URL {article.url} is {shown_path(config, owner.source)}'s too: left out",
                )
            )
        elif owner is not article:
            continue
        else:
            collection.articles.append(article)
    for name, path in sorted(unknown.items(), key=lambda item: (item[1], item[0])):
        notes.append(
            (path, f"shortcode '{name}' is not one of Hugo's built-ins: removed, its inner text kept")
        )
    collection.articles = _with_translations(collection.articles, keys)
    collection.problems.sort(key=lambda p: p.path)
    # Paths as the user would type them (relative to where digest runs), as the plain mode shows them.
    collection.problems = [
        dataclasses.replace(p, path=shown_path(config, p.path)) for p in collection.problems
    ]
    collection.notes = [f"{shown_path(config, path)}: {message}" for path, message in sorted(set(notes))]
    return collection


def _with_translations(articles: Sequence[Article], keys: Mapping[str, str]) -> list[Article]:
    """The articles by source, each with the (language, permalink) of its translations: the pages of
    other languages with its translation key (Hugo's `translationKey`, else the same path)."""
    groups: dict[str, list[Article]] = {}
    for article in articles:
        groups.setdefault(keys[article.source], []).append(article)
    out = []
    for article in sorted(articles, key=lambda a: a.source):
        others = sorted((a.lang, a.url) for a in groups[keys[article.source]] if a.lang != article.lang)
        out.append(dataclasses.replace(article, translations=tuple(others)) if others else article)
    return out


def _read_pickled(sources: Sequence[SourceFile], *, site: HugoSite, limit: int) -> list[bytes]:
    """`_read` of each file with its notes, pickled: what a worker sends back, and the parse store keeps."""
    parses = []
    for source in sources:
        notes: list[tuple[str, str]] = []
        result = _read(source, site, limit, notes)
        parses.append(pickle.dumps((result, notes), protocol=5))
    return parses


def _read(
    source: SourceFile, site: HugoSite, limit: int, notes: list[tuple[str, str]]
) -> _Read | Problem | None:
    found = classify(source.rel, site, "<")  # what the name says; an .html file's head decides below
    if not isinstance(found, ContentFile) and not source.rel.endswith(_HTML):
        if found.note:
            notes.append((source.rel, found.note))
        return None  # an image or other resource, or a format Hugo skips: never read
    try:
        with open(source.path, "rb") as handle:
            raw = read_at_most(handle, limit)
    except OSError as exc:
        return Problem(source.rel, f"cannot read: {exc.strerror}")
    if source.rel.endswith(_HTML):  # only an .html file's head can change what it is
        found = classify(source.rel, site, raw[:512].decode("utf-8", "replace"))
    if not isinstance(found, ContentFile):
        if found.note:
            notes.append((source.rel, found.note))
        return None
    if len(raw) > limit:
        return Problem(
            source.rel, f"file is over the limit of {limit} bytes", hint="raise [content] max_file_bytes"
        )
    try:
        split = split_front_matter(front_matter.decode_text(raw))
        front = load_front_matter(split)
    except ArticleError as exc:
        return Problem(source.rel, exc.message, exc.line, exc.hint)
    mtime_ns = int(source.stamp.split(":")[1])  # size:mtime:ctime:inode
    mtime = dt.datetime.fromtimestamp(mtime_ns / 1e9, dt.UTC).replace(microsecond=0)
    hugo_source = HugoSource(found, front, mtime, split.format)
    return _Read(hugo_source, split.body, hashlib.sha256(raw).hexdigest())


# ---------------------------------------------------------------- ref and relref


class _Resolver:
    """Hugo's ref lookup: a path from the content root (`/posts/a.md`), relative to the page's folder,
    or a file name alone when it names one page; with or without the extension."""

    def __init__(self, pages: Sequence[HugoPage], files: Mapping[str, ContentFile]) -> None:
        self.by_path: dict[tuple[str, str], str] = {}
        by_name: dict[tuple[str, str], set[str]] = {}
        for page in pages:
            if not page.permalink:
                continue
            file = files[page.path]
            rel = file.rel
            keys = {rel, rel.rsplit(".", 1)[0]}
            if file.kind == "leaf":
                keys.add(file.dir.rstrip("/"))
            for key in keys:
                self.by_path.setdefault((page.lang, key.lower()), page.permalink)
            for name in {posixpath.basename(rel), posixpath.basename(rel).rsplit(".", 1)[0]}:
                by_name.setdefault((page.lang, name.lower()), set()).add(page.permalink)
        self.by_name = {key: next(iter(v)) for key, v in by_name.items() if len(v) == 1}

    def resolve(self, target: str, lang: str, folder: str) -> str | None:
        target = target.strip()
        if target.startswith("/"):
            return self.by_path.get((lang, target.strip("/").lower()))
        joined = posixpath.normpath(posixpath.join(folder, target)).lower()
        return (
            self.by_path.get((lang, joined))
            or self.by_path.get((lang, target.strip("/").lower()))
            or self.by_name.get((lang, target.lower()))
        )


# ---------------------------------------------------------------- one page → one article


def _article(
    page: HugoPage,
    read: _Read,
    site: HugoSite,
    config: Config,
    resolver: _Resolver,
    unknown: dict[str, str],
    notes: list[tuple[str, str]],
) -> Article | None:
    """The page as an article, or None when it is in no feed: not rendered, not listed site-wide
    (`_build.list` never or local), a url Hugo rejects, or no date (a page, not an article)."""
    if not page.permalink or page.list != "always" or page.reason == "url with a protocol":
        return None
    if page.date is None:
        if not page.draft and not page.section_draft:
            notes.append((page.path, "no date: a page, not an article (in no feed or digest)"))
        return None
    front = page.front_matter
    file = read.source.file
    expanded = shortcodes.expand(
        read.body,
        lambda target, lang: resolver.resolve(target, lang or page.lang, file.dir.rstrip("/")),
        front,
        site.params,
        page.lang,
    )
    for name in expanded.unknown:
        unknown.setdefault(name, page.path)
    for target in expanded.unresolved:
        notes.append((page.path, f"ref {target!r} names no page: its link is left empty"))
    body = expanded.text
    title = clean_xml_text(page.title)  # as Hugo has it, spaces and all
    if not title.strip():
        title = file.content_base_name
        notes.append((page.path, f"no title: the feeds show its file name ({title!r})"))
    publish = page.publish_date or page.date
    if page.not_before is not None and page.not_before > publish:
        publish = page.not_before
    expiry = None if site.build_expired else page.expiry_date
    if page.not_after is not None and (expiry is None or page.not_after < expiry):
        expiry = page.not_after
    draft = (page.draft and not site.build_drafts) or page.section_draft
    own_id = _text(front.get("id"))
    url_path = urlsplit(page.permalink).path
    host = urlsplit(config.site.base_url).hostname or "localhost"
    return Article(
        source=page.path,
        slug=page.slug or file.content_base_name,
        title=title,
        date=page.date,
        publish_date=publish,
        lastmod=page.lastmod or page.date,
        expiry=expiry,
        draft=draft,
        entry_id=own_id
        if own_id and not any(c.isspace() for c in own_id)
        else tag_uri(host, url_path, publish),
        url=page.permalink,
        author=_author(front.get("author")) or config.site.author,
        summary=authored_summary(body, front),
        tags=_strings(front.get("tags")),
        topics=_topics(_strings(front.get(config.content.topic_field.lower()))),
        image=_image(front, config.content.image_fields),
        content_hash=hashlib.sha256(f"{MARKUP}\0{body}".encode()).hexdigest(),
        body=body,
        derived_id=not own_id,
        markup=MARKUP,
        lang=page.lang,
    )


def authored_summary(body: str, front: Mapping[str, Any]) -> str:
    """Hugo's authored summary, as Markdown (the render stage makes it text): what comes before
    `<!--more-->`, else the `summary` field; "" when the author wrote none (digest then derives one)."""
    if MORE in body:
        before = body.split(MORE, 1)[0]
        if before.strip():
            return before.strip()
    return _text(front.get("summary"))


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return str(value).strip()


def _strings(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(dict.fromkeys(t for t in (_text(item) for item in items) if t))


def _topics(names: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(topic_key(name), name)
    return tuple(seen.values())


def _author(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_strings(value))
    if isinstance(value, Mapping):
        return _text(value.get("name"))
    return _text(value)


def _image(front: Mapping[str, Any], fields: Sequence[str]) -> str:
    for name in fields:
        value = front.get(name.lower())
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, Mapping):
            value = value.get("image") or value.get("src")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


# ---------------------------------------------------------------- `digest init --hugo`


def starter_config(site: HugoSite, site_path: str, subscribers: str = "subscribers.csv") -> str:
    """A first config.toml for a Hugo site: everything Hugo's config says is read from there."""
    taxonomy = next(iter(site.taxonomies.values()), "")
    lines = [
        "# digest for the Hugo site below (written by `digest init --hugo`). The site's title, base URL,",
        "# language and time zone come from its Hugo config; a key set in this file wins over it.",
        "",
        "[content]",
        f"hugo_site = {json.dumps(site_path, ensure_ascii=False)}",
    ]
    if taxonomy:
        lines.append(f"topic_field = {json.dumps(taxonomy, ensure_ascii=False)}  # one feed per term")
    else:
        lines.append('topic_field = ""  # the site has no taxonomy: one site-wide feed')
    lines += [
        "",
        "[feeds]",
        'dir = "feeds"',
        "",
        "[subscribers]",
        f"file = {json.dumps(subscribers)}  # email,name,topics,language (all but email optional)",
        "",
        "[delivery]",
        'method = "outbox"  # one .eml file per recipient; "smtp" to send',
        'outbox = "outbox"',
        "",
    ]
    return "\n".join(lines)
