"""Which content files of a Hugo site are pages, and which of those Hugo publishes, where, when.

Pure: the caller scans the site (`classify` tells it what each file is) and parses the front matter
(YAML with `HugoYAMLLoader`, TOML, JSON); `decide_pages` returns one `HugoPage` per regular page,
published or not with the reason, plus notes. The rules are Hugo 0.111's (hugolib/page__meta.go,
content_map_page.go, resources/page/pagemeta, hugofs/files); docs/hugo.md lists what differs.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from functools import cached_property
from typing import Any

from digest.hugo_config import HugoSite, lower_keys
from digest.hugo_dates import parse_hugo_date
from digest.urls import PageFacts, as_url, permalink

CONTENT_EXTENSIONS = frozenset({"md", "markdown", "mdown", "html", "htm"})
# Content Hugo renders only with an external program (asciidoctor, rst2html, pandoc, emacs).
EXTERNAL_EXTENSIONS = frozenset({"asciidoc", "adoc", "ad", "rest", "rst", "org", "pandoc", "pdc"})


@dataclass(frozen=True)
class ContentFile:
    """What a path under the site is to Hugo: a content file of one language, or not."""

    path: str  # relative to the site root, with "/" separators: "content/posts/a.fr.md"
    rel: str  # relative to its content dir: "posts/a.fr.md"
    lang: str
    dir: str  # "posts/" ("" at the root)
    translation_base_name: str  # "a"
    kind: str  # "page", "leaf" (x/index.md), "branch" (x/_index.md)

    @property
    def content_base_name(self) -> str:
        if self.kind in ("leaf", "branch") and self.dir:
            return posixpath.basename(self.dir.rstrip("/"))
        return self.translation_base_name

    @cached_property
    def section(self) -> str:
        parts = self.dir.strip("/").split("/") if self.dir else [""]
        if (self.kind != "leaf" and len(parts) == 1) or len(parts) > 1:
            return parts[0]
        return ""


@dataclass(frozen=True)
class Skipped:
    """A path that is not a page, said why (`note` is set when the user should hear about it)."""

    path: str
    note: str | None


@dataclass(frozen=True)
class SourceFile:
    """One content file, read: its classification, front matter (as parsed) and modification time."""

    file: ContentFile
    front_matter: Mapping[str, Any]
    mtime: datetime | None = None
    format: str = "yaml"  # "yaml", "toml" or "json": Hugo casts some values differently per format


@dataclass(frozen=True)
class Note:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class HugoPage:
    """A regular page as Hugo sees it. `published` is Hugo's decision; `reason` says why not."""

    path: str
    lang: str
    section: str
    title: str
    slug: str
    permalink: str
    date: datetime | None
    publish_date: datetime | None
    lastmod: datetime | None
    expiry_date: datetime | None
    draft: bool
    list: str  # "always", "local" (only in its section's lists) or "never"
    render: str  # "always", "link" or "never"
    published: bool
    reason: str
    translation_key: str
    front_matter: Mapping[str, Any] = field(repr=False)
    # What the page's ancestor sections impose, whatever `now` is (the build_* settings applied): a
    # draft section, the latest section publish date and the earliest section expiry date.
    section_draft: bool = False
    not_before: datetime | None = None
    not_after: datetime | None = None

    @property
    def listed(self) -> bool:
        """In the site-wide lists (.Site.RegularPages, the home feed)."""
        return self.published and self.list == "always"

    @property
    def dated(self) -> bool:
        return self.date is not None


@dataclass(frozen=True)
class HugoResult:
    pages: tuple[HugoPage, ...]
    notes: tuple[Note, ...]


# ---------------------------------------------------------------- classification


def content_dirs(site: HugoSite) -> list[tuple[str, str]]:
    """(content dir, language) in Hugo's mount order: default language first, first claim wins."""
    ordered = sorted(site.languages, key=lambda lang: lang.lang != site.default_content_language)
    seen: dict[str, str] = {}
    for language in ordered:
        seen.setdefault(language.content_dir.strip("/"), language.lang)
    return list(seen.items())


def _ignored_name(name: str) -> bool:
    return name.startswith((".", "#")) or name.endswith("~")


