"""Hugo's URL engine (as of Hugo 0.111): path sanitising, permalink patterns, default page paths.

Pure functions only. The rules follow Hugo's `helpers/path.go` (UnicodeSanitize), `helpers/url.go`
(URLize), `resources/page/permalinks.go` (the `:tokens`) and `resources/page/page_paths.go`
(CreateTargetPaths); see docs/hugo.md for what differs and why.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, unquote_plus

from digest.errors import ConfigError

# Characters UnicodeSanitize keeps besides letters, digits and marks.
_KEPT = frozenset("./\\_#+~-@")
_HEX = frozenset("0123456789abcdefABCDEF")
_PLAIN = re.compile(r"[A-Za-z0-9./\\_#+~@-]*")
# What Go's url.URL.String() leaves unescaped in a path it parsed (validEncoded), plus '#' and '?',
# which Go splits off as fragment and query and puts back unchanged.
_URL_SAFE = "/!$&'()*+,;=:@[]%-._~#?"


@dataclass(frozen=True)
class PathRules:
    """The site settings that change how a path is sanitised."""

    disable_path_to_lower: bool = False
    remove_path_accents: bool = False


def remove_accents(text: str) -> str:
    """NFD, drop the non-spacing marks (category Mn), NFC: Hugo's RemoveAccentsString."""
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", kept)


_DROP, _KEEP, _SPACE = 0, 1, 2


@lru_cache(maxsize=8192)
def _char_class(ch: str) -> int:
    """Keep letters (L*), decimal digits (Nd), marks (M*) and `./\\_#+~-@`; note Go's spaces."""
    if ch in _KEPT:
        return _KEEP
    category = unicodedata.category(ch)
    if category[0] in "LM" or category == "Nd":
        return _KEEP
    # Go's unicode.IsSpace: '\t', '\n', '\v', '\f', '\r', ' ', U+0085, U+00A0 and the Zs category.
    if ch in "\t\n\v\f\r \x85\xa0" or category == "Zs":
        return _SPACE
    return _DROP


def make_path(text: str, rules: PathRules = PathRules()) -> str:
    """Hugo's UnicodeSanitize: keep letters, digits, marks and `./\\_#+~-@` (and `%XX`), turn runs of
    whitespace into one `-`, drop everything else; the case is kept."""
    if rules.remove_path_accents:
        text = remove_accents(text)
    if _PLAIN.fullmatch(text):
        return text  # nothing to drop or replace: the common case of a link already made
    out: list[str] = []
    prepend_hyphen = False
    was_hyphen = False
    n = len(text)
    for i, ch in enumerate(text):
        kind = _char_class(ch)
        if kind == _KEEP or (ch == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX):
            was_hyphen = ch == "-"
            if prepend_hyphen:
                if not was_hyphen:
                    out.append("-")
                prepend_hyphen = False
            out.append(ch)
        elif kind == _SPACE and out and not was_hyphen:
            prepend_hyphen = True
    return "".join(out)


def make_path_sanitized(text: str, rules: PathRules = PathRules()) -> str:
    """make_path, lower-cased unless `disablePathToLower`."""
    made = make_path(text, rules)
    return made if rules.disable_path_to_lower else made.lower()


def url_escape(path: str) -> str:
    """Percent-encode what a URL path cannot hold (non-ASCII, spaces, quotes...), as Go's url.Parse +
    String() do; existing `%XX` escapes stay."""
    return quote(path, safe=_URL_SAFE)


def urlize(text: str, rules: PathRules = PathRules()) -> str:
    """Hugo's `urlize`: sanitise, lower-case (unless disabled), percent-encode."""
    return url_escape(make_path_sanitized(text, rules))


# ---------------------------------------------------------------- permalink patterns

_ATTRIBUTE = re.compile(r":\w+(\[.+?\])?")
_KNOWN = frozenset(
    {
        "year",
        "month",
        "monthname",
        "day",
        "weekday",
        "weekdayname",
        "yearday",
        "section",
        "sections",
        "title",
        "slug",
        "slugorfilename",
        "filename",
    }
)
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
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def _go_weekday(moment: datetime) -> int:
    return (moment.weekday() + 1) % 7  # Go counts from Sunday = 0


