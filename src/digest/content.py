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
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from . import simple_yaml
from .config import Config, ContentConfig, SiteConfig
from .errors import ArticleError, Problem

ARTICLE_SUFFIXES = (".md", ".markdown", ".txt")
# Bumped whenever parsing changes what an Article holds, so cached parses from older code are ignored.
PARSER_VERSION = 1
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

    def is_published(self, now: dt.datetime) -> bool:
        return is_published(self, now)


def is_published(article: Article, now: dt.datetime) -> bool:
    """Not a draft, its publish date has come, and it has not expired."""
    if article.draft or article.publish_date > now:
        return False
    return article.expiry is None or article.expiry > now


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


class ParseCache(Protocol):
    """What `collect` needs from a cache of earlier parses; the state module provides one."""

    def lookup(self, key: str) -> tuple[int, int, Article | Problem] | None: ...

    def store(self, entries: Sequence[tuple[str, int, int, Article | Problem | bytes]]) -> None:
        """Remember parses; a bytes value is an Article or Problem already pickled."""

    def forget_except(self, keys: set[str]) -> None: ...


# ---------------------------------------------------------------- walking the folder


def iter_article_files(root: Path) -> Iterator[os.DirEntry[str]]:
    """Article files below root, sorted by path; symlinks are followed only inside root, never in a loop."""
    base = os.path.realpath(root)
    seen_dirs: set[tuple[int, int]] = set()

    def walk(folder: str) -> Iterator[os.DirEntry[str]]:
        try:
            stat = os.stat(folder)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        ident = (stat.st_dev, stat.st_ino)
        if ident in seen_dirs:
            return
        seen_dirs.add(ident)
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if target != base and not target.startswith(base + os.sep):
                    continue
            if entry.is_dir():
                yield from walk(entry.path)
            elif name.endswith(ARTICLE_SUFFIXES) and not name.startswith("_index.") and entry.is_file():
                yield entry  # "_index.*" is a Hugo section page, not an article

    yield from walk(base)


@dataclass(frozen=True)
class SourceFile:
    rel: str  # relative to the content folder, POSIX separators
    path: str
    size: int
    mtime_ns: int


def scan(config: Config) -> list[SourceFile]:
    """Every article file with its size and mtime: all that is needed to tell whether anything changed."""
    root = config.content.dir
    prefix = len(os.path.realpath(root)) + 1  # every path the walk yields starts with the real root
    found = []
    for entry in iter_article_files(root):
        try:
            stat = entry.stat()
        except OSError:
            continue
        rel = entry.path[prefix:].replace(os.sep, "/")
        found.append(SourceFile(rel, entry.path, stat.st_size, stat.st_mtime_ns))
    return found


def tree_signature(config: Config, files: Sequence[SourceFile]) -> str:
    """Changes when any article file is added, removed, resized or touched, or parsing settings change."""
    digest = hashlib.sha256(_ParseSettings.of(config).fingerprint.encode())
    for source in files:
        digest.update(f"\0{source.rel}\0{source.size}\0{source.mtime_ns}".encode())
    return digest.hexdigest()