def classify(path: str, site: HugoSite, head: str = "") -> ContentFile | Skipped:
    """What `path` (relative to the site root) is to Hugo. `head` is the file's first characters,
    needed only for .html/.htm files (a full HTML document is not content to Hugo)."""
    chosen: tuple[str, str] | None = None
    for folder, lang in content_dirs(site):
        if path.startswith(folder + "/") and (chosen is None or len(folder) > len(chosen[0])):
            chosen = (folder, lang)
    if chosen is None:
        return Skipped(path, None)
    folder, lang = chosen
    rel = path[len(folder) + 1 :]
    if any(_ignored_name(part) for part in rel.split("/")):
        return Skipped(path, None)
    if site.ignore_files:
        absolute_path = str(site.root / path)
        for pattern in site.ignore_files:
            if re.search(pattern, absolute_path):
                return Skipped(path, None)
    name = posixpath.basename(rel)
    stem, dot, ext = name.rpartition(".")
    if not dot:
        return Skipped(path, None)
    if ext in EXTERNAL_EXTENSIONS:
        return Skipped(
            path, f"skipped: .{ext} content needs an external converter, which digest does not run"
        )
    if ext not in CONTENT_EXTENSIONS:
        return Skipped(path, None)
    if ext in ("html", "htm") and _is_html_document(head):
        return Skipped(path, None)
    languages = {language.lang for language in site.languages}
    base, dot, suffix = stem.rpartition(".")
    if dot and suffix in languages:
        lang, stem = suffix, base
    kind = "page"
    if name.startswith("_index."):
        kind = "branch"
    elif name.startswith("index."):
        kind = "leaf"
    directory = posixpath.dirname(rel)
    return ContentFile(
        path=path,
        rel=rel,
        lang=lang,
        dir=directory + "/" if directory else "",
        translation_base_name=stem,
        kind=kind,
    )


def _is_html_document(head: str) -> bool:
    text = head.lstrip()
    return text.startswith("<") and not text.startswith("<!--")


# ---------------------------------------------------------------- values as Hugo casts them


def to_string(value: Any) -> str:
    """spf13/cast ToString for the values front matter holds."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).removesuffix(".0") if value.is_integer() else repr(value)
    if isinstance(value, str | int):
        return str(value)
    return ""


def to_bool(value: Any, fmt: str) -> bool:
    """spf13/cast ToBool: booleans, Go-style boolean strings, YAML integers (TOML and JSON numbers
    are int64/float64 to Hugo, which cast does not turn into booleans)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and fmt == "yaml":
        return value != 0
    if isinstance(value, str):
        return value in ("1", "t", "T", "TRUE", "true", "True")
    return False


def _build_value(value: Any, allowed: tuple[str, ...]) -> str:
    if isinstance(value, bool):
        value = "1" if value else "0"
    text = to_string(value)
    if text == "0":
        return "never"
    if text == "1":
        return "always"
    return text if text in allowed else "always"


def build_options(value: Any) -> tuple[str, str]:
    """`_build` as Hugo decodes it: (list, render)."""
    if not isinstance(value, Mapping):
        return "always", "always"
    opts = {str(k).lower(): v for k, v in value.items()}
    return (
        _build_value(opts.get("list", "always"), ("always", "never", "local")),
        _build_value(opts.get("render", "always"), ("always", "never", "link")),
    )


# ---------------------------------------------------------------- cascade


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """gobwas/glob with '/' as separator: `*` stays in a segment, `**` crosses them, `{a,b}`, `?`."""
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "{":
            end = pattern.find("}", i)
            if end < 0:
                out += re.escape(ch)
            else:
                out += "(?:" + "|".join(re.escape(x) for x in pattern[i + 1 : end].split(",")) + ")"
                i = end
        elif ch == "[":
            end = pattern.find("]", i)
            if end < 0:
                out += re.escape(ch)
            else:
                inner = pattern[i + 1 : end]
                out += "[" + ("^" + inner[1:] if inner.startswith("!") else inner) + "]"
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + r"\Z")


Cascade = tuple[tuple[tuple[tuple[str, str], ...], Mapping[str, Any]], ...]