def _zone_name(moment: datetime) -> str:
    name = moment.tzname() if moment.tzinfo else "UTC"
    if name and not name.startswith(("+", "-", "UTC+", "UTC-")):
        return name
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def _offset(moment: datetime, colon: bool, zulu: bool) -> str:
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    if zulu and minutes == 0:
        return "Z"
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{':' if colon else ''}{minutes % 60:02d}"


def _hour12(moment: datetime) -> int:
    hour = moment.hour % 12
    return 12 if hour == 0 else hour


# Go layout elements that can appear in a `:word` (letters, digits, underscore), longest first where
# one is a prefix of another, as Go's time.Format reads a layout (nextStdChunk).
_LAYOUT: tuple[tuple[str, Callable[[datetime], str]], ...] = (
    ("January", lambda m: _MONTHS[m.month - 1]),
    ("Jan", lambda m: _MONTHS[m.month - 1][:3]),
    ("Monday", lambda m: _WEEKDAYS[_go_weekday(m)]),
    ("Mon", lambda m: _WEEKDAYS[_go_weekday(m)][:3]),
    ("MST", _zone_name),
    ("002", lambda m: f"{m.timetuple().tm_yday:03d}"),
    ("01", lambda m: f"{m.month:02d}"),
    ("02", lambda m: f"{m.day:02d}"),
    ("03", lambda m: f"{_hour12(m):02d}"),
    ("04", lambda m: f"{m.minute:02d}"),
    ("05", lambda m: f"{m.second:02d}"),
    ("06", lambda m: f"{m.year % 100:02d}"),
    ("15", lambda m: f"{m.hour:02d}"),
    ("1", lambda m: str(m.month)),
    ("2006", lambda m: f"{m.year:04d}"),
    ("2", lambda m: str(m.day)),
    ("__2", lambda m: f"{m.timetuple().tm_yday:3d}"),
    ("_2", lambda m: f"{m.day:2d}"),
    ("3", lambda m: str(_hour12(m))),
    ("4", lambda m: str(m.minute)),
    ("5", lambda m: str(m.second)),
    ("PM", lambda m: "PM" if m.hour >= 12 else "AM"),
    ("pm", lambda m: "pm" if m.hour >= 12 else "am"),
    ("Z070000", lambda m: _offset(m, False, True) + ("00" if _offset(m, False, True) != "Z" else "")),
    ("Z0700", lambda m: _offset(m, False, True)),
    ("Z07", lambda m: _offset(m, False, True)[:3]),
)
# Hugo's test of a Go layout: formatting this instant must change the text.
_REFERENCE_TIME = datetime(2019, 11, 9, 23, 1, 42, 1, tzinfo=UTC)


def _layout_chunks(layout: str) -> list[tuple[str, Callable[[datetime], str] | None]]:
    chunks: list[tuple[str, Callable[[datetime], str] | None]] = []
    i = 0
    literal = ""
    while i < len(layout):
        if layout.startswith("_2006", i):  # Go: a literal '_' before a long year
            literal += "_"
            i += 1
            continue
        for word, fn in _LAYOUT:
            if not layout.startswith(word, i):
                continue
            # Go: "Jan"/"Mon" only when not followed by a lower-case letter ("Janet" is text).
            after = layout[i + len(word) : i + len(word) + 1]
            if word in ("Jan", "Mon") and "a" <= after <= "z":
                continue
            if literal:
                chunks.append((literal, None))
                literal = ""
            chunks.append((word, fn))
            i += len(word)
            break
        else:
            literal += layout[i]
            i += 1
    if literal:
        chunks.append((literal, None))
    return chunks


def go_format(moment: datetime, layout: str) -> str:
    """Format `moment` with a Go layout made of word characters (`2006`, `01`, `January`...)."""
    return "".join(fn(moment) if fn else text for text, fn in _layout_chunks(layout))


def _is_layout(attr: str) -> bool:
    return go_format(_REFERENCE_TIME, attr) != attr


def _known(attr: str) -> bool:
    return attr in _KNOWN or attr.startswith("sections[") or _is_layout(attr)


