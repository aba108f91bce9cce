"""Articles from the content folder: front matter, typed fields, and the rules of what is published.

`parse_article` is pure (bytes in, `Article` or `ArticleError` out). This module is the one place that
reads the content folder: `scan` stats it, `refresh` brings an article index (`cache.Cache`) up to date
with it, parsing only the files that are new or changed (same size, mtime, ctime and inode: unchanged),
on every core when there are many, and `collect` gives every article, reporting each unreadable one as
a `Problem` without stopping the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import gc
import hashlib
import json
import operator
import os
import pickle
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from stat import S_ISDIR, S_ISREG
from typing import BinaryIO, NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from .config import Config, ContentConfig, SiteConfig
from .errors import ArticleError, Problem
from .urls import plain_link

ARTICLE_SUFFIXES = (".md", ".markdown", ".txt")
# Bumped whenever parsing changes what an Article holds, so cached parses from older code are ignored.
PARSER_VERSION = 3
_PARALLEL_THRESHOLD = 400
A = TypeVar("A")
R = TypeVar("R")
_BATCHED_CHANGES = 1000  # more changed files than this: the index settles clashes once, not per batch


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


class IndexRow(NamedTuple):
    """One file's parse as the article index stores it: plain values, made in the worker that parsed
    the file, so the parent process builds no Article for a file it only has to remember.

    The columns let the index answer, without unpickling anything, what a build asks of every file:
    is it published at `now`, where does it sort, which topics and slug and id does it claim.
    """

    key: str  # settings fingerprint + ":" + rel: a change of settings is a miss, not a wrong hit
    rel: str
    stamp: str
    value: bytes  # the pickled Article (without its body) or Problem
    ok: bool  # an Article, not a Problem
    draft: bool
    publish_us: int | None  # microseconds since the epoch: exact, and ordered as the instants are
    expiry_us: int | None
    date_us: int | None
    slug: str | None
    entry_id: str | None  # as parsed (see jobs.stable_ids for the one that is published)
    derived: bool
    url_path: str | None
    publish_iso: str | None
    topics: tuple[tuple[str, str], ...]  # (topic key, spelling) in the article's order


class ArticleIndex(Protocol):
    """What `collect` and `refresh` need from a store of earlier parses; `cache.Cache` provides one."""

    def stamps(self) -> dict[str, str]:
        """{key: stamp} of every file remembered."""

    def add(self, rows: Sequence[IndexRow], *, many: bool = False) -> None:
        """Remember these parses (replacing what was remembered for the same keys); `many` when this
        is one of many batches (the index may then defer work that each batch would repeat)."""

    def remove(self, keys: Iterable[str]) -> None: ...

    def bulk(self) -> contextlib.AbstractContextManager[None]:
        """Around the `add`s of many rows: the index may prepare for them and finish once after."""

    def listing_digests(self, prefix: str) -> dict[int, str]:
        """{part: digest} of the parts of the folder's listing whose files are all stored as listed."""

    def listing_parts(self, prefix: str, parts: Sequence[int]) -> dict[int, list[str]]:
        """The lines of these parts of the listing, as last stored."""

    def forget_listing(self, prefix: str, parts: Sequence[int]) -> None: ...

    def set_listing(self, prefix: str, parts: Mapping[int, tuple[str, Sequence[str]]]) -> None:
        """Remember these parts: {part: (digest, lines)}."""

    def results(self) -> dict[str, Article | Problem]:
        """What parsing gave for every file remembered, by rel."""


# ---------------------------------------------------------------- walking the folder