def decode_cascade(value: Any) -> Cascade:
    """A `cascade` value (one map, or a list of maps with `_target`) as (matcher, values) pairs."""
    items = value if isinstance(value, list) else [value]
    merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, Mapping):
            continue
        target = item.get("_target") if isinstance(value, list) else None
        matcher: tuple[tuple[str, str], ...] = ()
        if isinstance(target, Mapping):
            matcher = tuple(
                sorted(
                    (str(k).lower(), str(v).lower() if k != "environment" else str(v))
                    for k, v in target.items()
                )
            )
        values = merged.setdefault(matcher, {})
        for k, v in item.items():
            values.setdefault(k, v)
    return tuple(merged.items())


def _merge_cascades(own: Cascade, parent: Cascade) -> Cascade:
    merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {m: dict(v) for m, v in own}
    for matcher, values in parent:
        target = merged.setdefault(matcher, {})
        for k, v in values.items():
            target.setdefault(k, v)
    return tuple(merged.items())


def _matches(matcher: tuple[tuple[str, str], ...], kind: str, lang: str, rel: str) -> bool:
    for key, pattern in matcher:
        if key == "kind" and pattern and not _glob(pattern).match(kind):
            return False
        if key == "lang" and pattern and not _glob(pattern).match(lang):
            return False
        if key == "path" and pattern and not _glob(pattern).match("/" + rel.lower()):
            return False
        if key == "environment" and pattern and not _glob(pattern).match("production"):
            return False
    return True


def _apply_cascade(front: dict[str, Any], cascade: Cascade, kind: str, lang: str, rel: str) -> None:
    for matcher, values in cascade:
        if _matches(matcher, kind, lang, rel):
            for k, v in values.items():
                if k != "_target":
                    front.setdefault(k, v)


# ---------------------------------------------------------------- dates


@dataclass(frozen=True)
class _Dates:
    date: datetime | None
    lastmod: datetime | None
    publish_date: datetime | None
    expiry_date: datetime | None
    slug: str | None  # the slug the :filename handler gives, when it was used and none is set


def filename_date(name: str, zone: tzinfo) -> tuple[datetime | None, str]:
    """Hugo's :filename rule: a `YYYY-MM-DD` prefix is the date, the rest (trimmed of ` -_`) the slug."""
    without_ext = name.rsplit(".", 1)[0] if "." in name else name
    if len(without_ext) < 10:
        return None, ""
    moment = parse_hugo_date(without_ext[:10], zone)
    if moment is None:
        return None, ""
    return moment, without_ext[10:].strip(" -_")


def _resolve_dates(
    front: Mapping[str, Any],
    site: HugoSite,
    zone: tzinfo,
    source: SourceFile,
    notes: list[str],
) -> _Dates:
    base_name, mtime, fmt = source.file.content_base_name, source.mtime, source.format
    slug: str | None = None
    warned: set[str] = set()

    def run(chain: Sequence[str]) -> datetime | None:
        nonlocal slug
        for key in chain:
            if key == ":filename":
                moment, from_name = filename_date(base_name, zone)
                if moment is not None:
                    if "slug" not in front:
                        slug = from_name
                    return moment
            elif key == ":filemodtime":
                if mtime is not None:
                    return mtime
            elif key == ":git":
                continue
            elif key in front:
                moment = parse_hugo_date(front[key], zone, fmt)
                if moment is not None:
                    return moment
                if key not in warned and not (key == "published" and isinstance(front[key], bool)):
                    warned.add(key)
                    notes.append(
                        f"'{key}' is not a date Hugo reads ({front[key]!r}): ignored, as Hugo ignores it"
                    )
        return None

    chains = site.date_chains
    return _Dates(
        date=run(chains.date),
        lastmod=run(chains.lastmod),
        publish_date=run(chains.publish_date),
        expiry_date=run(chains.expiry_date),
        slug=slug,
    )


def _draft(front: Mapping[str, Any], fmt: str) -> bool:
    if "draft" in front:
        return to_bool(front["draft"], fmt)
    published = front.get("published")
    if isinstance(published, bool) or (isinstance(published, str) and published in _BOOL_STRINGS):
        return not to_bool(published, fmt)
    return False


_BOOL_STRINGS = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"})