def validate_pattern(pattern: str) -> str | None:
    """Why a permalink pattern is not one Hugo 0.111 accepts, or None when it is."""
    fragments = pattern[1:].split("/")
    empty_seen = False
    for fragment in fragments:
        if empty_seen:
            return "permalink ill-formed (an empty segment before the end)"
        if not fragment:
            empty_seen = True
            continue
        for match in _ATTRIBUTE.finditer(fragment):
            if not _known(match.group(0)[1:]):
                return f"permalink attribute not recognised: {match.group(0)!r}"
    for match in _ATTRIBUTE.finditer(pattern):
        if not _known(match.group(0)[1:]):
            return f"permalink attribute not recognised: {match.group(0)!r}"
    return None


def check_permalinks(patterns: Mapping[str, str], path: str | None = None) -> dict[str, str]:
    """The `[permalinks]` table keyed as Hugo looks it up (section name, `""` for the root), or a
    ConfigError naming the pattern."""
    checked: dict[str, str] = {}
    for key, pattern in patterns.items():
        problem = validate_pattern(pattern)
        if problem:
            raise ConfigError(
                f"[permalinks] {key} = {pattern!r}: {problem}", path=path, key=f"permalinks.{key}"
            )
        checked[key.strip(" /")] = pattern
    return checked


def _slice_sections(cut: str, entries: Sequence[str]) -> list[str]:
    cut = cut.strip().lower()
    if cut == "":
        return list(entries)
    if len(cut) < 3 or cut[0] != "[" or cut[-1] != "]":
        return []
    inner = cut[1:-1]

    def index(text: str, low: bool) -> int:
        if text == "":
            return 0 if low else len(entries)
        if text == "last":
            return len(entries) - 1
        try:
            number = int(text)
        except ValueError:
            number = 0
        return min(max(number, 0), len(entries))

    if not entries:
        return []
    if ":" not in inner:
        value = entries[index(inner.split(":")[0], True)] if index(inner, True) < len(entries) else ""
        return [value] if value else []
    low_text, high_text = inner.split(":")[:2]
    return list(entries[index(low_text, True) : index(high_text, False)])


@dataclass(frozen=True)
class PageFacts:
    """What Hugo's URL rules look at for one regular page (all paths relative to its content dir)."""

    dir: str  # the file's folder, "" at the root, else ending in "/": "posts/2020/"
    translation_base_name: str  # the file name without extension and language: "index", "post"
    content_base_name: str  # the bundle's folder name for index.md/_index.md, else the base name
    section: str  # the first folder ("" at the root; "" for a bundle directly at the root)
    section_entries: tuple[str, ...]  # the path of the page's current section: ("docs", "guide")
    title: str
    slug: str
    url: str
    date: datetime | None
    lang_prefix: str  # "" or the language's code when its URLs carry one
    ugly: bool = False


def _pjoin(*elems: str) -> str:
    """Go's path.Join (non-empty elements joined by "/", cleaned), keeping one trailing slash."""
    had_slash = elems[-1].endswith("/")
    joined = _go_path_join(*elems)
    if had_slash and not joined.endswith("/"):
        return joined + "/"
    return joined


def _go_path_join(*elems: str) -> str:
    parts = [e for e in elems if e]
    if not parts:
        return ""
    joined = posixpath.normpath("/".join(parts))
    if joined.startswith("//"):
        joined = "/" + joined.lstrip("/")
    return joined


def expand_permalink(pattern: str, page: PageFacts, rules: PathRules) -> str:
    """One `[permalinks]` pattern filled in for `page` (Hugo's PermalinkExpander.Expand)."""
    result = pattern
    for match in _ATTRIBUTE.finditer(pattern):
        token = match.group(0)
        attr = token[1:]
        result = result.replace(token, _attribute_value(attr, page, rules), 1)
    return result


def _filename_value(page: PageFacts, rules: PathRules) -> str:
    name = page.translation_base_name
    if name == "index":  # a bundle: its folder's name, which is the content base name
        name = page.content_base_name
    return urlize(name, rules)