def collect(
    config: Config,
    cache: ParseCache | None = None,
    workers: int | None = None,
    *,
    bodies: bool = True,
    files: Sequence[SourceFile] | None = None,
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
        hit = cache.lookup(prefix + source.rel) if cache is not None else None
        if hit is not None and hit[0] == source.size and hit[1] == source.mtime_ns:
            results[source.rel] = hit[2]
        else:
            to_parse.append(source)

    parsed = _parse_all([s.path for s in to_parse], settings, workers, keep_body=bodies)
    for source, (result, _) in zip(to_parse, parsed, strict=True):
        results[source.rel] = result
    if cache is not None:
        if parsed:
            cache.store(
                [
                    (prefix + source.rel, source.size, source.mtime_ns, blob or _without_body(result))
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
    _reject_duplicate_slugs(collection)
    if bodies:
        collection.articles = load_bodies(config, collection.articles)
    return collection


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
            raise ArticleError(f"cannot read: {exc.strerror}", path=path) from None
        if hashlib.sha256(raw).hexdigest() == article.content_hash:
            text = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
            loaded.append(dataclasses.replace(article, body=split_front_matter(text)[2]))
        else:
            loaded.append(parse_article(article.source, raw, settings))
    return loaded


def _reject_duplicate_slugs(collection: Collection) -> None:
    by_slug: dict[str, list[Article]] = {}
    for article in collection.articles:
        by_slug.setdefault(article.slug, []).append(article)
    kept: list[Article] = []
    for article in collection.articles:
        owners = by_slug[article.slug]
        if len(owners) == 1:
            kept.append(article)
            continue
        others = ", ".join(a.source for a in owners if a is not article)
        collection.problems.append(
            Problem(
                article.source,
                f"slug '{article.slug}' is also used by {others}",
                hint="set a distinct 'slug' in the front matter",
            )
        )
    collection.articles = kept
    collection.problems.sort(key=lambda p: p.path)


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
    paths: list[str], settings: _ParseSettings, workers: int | None, keep_body: bool
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
    return [(_parse_path(path, settings, keep_body), None) for path in paths]


def _parse_pickled(path: str, settings: _ParseSettings, keep_body: bool) -> bytes:
    return pickle.dumps(_parse_path(path, settings, keep_body), protocol=pickle.HIGHEST_PROTOCOL)


def _parse_path(path: str, settings: _ParseSettings, keep_body: bool) -> Article | Problem:
    rel = os.path.relpath(path, settings.root).replace(os.sep, "/")
    shown = f"{settings.display_root}/{rel}" if settings.display_root != "." else rel
    try:
        size = os.path.getsize(path)
        if size > settings.max_file_bytes:
            raise ArticleError(
                f"file is {size} bytes, over the limit of {settings.max_file_bytes}",
                hint="raise [content] max_file_bytes to accept it",
            )
        with open(path, "rb") as handle:
            raw = handle.read()
        return parse_article(rel, raw, settings, keep_body)
    except ArticleError as exc:
        return Problem(shown, exc.message, exc.line, exc.hint)
    except OSError as exc:
        return Problem(shown, f"cannot read: {exc.strerror}")


_YAML_OPEN = re.compile(r"^---[ \t]*\n", re.MULTILINE)
_YAML_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)
_TOML_CLOSE = re.compile(r"^\+\+\+[ \t]*$", re.MULTILINE)


def split_front_matter(text: str) -> tuple[str, str, str, int]:
    """(format, front matter, body, line number of the front matter's first line)."""
    if text.startswith("---"):
        first_nl = text.find("\n")
        if first_nl == -1 or text[:first_nl].strip() != "---":
            raise ArticleError("front matter: the opening '---' must stand alone on the first line", line=1)
        close = _YAML_CLOSE.search(text, first_nl + 1)
        if close is None:
            raise ArticleError(
                "front matter: no closing '---'", line=1, hint="end the front matter with a line '---'"
            )
        return "yaml", text[first_nl + 1 : close.start()], text[close.end() :].lstrip("\n"), 2
    if text.startswith("+++"):
        first_nl = text.find("\n")
        close = _TOML_CLOSE.search(text, first_nl + 1) if first_nl != -1 else None
        if close is None:
            raise ArticleError("front matter: no closing '+++'", line=1)
        return "toml", text[first_nl + 1 : close.start()], text[close.end() :].lstrip("\n"), 2
    if text.startswith("{"):
        try:
            meta, end = json.JSONDecoder().raw_decode(text)
        except json.JSONDecodeError as exc:
            raise ArticleError(f"front matter: not valid JSON: {exc.msg}", line=exc.lineno) from None
        if not isinstance(meta, dict):  # pragma: no cover - raw_decode of "{" always yields a dict
            raise ArticleError("front matter: JSON front matter must be an object", line=1)
        return "json", text[:end], text[end:].lstrip("\n"), 1
    raise ArticleError(
        "no front matter",
        line=1,
        hint="start the file with '---' (YAML), '+++' (TOML) or a JSON object",
    )


def _load_front_matter(fmt: str, text: str, first_line: int) -> dict[str, Any]:
    if fmt == "yaml":
        meta = simple_yaml.load(text)
        if meta is not None:
            return meta
        import yaml  # here, not at the top: a build with nothing new to read never needs it

        # The C loader is much faster; PyYAML wheels ship it, a build without libyaml would not.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            meta = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            if exc.context_mark is not None and mark is not None and mark.index >= len(text.rstrip()):
                mark = exc.context_mark  # "found end of stream": where the unclosed thing began helps more
            line = first_line + mark.line if mark is not None else None
            raise ArticleError(f"front matter: YAML: {exc.problem or exc.context}", line=line) from None
        except yaml.YAMLError as exc:
            raise ArticleError(f"front matter: YAML: {exc}") from None
    elif fmt == "toml":
        try:
            meta = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+)", str(exc))
            line = first_line + int(match.group(1)) - 1 if match else None
            raise ArticleError(f"front matter: TOML: {exc}", line=line) from None
    else:
        meta = json.loads(text)
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ArticleError("front matter must be a mapping of keys to values", line=first_line)
    return meta


def parse_article(rel: str, raw: bytes, settings: _ParseSettings, keep_body: bool = True) -> Article:
    """Bytes of one file → Article, or an ArticleError saying what is wrong and on which line."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ArticleError("not UTF-8 text", line=line, hint="save the file as UTF-8") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    fmt, fm_text, body, first_line = split_front_matter(text)
    meta = _load_front_matter(fmt, fm_text, first_line)
    fields = _Fields(meta, fm_text, first_line, ZoneInfo(settings.timezone))

    title = fields.text("title", required=True)
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
    entry_id = fields.text("id") or _tag_uri(settings.host, url_path, publish_date)

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


def _tag_uri(host: str, path: str, first_published: dt.datetime) -> str:
    """RFC 4151 tag URI from the permalink and the first publish date: never from build time or mtime."""
    return f"tag:{host},{first_published.date().isoformat()}:{path}"


class _Fields:
    """Typed access to front-matter fields; each error names the field and its line."""

    def __init__(self, meta: Mapping[str, Any], text: str, first_line: int, tz: ZoneInfo) -> None:
        self.meta = meta
        self.source = text
        self.first_line = first_line
        self.tz = tz

    def line_of(self, key: str) -> int | None:
        """The line of `key` in the front matter; only asked on the error path, so a plain scan will do."""
        pattern = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*[:=]""")
        for number, line in enumerate(self.source.split("\n")):
            if pattern.match(line):
                return self.first_line + number
        return None

    def _error(self, key: str, problem: str, hint: str | None = None) -> ArticleError:
        return ArticleError(f"front matter: {problem}", line=self.line_of(key), key=key, hint=hint)

    def text(self, key: str, required: bool = False) -> str:
        value = self.meta.get(key)
        if value is None or value == "":
            if required:
                raise ArticleError(
                    f"front matter: '{key}' is missing",
                    line=self.first_line,
                    key=key,
                    hint=f"add a '{key}:' line",
                )
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._error(key, f"'{key}' must be text, not {_kind(value)}")
        return str(value).strip()

    def boolean(self, key: str) -> bool:
        value = self.meta.get(key, False)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if value is None:
            return False
        raise self._error(key, f"'{key}' must be true or false, not {value!r}")

    def strings(self, key: str) -> list[str]:
        value = self.meta.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
        ):
            return [str(v) for v in value]
        raise self._error(key, f"'{key}' must be a list of text or one text")

    def image(self, key: str) -> str:
        value = self.meta.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, dict):  # e.g. PaperMod's cover: {image: ..., alt: ...}
            value = value.get("image") or value.get("src")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._error(key, f"'{key}' must be an image path or URL")
        return value.strip()

    def date(self, key: str, required: bool = False) -> dt.datetime | None:
        value = self.meta.get(key)
        if value is None or value == "":
            if required:
                raise ArticleError(
                    f"front matter: '{key}' is missing",
                    line=self.first_line,
                    key=key,
                    hint="add e.g. 'date: 2025-06-25T17:10:04+08:00'",
                )
            return None
        parsed = _as_datetime(value, self.tz)
        if parsed is None:
            raise self._error(
                key,
                f"'{key}' is not a date ({value!r})",
                hint="use ISO 8601, e.g. 2025-06-25T17:10:04+08:00 or 2025-06-25",
            )
        return parsed


def _kind(value: object) -> str:
    return {list: "a list", dict: "a mapping", bool: "true/false"}.get(type(value), type(value).__name__)


def _as_datetime(value: object, tz: ZoneInfo) -> dt.datetime | None:
    """Aware datetimes stay; naive ones and bare dates take the site timezone."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
        except ValueError:
            try:
                value = dt.date.fromisoformat(text)
            except ValueError:
                return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=tz)
    return None