def _why_not_built(site: HugoSite, draft: bool, dates: _Dates, now: datetime) -> str:
    """Hugo's shouldBuild, to the second, with `now` in place of its clock."""
    if draft and not site.build_drafts:
        return "draft"
    if not site.build_future and dates.publish_date is not None and dates.publish_date > now:
        return "future"
    if not site.build_expired and dates.expiry_date is not None and dates.expiry_date < now:
        return "expired"
    return ""


# ---------------------------------------------------------------- the site


def _section_keys(files: Iterable[ContentFile]) -> set[str]:
    """The sections of one language's tree, as dir keys ("" is home): every top-level folder holding
    content, and every deeper folder with an _index file."""
    keys = {""}
    for f in files:
        parts = f.dir.strip("/").split("/") if f.dir else []
        if f.kind == "branch":
            keys.add(f.dir)
        if parts and not (f.kind == "leaf" and len(parts) == 1):
            keys.add(parts[0] + "/")
    return keys


def _parent_section(key: str, sections: set[str]) -> str:
    """The longest section key that is a strict ancestor folder of `key` ("" at worst)."""
    parent = posixpath.dirname(key.rstrip("/"))
    while parent:
        if parent + "/" in sections:
            return parent + "/"
        parent = posixpath.dirname(parent)
    return ""


def decide_pages(sources: Sequence[SourceFile], site: HugoSite, now: datetime) -> HugoResult:
    """Hugo's decisions for every regular page in `sources` (one entry per content file)."""
    notes: list[Note] = []
    pages: list[HugoPage] = []
    by_lang: dict[str, list[SourceFile]] = {}
    for source in sources:
        by_lang.setdefault(source.file.lang, []).append(source)
    for lang in sorted(by_lang):
        pages.extend(_decide_language(by_lang[lang], lang, site, now, notes))
    pages.sort(key=lambda p: (p.path, p.lang))
    notes.sort(key=lambda n: (n.path, n.message))
    return HugoResult(tuple(pages), tuple(notes))


def _decide_language(
    sources: list[SourceFile], lang: str, site: HugoSite, now: datetime, notes: list[Note]
) -> list[HugoPage]:
    zone = site.zone(lang)
    files = [s.file for s in sources]
    sections = _section_keys(files)
    leaf_dirs = {f.dir for f in files if f.kind == "leaf"}
    branches = {s.file.dir: s for s in sources if s.file.kind == "branch"}

    # Sections, shallowest first: their cascade and whether Hugo builds them.
    cascades: dict[str, Cascade] = {}
    removed: dict[str, str] = {}
    bounds: dict[str, tuple[bool, datetime | None, datetime | None]] = {}
    site_cascade = decode_cascade([lower_keys(item) for item in site.cascade])
    for key in sorted(sections, key=lambda k: (k.count("/"), k)):
        parent_cascade = site_cascade if key == "" else cascades[_parent_section(key, sections)]
        branch = branches.get(key)
        if branch is None:
            cascades[key] = parent_cascade
            continue
        front = dict(lower_keys(branch.front_matter))
        own = decode_cascade(front["cascade"]) if "cascade" in front else ()
        cascade = _merge_cascades(own, parent_cascade)
        cascades[key] = cascade
        _apply_cascade(front, cascade, "home" if key == "" else "section", lang, branch.file.rel)
        messages: list[str] = []
        dates = _resolve_dates(front, site, zone, branch, messages)
        notes.extend(Note(branch.file.path, m) for m in messages)
        draft = _draft(front, branch.format)
        bounds[key] = (
            draft and not site.build_drafts,
            None if site.build_future else dates.publish_date,
            None if site.build_expired else dates.expiry_date,
        )
        why = _why_not_built(site, draft, dates, now)
        if why:
            removed[key] = f"its section {branch.file.path} is {'a ' if why == 'draft' else ''}{why}"

    out: list[HugoPage] = []
    for source in sources:
        f = source.file
        if f.kind == "branch":
            continue
        folders = _folders(f.dir)  # the file's folder and its ancestors, deepest first
        if any(d in leaf_dirs for d in (folders[1:] if f.kind == "leaf" else folders)):
            continue  # a file inside a leaf bundle is one of its resources, not a page
        key = f.dir if f.kind == "page" else posixpath.dirname(f.dir.rstrip("/"))
        key = key + "/" if key and not key.endswith("/") else key
        parent = key if key in sections else _parent_section(key, sections) if key else ""
        messages = []
        entries = tuple(parent.strip("/").split("/")) if parent else ()
        if parent and parent not in branches:
            # Hugo keys a section it creates itself (no _index file) "/name/", and splits that
            # into ["name", ""]: `:sections[last]` is then empty, as Hugo 0.111 makes it.
            entries += ("",)
        page = _decide_page(source, site, zone, now, entries, cascades.get(parent, ()), messages)
        gone = [removed[d] for d in reversed(folders) if d in removed]
        if page.published and gone:
            page = replace(page, published=False, reason=gone[0])
        held = [bounds[d] for d in folders if d in bounds]
        if held:
            starts = [b[1] for b in held if b[1] is not None]
            ends = [b[2] for b in held if b[2] is not None]
            page = replace(
                page,
                section_draft=any(b[0] for b in held),
                not_before=max(starts) if starts else None,
                not_after=min(ends) if ends else None,
            )
        notes.extend(Note(f.path, m) for m in messages)
        out.append(page)
    return out