def _attribute_value(attr: str, page: PageFacts, rules: PathRules) -> str:
    date = page.date
    if attr in ("year", "month", "monthname", "day", "weekday", "weekdayname", "yearday") or (
        attr not in _KNOWN and not attr.startswith("sections[")
    ):
        return _date_value(attr, date)
    if attr == "section":
        return page.section
    if attr == "sections":
        return "/".join(e for e in page.section_entries if e)
    if attr.startswith("sections["):
        return _go_path_join(*_slice_sections(attr[len("sections") :], page.section_entries))
    if attr == "title":
        return urlize(page.title, rules)
    if attr == "slug":
        return urlize(page.slug, rules) if page.slug else urlize(page.title, rules)
    if attr == "slugorfilename":
        return urlize(page.slug, rules) if page.slug else _filename_value(page, rules)
    return _filename_value(page, rules)  # filename


def _date_value(attr: str, date: datetime | None) -> str:
    if date is None:
        # Go's zero time: 0001-01-01 00:00:00 UTC, a Monday.
        zero = {"year": "1", "month": "01", "monthname": "January", "day": "01"}
        zero |= {"weekday": "1", "weekdayname": "Monday", "yearday": "1"}
        if attr in zero:
            return zero[attr]
        return go_format(datetime(1, 1, 1), attr)
    if attr == "year":
        return str(date.year)
    if attr == "month":
        return f"{date.month:02d}"
    if attr == "monthname":
        return _MONTHS[date.month - 1]
    if attr == "day":
        return f"{date.day:02d}"
    if attr == "weekday":
        return str(_go_weekday(date))
    if attr == "weekdayname":
        return _WEEKDAYS[_go_weekday(date)]
    if attr == "yearday":
        return str(date.timetuple().tm_yday)
    return go_format(date, attr)


def page_link(page: PageFacts, expanded_permalink: str, rules: PathRules) -> str:
    """The page's link below the site root ("/fr/posts/x/"), as Hugo's CreateTargetPaths makes it for
    the HTML output of a regular page. `expanded_permalink` is "" when no pattern applies."""
    if page.url:
        return _url_link(page)
    base_name = page.slug or page.content_base_name
    expanded = _query_unescape(expanded_permalink)
    if expanded:
        page_path = _pjoin("/", expanded)
    else:
        page_path = "/"
        if page.dir:
            page_path = _pjoin(page_path, page.dir)
        if base_name:
            page_path = _pjoin(page_path, base_name)
    base_is_index = base_name == "index"
    link = page_path
    if base_is_index:
        link = link.removesuffix(base_name)
    link += "/"
    ugly = page.ugly or (not expanded and base_is_index)
    file_path = page_path.strip("/") + ".html" if ugly else _pjoin(page_path, "index.html")
    if not file_path.endswith("/index.html"):
        link = file_path
    if page.lang_prefix:
        link = _pjoin(page.lang_prefix, link)
    link = _finish_link(link)
    return url_escape(make_path_sanitized(link, rules)) or "/"


def _query_unescape(text: str) -> str:
    """Go's url.QueryUnescape, which Hugo applies to an expanded pattern: `+` is a space, `%XX` a
    byte; a malformed escape makes Hugo drop the pattern (it then uses the default path)."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        return ""
    return unquote_plus(text)


def _url_link(page: PageFacts) -> str:
    url = page.url
    page_path = _pjoin("/", url)
    link = page_path
    has_dot = "." in url
    has_slash = url.endswith("/")
    if has_slash or not has_dot:
        page_path = _pjoin(page_path, "index.html")
    if not page_path.endswith("/index.html"):
        link = page_path
    elif not has_slash:
        link += "/"
    force_prefix = not url.startswith("/")
    if force_prefix and page.lang_prefix and not url.startswith("/" + page.lang_prefix):
        link = _pjoin(page.lang_prefix, link)
    return url_escape(_finish_link(link)) or "/"


def _finish_link(link: str) -> str:
    had_slash = link.endswith("/")
    link = link.strip("/")
    if had_slash:
        link += "/"
    if not link.startswith("/"):
        link = "/" + link
    return link


def absolute(base_url: str, link: str) -> str:
    """Hugo's PermalinkForBaseURL: the base URL (with its path) and the link, one slash between."""
    if not base_url.endswith("/"):
        base_url += "/"
    return base_url + link.removeprefix("/")


def permalink(page: PageFacts, patterns: Mapping[str, str], base_url: str, rules: PathRules) -> str:
    """The page's absolute URL: its section's `[permalinks]` pattern (if any), Hugo's default path
    otherwise, the front-matter `url` over both."""
    pattern = patterns.get(page.section, "")
    expanded = expand_permalink(pattern, page, rules) if pattern else ""
    return absolute(base_url, page_link(page, expanded, rules))