class SourceFile(NamedTuple):  # a tuple: made 10,000 times by every build, even one with nothing to do
    rel: str  # relative to the content folder, POSIX separators
    path: str
    # Size, mtime, ctime and inode: a file edited in place changes its ctime even when a tool
    # (cp -p, rsync -t, tar) puts its size and mtime back, and a replaced file has another inode.
    stamp: str  # "size:mtime:ctime:inode" (ns), compared as it is stored: one string, made once


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
    found: list[SourceFile] = []
    folders = [""]  # relative to base, each ending in "/" but the first
    suffixes = ARTICLE_SUFFIXES
    lstat = os.stat
    collecting = gc.isenabled()
    gc.disable()  # 100,000 new tuples would set off collections that walk them all, again and again
    try:
        while folders:  # a loop, not recursion: this runs on every build, even one with nothing to do
            folder = folders.pop()
            try:
                fd = os.open(os.path.join(base, folder) if folder else base, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                # One stat a file, relative to the open folder (no path to resolve again each time);
                # lstat: a symlink is neither a folder nor a file here, so it is skipped.
                for name in os.listdir(fd):
                    if name[0] == "." or name.startswith("_index."):
                        continue
                    try:
                        st = lstat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        continue
                    mode = st.st_mode
                    if S_ISREG(mode):
                        if name.endswith(suffixes):
                            rel = folder + name
                            stamp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
                            found.append(SourceFile(rel, f"{base}/{rel}", stamp))
                    elif S_ISDIR(mode):
                        folders.append(folder + name + "/")
            except OSError:
                pass
            finally:
                os.close(fd)
        found.sort(key=_by_rel)  # strings compare faster than the tuples
    finally:
        if collecting:
            gc.enable()
    return found


_by_rel = operator.itemgetter(0)


def listing(files: Sequence[SourceFile]) -> list[str]:
    """Each file as one string, "path\0stamp": what the tree signature hashes and `refresh` compares."""
    return [f"{source.rel}\0{source.stamp}" for source in files]


def tree_signature(config: Config, files: Sequence[SourceFile], lines: Sequence[str] | None = None) -> str:
    """Changes when any article file is added, removed or changed, or parsing settings change."""
    text = "\0".join(lines if lines is not None else listing(files))  # no path or stamp holds a NUL
    return hashlib.sha256(
        _ParseSettings.of(config).fingerprint.encode() + text.encode("utf-8", "surrogateescape")
    ).hexdigest()


def collect(
    config: Config,
    cache: ArticleIndex | None = None,
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
    files, unnamed = utf8_names(config, files if files is not None else scan(config))
    if cache is not None:
        parsed = refresh(config, cache, files, workers)
        results = cache.results()
    else:
        parsed = len(files)
        rows = [row for chunk in parse_rows(config, files, workers) for row in chunk]
        results = {row.rel: unpack(row.value) for row in rows}

    collection = Collection(parsed=parsed, problems=unnamed)
    for rel in sorted(results):
        result = results[rel]
        if isinstance(result, Problem):
            collection.problems.append(result)
        else:
            collection.articles.append(result)
    collection.articles, clashes = reject_duplicates(config, collection.articles, known_ids)
    collection.problems = sorted(collection.problems + clashes, key=lambda p: p.path)
    if bodies:
        collection.articles = load_bodies(config, collection.articles)
    return collection


def utf8_names(config: Config, files: Sequence[SourceFile]) -> tuple[list[SourceFile], list[Problem]]:
    """The files whose names are UTF-8, and a problem for each other one: a name that is not has no
    permalink and no key in the index."""
    good: list[SourceFile] = []
    problems: list[Problem] = []
    for source in files:
        if source.rel.isascii() or _is_utf8(source.rel):
            good.append(source)
        else:
            shown = _shown(_ParseSettings.of(config).display_root, source.rel)
            problems.append(Problem(shown, "the file name is not UTF-8", hint="rename the file"))
    return good, problems


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8, kept by os.fsdecode as lone surrogates
        return False
    return True


_BUCKETS = 256  # the listing is compared and stored in this many parts, by a hash of each path


def _buckets(lines: Sequence[str]) -> list[list[str]]:
    parts: list[list[str]] = [[] for _ in range(_BUCKETS)]
    for line in lines:
        parts[zlib.crc32(line[: line.index("\0")].encode("utf-8", "surrogateescape")) % _BUCKETS].append(line)
    return parts


def refresh(
    config: Config,
    index: ArticleIndex,
    files: Sequence[SourceFile],
    workers: int | None = None,
    lines: Sequence[str] | None = None,
) -> int:
    """Bring the index up to date with the folder: parse the files that are new or changed since they
    were remembered (on every core when there are many), forget the ones that are gone. The work grows
    with what changed: the folder's listing is kept in parts by a hash of each path, and only the parts
    whose digest changed are read back and compared; no row of an unchanged file is read. Returns how
    many files were parsed.
    """
    prefix = _ParseSettings.of(config).fingerprint + ":"
    lines = lines if lines is not None else listing(files)
    parts = _buckets(lines)
    digests = [
        hashlib.sha1("\0".join(part).encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()
        for part in parts
    ]
    known = index.listing_digests(prefix)
    changed = [n for n in range(_BUCKETS) if known.get(n) != digests[n]]
    if not changed:
        return 0
    previous = index.listing_parts(prefix, changed) if len(known) == _BUCKETS else None
    if previous is not None and len(previous) != len(changed):
        previous = None
    index.forget_listing(prefix, changed)  # until their rows are updated, these parts vouch for nothing
    if previous is not None:
        now_lines = {line for n in changed for line in parts[n]}
        before = {line for n in changed for line in previous[n]}
        new = now_lines - before
        to_parse = [source for source, line in zip(files, lines, strict=True) if line in new]
        parsing = {source.rel for source in to_parse}
        gone_rels = {line.partition("\0")[0] for line in before - now_lines} - parsing
        gone = [prefix + rel for rel in gone_rels]
    else:  # no listing (a first build, or one killed midway): every row's stamp
        stamps = index.stamps()
        to_parse = [s for s in files if stamps.get(prefix + s.rel) != s.stamp]
        present = {prefix + s.rel for s in files}
        gone = [key for key in stamps if key not in present]
        changed = list(range(_BUCKETS))
    if gone:
        index.remove(gone)
    many = len(to_parse) > _BATCHED_CHANGES
    with index.bulk() if many else contextlib.nullcontext():
        for rows in parse_rows(config, to_parse, workers):  # stored as they come, while workers parse on
            index.add(rows, many=many)
    index.set_listing(prefix, {n: (digests[n], parts[n]) for n in changed})
    return len(to_parse)


def parse_rows(
    config: Config, files: Sequence[SourceFile], workers: int | None = None
) -> Iterator[list[IndexRow]]:
    """The index rows of these files, in chunks as they are parsed: in worker processes when there are
    many (chunks then come in the order they finish), else here."""
    settings = _ParseSettings.of(config)
    jobs = [(s.rel, s.path, s.stamp) for s in files]
    for _, rows in map_in_chunks(functools.partial(_parse_chunk, settings=settings), jobs, workers):
        yield rows


def map_in_chunks(
    func: Callable[[Sequence[A]], list[R]], items: Sequence[A], workers: int | None = None
) -> Iterator[tuple[int, list[R]]]:
    """(start, `func` of the items from there) for chunks of the items: on every core when there are
    many (chunks then come in the order they finish; `func` must be picklable), else here in one."""
    cores = workers if workers is not None else (os.cpu_count() or 1)
    if cores > 1 and len(items) >= _PARALLEL_THRESHOLD:
        # costs start-up time; only cold builds need it
        from concurrent.futures import ProcessPoolExecutor, as_completed

        size = max(1, min(256, len(items) // (cores * 8)))
        # What the parent holds is long-lived: frozen, the workers' collections never walk (and so never
        # copy) the pages they share with it, and the parent's own skip it while results stream in.
        gc.freeze()
        try:
            with ProcessPoolExecutor(max_workers=cores) as pool:
                futures = {
                    pool.submit(func, items[start : start + size]): start
                    for start in range(0, len(items), size)
                }
                for future in as_completed(futures):
                    yield futures[future], future.result()
        finally:
            gc.unfreeze()
        return
    if items:
        yield 0, func(items)


def index_key(config: Config, rel: str) -> str:
    """The key the article index knows a file by: the parse settings' fingerprint and its path."""
    return _ParseSettings.of(config).fingerprint + ":" + rel


def _parse_chunk(jobs: Sequence[tuple[str, str, str]], *, settings: _ParseSettings) -> list[IndexRow]:
    return [_index_row(rel, path, stamp, settings) for rel, path, stamp in jobs]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def micros(value: dt.datetime) -> int:
    """An aware datetime as microseconds since the epoch: exact, ordered as the instants are."""
    return (value - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=value)


def _index_row(rel: str, path: str, stamp: str, settings: _ParseSettings) -> IndexRow:
    key = settings.fingerprint + ":" + rel
    result = _parse_path((rel, path), settings)
    value = pack(result)
    if isinstance(result, Problem):
        return IndexRow(
            key, rel, stamp, value, False, False, None, None, None, None, None, False, None, None, ()
        )
    a = result
    return IndexRow(
        key,
        rel,
        stamp,
        value,
        True,
        a.draft,
        micros(a.publish_date),
        micros(a.expiry) if a.expiry is not None else None,
        micros(a.date),
        a.slug,
        a.entry_id,
        a.derived_id,
        a.url[len(settings.origin) :],  # urlsplit(a.url).path: _permalink encodes any '?' or '#'
        a.publish_date.isoformat(),
        tuple((topic_key(name), name) for name in a.topics),
    )


def pack(result: Article | Problem) -> bytes:
    """What parsing gave, as the index stores it: an Article as the tuple of its fields (half the bytes
    of the pickled dataclass, which spells every field's name), a Problem pickled."""
    if isinstance(result, Article):
        return pickle.dumps(tuple(result.__dict__.values()), protocol=pickle.HIGHEST_PROTOCOL)
    return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(value: bytes) -> Article | Problem:
    """`pack` undone. The index is ours, written by this module (and dropped when its version changes)."""
    result = pickle.loads(value)  # noqa: S301 - our own cache, written by `pack`
    if isinstance(result, tuple):
        return Article(*result)
    if isinstance(result, Problem):
        return result
    raise TypeError(f"not a parse: {type(result).__name__}")


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
            from .front_matter import decode_text, split_front_matter

            text = decode_text(raw)  # decoded before, when it was parsed
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


def reject_duplicates(
    config: Config, articles: Sequence[Article], known_ids: Set[str]
) -> tuple[list[Article], list[Problem]]:
    """Two articles with one slug (one URL) or one entry id: the one already published (its id is in
    `known_ids`, from the state) keeps it, else the first published, drafts last; every other one is
    reported and skipped, so adding a clashing file never takes over or unpublishes a live article.

    Returns the articles kept (sorted by source) and a problem for each one skipped. Articles that
    clash with none of the others are kept whatever else is given, so it is enough to pass the ones
    that share a slug or an id with another (see `cache.Cache.clashing`).
    """
    display_root = _ParseSettings.of(config).display_root
    problems: list[Problem] = []
    kept = list(articles)
    for label, attribute, hint in (
        ("slug", "slug", "set a distinct 'slug' in the front matter"),
        ("entry id", "entry_id", "set a distinct 'id' in the front matter, or remove it"),
    ):
        owners: dict[str, Article] = {}
        survivors: list[Article] = []
        for article in sorted(
            kept,
            key=lambda a: (a.draft, a.entry_id not in known_ids, a.publish_date.timestamp(), a.source),
        ):
            value = getattr(article, attribute)
            owner = owners.setdefault(value, article)
            if owner is article:
                survivors.append(article)
                continue
            problems.append(
                Problem(
                    _shown(display_root, article.source),
                    f"{label} '{value}' is already used by {_shown(display_root, owner.source)}",
                    hint=hint,
                )
            )
        kept = sorted(survivors, key=lambda a: a.source)
    return kept, sorted(problems, key=lambda p: p.path)


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

    @functools.cached_property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @functools.cached_property
    def base_path(self) -> str:
        path = urlsplit(self.base_url).path or "/"
        return path if path.endswith("/") else path + "/"

    @functools.cached_property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or "localhost"

    @functools.cached_property
    def fingerprint(self) -> str:
        fields = [str(getattr(self, f.name)) for f in dataclasses.fields(self)]  # not the cached values
        text = json.dumps([PARSER_VERSION, *fields])
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


def read_at_most(handle: BinaryIO, limit: int) -> bytes:
    """The file's bytes, or its first `limit` + 1 when it is longer: never more than the limit into
    memory. (Asked for its size first: `read(limit + 1)` would allocate the limit for every file.)"""
    size = os.fstat(handle.fileno()).st_size
    data = handle.read(min(size, limit) + 1)
    if size < len(data) <= limit:  # it grew since: the rest, up to the limit
        data += handle.read(limit + 1 - len(data))
    return data


def _parse_path(rel_path: tuple[str, str], settings: _ParseSettings) -> Article | Problem:
    rel, path = rel_path
    shown = _shown(settings.display_root, rel)
    try:
        with open(path, "rb") as handle:
            raw = read_at_most(handle, settings.max_file_bytes)
            if len(raw) > settings.max_file_bytes:
                raise ArticleError(
                    f"file is {os.fstat(handle.fileno()).st_size} bytes, over the limit of "
                    f"{settings.max_file_bytes}",
                    hint="raise [content] max_file_bytes to accept it",
                )
        return parse_article(rel, raw, settings, keep_body=False)
    except ArticleError as exc:
        return Problem(shown, exc.message, exc.line, exc.hint)
    except OSError as exc:
        return Problem(shown, f"cannot read: {exc.strerror}")


def parse_article(rel: str, raw: bytes, settings: _ParseSettings, keep_body: bool = True) -> Article:
    """Bytes of one file → Article, or an ArticleError saying what is wrong and on which line."""
    # Imported here: a build with nothing to parse never loads YAML (nor python-frontmatter).
    from .front_matter import Fields, decode_text, load_front_matter, split_front_matter

    text = decode_text(raw)
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
    url, url_path = _permalink(settings, rel, fields.text("slug"), title, date)
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


def _permalink(
    settings: _ParseSettings, rel: str, slug: str, title: str, date: dt.datetime
) -> tuple[str, str]:
    """(absolute URL, its path) of an article: `[content] permalink` expanded by Hugo's rules
    (`urls.plain_link`), below the base URL's own path, as Hugo's (https://example.com/blog/posts/x/)."""
    path = settings.base_path + plain_link(settings.permalink, rel, slug, title, date).lstrip("/")
    return settings.origin + path, path


def tag_uri(host: str, path: str, first_published: dt.datetime) -> str:
    """RFC 4151 tag URI from the permalink and the first publish date: never from build time or mtime."""
    return f"tag:{host},{first_published.date().isoformat()}:{path}"