def _folders(directory: str) -> list[str]:
    """ "a/b/" -> ["a/b/", "a/", ""]: a folder key and its ancestors', deepest first."""
    out = []
    while directory:
        out.append(directory)
        parent = posixpath.dirname(directory.rstrip("/"))
        directory = parent + "/" if parent else ""
    out.append("")
    return out


def _decide_page(
    source: SourceFile,
    site: HugoSite,
    zone: tzinfo,
    now: datetime,
    section_entries: tuple[str, ...],
    cascade: Cascade,
    messages: list[str],
) -> HugoPage:
    f = source.file
    front = dict(lower_keys(source.front_matter))
    _apply_cascade(front, cascade, "page", f.lang, f.rel)
    dates = _resolve_dates(front, site, zone, source, messages)
    slug = to_string(front["slug"]).strip("-") if "slug" in front else (dates.slug or "")
    url = to_string(front.get("url"))
    title = to_string(front.get("title"))
    draft = _draft(front, source.format)
    list_opt, render_opt = build_options(front.get("_build"))
    if f.kind == "leaf" and "headless" in front and to_bool(front["headless"], source.format):
        list_opt, render_opt = "never", "never"
    reason = _why_not_built(site, draft, dates, now)
    if url.startswith(("http://", "https://")):
        # Hugo stops the whole build on this page; digest skips the page and says so.
        messages.append(f"'url' with a protocol is not a page URL Hugo accepts ({url!r}): skipped")
        reason, url = "url with a protocol", ""
    link_dir = f.dir
    if f.kind == "leaf":  # a leaf bundle's URL is made from the folder that holds the bundle
        parent_dir = posixpath.dirname(f.dir.rstrip("/"))
        link_dir = parent_dir + "/" if parent_dir else ""
    facts = PageFacts(
        dir=link_dir,
        translation_base_name=f.translation_base_name,
        content_base_name=f.content_base_name,
        section=f.section,
        section_entries=section_entries,
        title=title,
        slug=slug,
        url=url,
        date=dates.date,
        lang_prefix=site.lang_prefix(f.lang),
        ugly=site.ugly_for(f.section),
    )
    own_key = to_string(front.get("translationkey"))
    key = "page/" + own_key if own_key else posixpath.join("page", f.dir, f.translation_base_name)
    return HugoPage(
        path=f.path,
        lang=f.lang,
        section=f.section,
        title=title,
        slug=slug,
        # Hugo's permalink, with a `#` or `?` it keeps in a path encoded: one URL to every reader.
        permalink=""
        if render_opt == "never"
        else as_url(permalink(facts, site.permalinks, site.base_url, site.path_rules)),
        date=dates.date,
        publish_date=dates.publish_date,
        lastmod=dates.lastmod,
        expiry_date=dates.expiry_date,
        draft=draft,
        list=list_opt,
        render=render_opt,
        published=not reason,
        reason=reason,
        translation_key=key,
        front_matter=front,
    )