def term_key(term: str, rules: PathRules) -> str:
    """A taxonomy term's key as Hugo's getTaxonomyKey makes it ("C#" -> "c#", "Go Lang" -> "go-lang"):
    the name of its page's folder, not percent-encoded. Two terms with one key are one term to Hugo."""
    return make_path_sanitized(term, rules)


def term_link(plural: str, term: str, lang_prefix: str, ugly: bool, rules: PathRules) -> str:
    """The link below the site root of a taxonomy term's page ("/fr/tags/c#/", "/tags/go.html" with
    uglyURLs), as Hugo's CreateTargetPaths makes it for the term's HTML output; "" when the term has no
    key (nothing in its name that a path keeps). Like Hugo's links, a `#` or `?` in it stays as it is:
    `as_url` makes it one URL."""
    key = term_key(term, rules)
    if not key.strip("/"):
        return ""
    page_path = _pjoin("/", make_path_sanitized(plural, rules), key)
    link = page_path.strip("/") + ".html" if ugly else page_path + "/"
    if lang_prefix:
        link = _pjoin(lang_prefix, link)
    return url_escape(make_path_sanitized(_finish_link(link), rules))


def as_url(link: str) -> str:
    """A Hugo link or permalink as one URL: the `#` and `?` that Hugo keeps in a path (`/tags/c#/`)
    percent-encoded, so that no reader takes them for a fragment or a query."""
    return link.replace("#", "%23").replace("?", "%3F")


# ---------------------------------------------------------------- the plain mode's `[content] permalink`

# The placeholders `[content] permalink` had before it took Hugo's tokens, and the token each one reads
# as now: `{slug}` was the front-matter slug, else the file name (the folder's for an index.md).
LEGACY_PLACEHOLDERS = {"{slug}": ":slugorfilename", "{year}": ":year", "{month}": ":month", "{day}": ":day"}
# A plain-mode pattern must hold one of these: without it every article would have one URL.
PER_PAGE_TOKENS = (":slug", ":slugorfilename", ":filename", ":title")


def legacy_permalink(pattern: str) -> str | None:
    """The token form of a pattern written with the old `{slug}` placeholders (`/posts/{slug}/` →
    `/posts/:slugorfilename/`), or None when it holds none of them."""
    if "{" not in pattern:
        return None
    converted = pattern
    for placeholder, token in LEGACY_PLACEHOLDERS.items():
        converted = converted.replace(placeholder, token)
    return converted


def plain_pattern_problem(pattern: str) -> str | None:
    """Why `[content] permalink` (token form) cannot give each article its own URL, or None."""
    if "{" in pattern or "}" in pattern:
        return "has an unknown placeholder or a stray brace (the old ones: {slug} {year} {month} {day})"
    problem = validate_pattern(pattern)
    if problem:
        return f"is not a pattern Hugo accepts: {problem}"
    if not any(re.search(re.escape(token) + r"(?![a-z\[])", pattern) for token in PER_PAGE_TOKENS):
        return "must hold :slug, :slugorfilename, :filename or :title"
    return None


def plain_link(pattern: str, rel: str, slug: str, title: str, date: datetime) -> str:
    """The link below the site root of the plain folder's file `rel` (`posts/x.md`) with front-matter
    `slug` ("" when none), `title` and `date`: `pattern` expanded as Hugo expands `[permalinks]`, then
    sanitised as Hugo sanitises a page's path (`urlize`, lower-cased), percent-encoded."""
    pattern = legacy_permalink(pattern) or pattern
    folder, _, filename = rel.rpartition("/")
    stem = filename.rsplit(".", 1)[0]
    entries = tuple(folder.split("/")) if folder else ()
    page = PageFacts(
        dir=folder + "/" if folder else "",
        translation_base_name=stem,
        content_base_name=entries[-1] if stem == "index" and entries else stem,
        section=entries[0] if entries else "",
        section_entries=entries,
        title=title,
        slug=slug,
        url="",
        date=date,
        lang_prefix="",
    )
    rules = PathRules()
    return page_link(page, expand_permalink(pattern, page, rules), rules)
