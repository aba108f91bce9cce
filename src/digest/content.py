"""Articles from the content folder: front matter, typed fields, and the rules of what is published.

`parse_article` is pure (bytes in, `Article` or `ArticleError` out). `collect` is the one place that
reads the content folder: it walks it, reuses what an optional parse cache already knows about an
unchanged file (same size and mtime), parses the rest (on every core when there are many), and reports
each unreadable article as a `Problem` without stopping the others.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os
import pickle
import re
import unicodedata
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from .config import Config, ContentConfig, SiteConfig
from .errors import ArticleError, Problem
from .front_matter import Fields, load_front_matter, split_front_matter

ARTICLE_SUFFIXES = (".md", ".markdown", ".txt")
# Bumped whenever parsing changes what an Article holds, so cached parses from older code are ignored.
PARSER_VERSION = 3
_PARALLEL_THRESHOLD = 400


@dataclass(frozen=True)
class Article:
    """One article as the rest of digest sees it; every date is timezone-aware."""

    source: str  # path relative to the content folder, POSIX separators
    slug: str
    title: str
    date: dt.datetime
    publish_date: dt.datetime  # publishDate, else date
    lastmod: dt.datetime  # lastmod, else date
    expiry: dt.datetime | None
    draft: bool
    entry_id: str  # stable for life: front-matter id, else a tag URI from permalink and first date
    url: str  # absolute permalink
    author: str
    summary: str  # from front matter; "" when absent (render.summary_text derives one)
    tags: tuple[str, ...]
    topics: tuple[str, ...]  # as spelled in this article, one per topic key, in order
    image: str  # front-matter image as written ("" when none)
    content_hash: str  # sha256 of the file's bytes
    body: str | None = None  # Markdown; None until loaded (see load_bodies), so caches stay small
    derived_id: bool = True  # entry_id was derived (no `id` in the front matter); see jobs.stable_ids
    markup: str = "markdown"  # "goldmark": a Hugo page, rendered with what Hugo's Goldmark renders
    lang: str = ""  # a Hugo page's language ("" in a plain folder)
    translations: tuple[tuple[str, str], ...] = ()  # (language, permalink) of its other translations


def is_published(article: Article, now: dt.datetime) -> bool:
    """Not a draft, its publish date has come, and it has not expired."""
    if article.draft or article.publish_date > now:
        return False
    return article.expiry is None or article.expiry > now


# XML 1.0 allows only #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean_xml_text(text: str) -> str:
    """Drop characters that XML 1.0 forbids (feedgen and every XML parser reject them)."""
    return _XML_FORBIDDEN.sub("", text)


def topic_key(name: str) -> str:
    """Topic identity: "AI", "ai " and "Ai" are one topic."""
    return unicodedata.normalize("NFC", name).strip().casefold()


@dataclass(frozen=True)
class Topic:
    key: str
    name: str  # the first spelling seen


def site_topics(articles: Iterable[Article]) -> dict[str, Topic]:
    """Every topic key with its first spelling, deterministically (oldest article first)."""
    topics: dict[str, Topic] = {}
    # Timestamps sort much faster than aware datetimes with a tzinfo object each.
    for article in sorted(articles, key=lambda a: (a.date.timestamp(), a.source)):
        for name in article.topics:
            key = topic_key(name)
            if key not in topics:
                topics[key] = Topic(key=key, name=name.strip())
    return topics


@dataclass
class Collection:
    """What `collect` found: the readable articles, sorted by source, and one problem per skipped file."""

    articles: list[Article] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    parsed: int = 0  # files parsed this time (not served from the cache)
    notes: list[str] = field(default_factory=list)  # worth saying, not problems (a Hugo site's undated pages)


class ParseCache(Protocol):
    """What `collect` needs from a cache of earlier parses; the state module provides one."""

    def lookup(self, key: str) -> tuple[str, Article | Problem] | None:
        """(the file's stamp when it was parsed, what parsing gave), or None."""

    def store(self, entries: Sequence[tuple[str, str, Article | Problem | bytes]]) -> None:
        """Remember (key, stamp, parse); a bytes value is an Article or Problem already pickled."""

    def forget_except(self, keys: set[str]) -> None: ...


# ---------------------------------------------------------------- walking the folder


class SourceFile(NamedTuple):  # a tuple: made 10,000 times by every build, even one with nothing to do
    rel: str  # relative to the content folder, POSIX separators
    path: str
    # Size, mtime, ctime and inode: a file edited in place changes its ctime even when a tool
    # (cp -p, rsync -t, tar) puts its size and mtime back, and a replaced file has another inode.
    stamp: tuple[int, int, int, int]


def scan(config: Config) -> list[SourceFile]:
    """Every article file below `[content] dir` with its stamp, sorted by path: all that is needed to
    tell whether anything changed. Hidden files and Hugo's section pages (`_index.*`) are not articles.

    Symlinks below the folder are not followed: one that leaves the folder could publish any file on the
    machine, one that loops never ends, and one that stays inside points at files the walk reaches by
    their real paths anyway (following it would publish them twice, and give a page bundle the link's
    name or its own, depending on the order the directory lists them in). The folder itself may be a
    symlink.
    """
    base = os.path.realpath(config.content.dir)
    prefix = len(base) + 1
    found: list[SourceFile] = []
    folders = [base]
    while folders:  # a loop, not recursion: this runs on every build, even one with nothing to do
        try:
            entries = list(os.scandir(folders.pop()))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name[0] == "." or name.startswith("_index.") or entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            elif name.endswith(ARTICLE_SUFFIXES) and entry.is_file(follow_symlinks=False):
                try:
                    st = entry.stat()
                except OSError:
                    continue
                rel = entry.path[prefix:]
                if os.sep != "/":  # pragma: no cover - POSIX here
                    rel = rel.replace(os.sep, "/")
                found.append(
                    SourceFile(rel, entry.path, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
                )
    found.sort()
    return found


def tree_signature(config: Config, files: Sequence[SourceFile]) -> str:
    """Changes when any article file is added, removed or changed, or parsing settings change."""
    listing = pickle.dumps([(source.rel, source.stamp) for source in files], protocol=5)
    return hashlib.sha256(_ParseSettings.of(config).fingerprint.encode() + listing).hexdigest()


def collect(
    config: Config,
    cache: ParseCache | None = None,
    workers: int | None = None,
    *,
    bodies: bool = True,
    files: Sequence[SourceFile] | None = None,
    known_ids: Set[str] = frozenset(),
) -> Collection:
    """Read every article below `[content] dir`; unreadable ones become problems, never exceptions.

    With bodies=False the articles come without their Markdown (body None): enough to decide what is
    published and where, and much cheaper; `load_bodies` fetches the few bodies that get rendered.
    """
    root = config.content.dir
    if not root.is_dir():
        return Collection(problems=[Problem(str(root), "content folder not found", hint="see [content] dir")])
    settings = _ParseSettings.of(config)
    prefix = settings.fingerprint + ":"
    results: dict[str, Article | Problem] = {}
    to_parse: list[SourceFile] = []
    for source in files if files is not None else scan(config):
        if not source.rel.isascii() and not _is_utf8(source.rel):  # no permalink, no cache key
            results[source.rel] = Problem(
                _shown(settings.display_root, source.rel),
                "the file name is not UTF-8",
                hint="rename the file",
            )
            continue
        hit = cache.lookup(prefix + source.rel) if cache is not None else None
        if hit is not None and hit[0] == _stamp_text(source):
            results[source.rel] = hit[1]
        else:
            to_parse.append(source)

    parsed = _parse_all([(s.rel, s.path) for s in to_parse], settings, workers, keep_body=bodies)
    for source, (result, _) in zip(to_parse, parsed, strict=True):
        results[source.rel] = result
    if cache is not None:
        if parsed:
            cache.store(
                [
                    (prefix + source.rel, _stamp_text(source), blob or _without_body(result))
                    for source, (result, blob) in zip(to_parse, parsed, strict=True)
                ]
            )
        cache.forget_except({prefix + rel for rel in results})

    collection = Collection(parsed=len(to_parse))
    for rel in sorted(results):
        result = results[rel]
        if isinstance(result, Problem):
            collection.problems.append(result)
        else:
            collection.articles.append(result)
    _reject_duplicates(collection, settings.display_root, known_ids)
    if bodies:
        collection.articles = load_bodies(config, collection.articles)
    return collection


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8, kept by os.fsdecode as lone surrogates
        return False
    return True


def _stamp_text(source: SourceFile) -> str:
    return ":".join(map(str, source.stamp))


def _without_body(result: Article | Problem) -> Article | Problem:
    return dataclasses.replace(result, body=None) if isinstance(result, Article) else result


def load_bodies(config: Config, articles: Sequence[Article]) -> list[Article]:
    """The same articles with their Markdown bodies; a file edited since it was parsed is parsed again."""
    settings = _ParseSettings.of(config)
    loaded = []
    for article in articles:
        if article.body is not None:
            loaded.append(article)
            continue
        path = os.path.join(settings.root, article.source)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise ArticleError(
                f"cannot read: {exc.strerror}",
                path=_shown(settings.display_root, article.source),
                hint="it changed while digest was reading it? run digest again",
            ) from None
        if hashlib.sha256(raw).hexdigest() == article.content_hash:
            text = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
            loaded.append(dataclasses.replace(article, body=split_front_matter(text)[2]))
            continue
        # Edited since it was parsed (an editor saving while digest runs): its new metadata may put it
        # elsewhere, so rather than mix old and new, stop; the next run reads it afresh.
        raise ArticleError(
            "changed while digest was reading it",
            path=_shown(settings.display_root, article.source),
            hint="run digest again",
        )
    return loaded


def _reject_duplicates(collection: Collection, display_root: str, known_ids: Set[str]) -> None:
    """Two articles with one slug (one URL) or one entry id: the one already published (its id is in
    `known_ids`, from the state) keeps it, else the first published, drafts last; every other one is
    reported and skipped, so adding a clashing file never takes over or unpublishes a live article."""
    for label, attribute, hint in (
        ("slug", "slug", "set a distinct 'slug' in the front matter"),
        ("entry id", "entry_id", "set a distinct 'id' in the front matter, or remove it"),
    ):
        owners: dict[str, Article] = {}
        kept: list[Article] = []
        for article in sorted(
            collection.articles,
            key=lambda a: (a.draft, a.entry_id not in known_ids, a.publish_date.timestamp(), a.source),
        ):
            value = getattr(article, attribute)
            owner = owners.setdefault(value, article)
            if owner is article:
                kept.append(article)
                continue
            collection.problems.append(
                Problem(
                    _shown(display_root, article.source),
                    f"{label} '{value}' is already used by {_shown(display_root, owner.source)}",
                    hint=hint,
                )
            )
        collection.articles = sorted(kept, key=lambda a: a.source)
    collection.problems.sort(key=lambda p: p.path)


def shown_path(config: Config, source: str) -> str:
    """An article's path as problems name it, for stages after this one (feeds' topic clashes)."""
    return _shown(_ParseSettings.of(config).display_root, source)


def _shown(display_root: str, rel: str) -> str:
    """An article's path as the user would type it."""
    return rel if display_root == "." else f"{display_root}/{rel}"


# ---------------------------------------------------------------- parsing one file


@dataclass(frozen=True)
class _ParseSettings:
    """The part of the config that parsing depends on; picklable for worker processes."""

    root: str
    display_root: str
    base_url: str
    timezone: str
    author: str
    permalink: str
    topic_field: str
    summary_fields: tuple[str, ...]
    image_fields: tuple[str, ...]
    max_file_bytes: int

    @classmethod
    def of(cls, config: Config) -> _ParseSettings:
        c: ContentConfig = config.content
        s: SiteConfig = config.site
        root = c.dir.resolve()
        display = os.path.relpath(root) if not os.path.relpath(root).startswith("..") else str(root)
        return cls(
            str(root),
            display,
            s.base_url,
            s.timezone,
            s.author,
            c.permalink,
            c.topic_field,
            c.summary_fields,
            c.image_fields,
            c.max_file_bytes,
        )

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def base_path(self) -> str:
        path = urlsplit(self.base_url).path or "/"
        return path if path.endswith("/") else path + "/"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or "localhost"

    @functools.cached_property
    def fingerprint(self) -> str:
        text = json.dumps([PARSER_VERSION, *[str(v) for v in self.__dict__.values()]])
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


def _parse_all(
    paths: list[tuple[str, str]], settings: _ParseSettings, workers: int | None, keep_body: bool
) -> list[tuple[Article | Problem, bytes | None]]:
    """Each file's parse, with its pickle when a worker process made one (the cache stores those bytes
    as they are, rather than pickling every article once more in the parent)."""
    cores = workers if workers is not None else (os.cpu_count() or 1)
    if cores > 1 and len(paths) >= _PARALLEL_THRESHOLD:
        chunk = max(1, len(paths) // (cores * 8))
        from concurrent.futures import ProcessPoolExecutor  # costs start-up time; only cold builds need it

        with ProcessPoolExecutor(max_workers=cores) as pool:
            blobs = list(
                pool.map(
                    _parse_pickled, paths, [settings] * len(paths), [keep_body] * len(paths), chunksize=chunk
                )
            )
        return [(pickle.loads(blob), None if keep_body else blob) for blob in blobs]  # noqa: S301 - ours
    return [(_parse_path(rel_path, settings, keep_body), None) for rel_path in paths]


def _parse_pickled(rel_path: tuple[str, str], settings: _ParseSettings, keep_body: bool) -> bytes:
    return pickle.dumps(_parse_path(rel_path, settings, keep_body), protocol=pickle.HIGHEST_PROTOCOL)


def _parse_path(rel_path: tuple[str, str], settings: _ParseSettings, keep_body: bool) -> Article | Problem:
    rel, path = rel_path
    shown = _shown(settings.display_root, rel)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(settings.max_file_bytes + 1)  # never more than the limit into memory
            if len(raw) > settings.max_file_bytes:
                raise ArticleError(
                    f"file is {os.fstat(handle.fileno()).st_size} bytes, over the limit of "
                    f"{settings.max_file_bytes}",
                    hint="raise [content] max_file_bytes to accept it",
                )
        return parse_article(rel, raw, settings, keep_body)
    except ArticleError as exc:
        return Problem(shown, exc.message, exc.line, exc.hint)
    except OSError as exc:
        return Problem(shown, f"cannot read: {exc.strerror}")


def parse_article(rel: str, raw: bytes, settings: _ParseSettings, keep_body: bool = True) -> Article:
    """Bytes of one file → Article, or an ArticleError saying what is wrong and on which line."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ArticleError("not UTF-8 text", line=line, hint="save the file as UTF-8") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    fmt, fm_text, body, first_line = split_front_matter(text)
    meta = load_front_matter(fmt, fm_text, first_line)
    fields = Fields(meta, fm_text, first_line, ZoneInfo(settings.timezone))

    title = clean_xml_text(fields.text("title", required=True)).strip()
    if not title:
        raise ArticleError("front matter: 'title' has no printable text", line=fields.line_of("title"))
    date = fields.date("date", required=True)
    assert date is not None
    publish_date = fields.date("publishDate") or date
    lastmod = fields.date("lastmod") or date
    expiry = fields.date("expiryDate")
    draft = fields.boolean("draft")

    folder, _, filename = rel.rpartition("/")
    stem = filename.rsplit(".", 1)[0]
    default_slug = folder.rpartition("/")[2] if stem == "index" and folder else stem
    slug = fields.text("slug") or default_slug
    if "/" in slug or slug in (".", ".."):
        raise ArticleError(f"'slug' must not contain '/' ({slug!r})", line=fields.line_of("slug"))
    url, url_path = _permalink(settings, slug, date)
    entry_id = fields.text("id")
    if entry_id and (clean_xml_text(entry_id) != entry_id or any(c.isspace() for c in entry_id)):
        raise ArticleError(
            f"front matter: 'id' must be a URI without spaces or control characters ({entry_id!r})",
            line=fields.line_of("id"),
            hint="e.g. urn:uuid:… or tag:example.com,2025:post",
        )
    derived_id = not entry_id
    entry_id = entry_id or tag_uri(settings.host, url_path, publish_date)

    summary = ""
    for name in settings.summary_fields:
        summary = fields.text(name)
        if summary:
            break
    image = ""
    for name in settings.image_fields:
        image = fields.image(name)
        if image:
            break
    topics = _dedupe_topics(fields.strings(settings.topic_field))
    return Article(
        source=rel,
        slug=slug,
        title=title,
        date=date,
        publish_date=publish_date,
        lastmod=lastmod,
        expiry=expiry,
        draft=draft,
        entry_id=entry_id,
        url=url,
        author=fields.text("author") or settings.author,
        summary=summary,
        tags=tuple(dict.fromkeys(t.strip() for t in fields.strings("tags") if t.strip())),
        topics=topics,
        image=image,
        content_hash=hashlib.sha256(raw).hexdigest(),
        body=body if keep_body else None,
        derived_id=derived_id,
    )


def _dedupe_topics(names: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in names:
        name = unicodedata.normalize("NFC", name).strip()
        if name:
            seen.setdefault(topic_key(name), name)
    return tuple(seen.values())


def _permalink(settings: _ParseSettings, slug: str, date: dt.datetime) -> tuple[str, str]:
    """(absolute URL, its path) of an article."""
    path = settings.permalink.format(
        slug=slug, year=f"{date.year:04d}", month=f"{date.month:02d}", day=f"{date.day:02d}"
    )
    # Like Hugo: the permalink is below the base URL's own path (https://example.com/blog/posts/x/).
    path = settings.base_path + quote(path, safe="/:@!$&'()*+,;=-._~").lstrip("/")
    return settings.origin + path, path


def tag_uri(host: str, path: str, first_published: dt.datetime) -> str:
    """RFC 4151 tag URI from the permalink and the first publish date: never from build time or mtime."""
    return f"tag:{host},{first_published.date().isoformat()}:{path}"
