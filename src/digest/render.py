"""The render stage: Markdown → safe HTML with absolute links, and the article's one plain-text summary.
Pure functions; `render_entry` makes the `RenderedEntry` that the feeds and the digest both read.

Everything that leaves here for a feed or an email is (1) sanitized by nh3, so no script, frame, style,
event handler or `javascript:` URL survives, (2) free of characters XML 1.0 forbids, and (3) made of
absolute URLs, resolved against the article's permalink, except `#` links between footnotes, whose ids
are prefixed per article so two articles shown on one page never collide.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

import nh3

from .content import Article, clean_xml_text
from .text import one_line

if TYPE_CHECKING:
    from markdown.extensions import Extension
    from markdown.util import Registry

_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS) | {"picture", "source", "figure", "figcaption"}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "a": {"href", "hreflang", "title", "id", "class"},
    "img": {"src", "srcset", "alt", "title", "width", "height", "loading"},
    "source": {"srcset", "type", "media"},
    "sup": {"id"},
    "li": {"id"},
    "div": {"class"},
    "code": {"class"},
    "th": {"align", "colspan", "rowspan", "style"},
    "td": {"align", "colspan", "rowspan", "style"},
}
# Characters left as they are when percent-encoding a URL: the reserved ones, and "%" so that an already
# encoded URL is not encoded twice. A comma is encoded: srcset uses it as a separator.
_URL_SAFE = "/:?#[]@!$&'()*+;=%~-._"
_URL_SCHEMES = {"http", "https", "mailto", "ftp", "tel"}
_MARKDOWN_EXTENSIONS = ["footnotes", "tables", "fenced_code"]
_SENTENCE_END = "。！？!?…."
_CLOSERS = "”’\"')）」』】"


@dataclass(frozen=True)
class RenderedEntry:
    """What rendering produced for one article: safe HTML content, its plain-text summary (the one the
    feeds and the digest both show) and the featured image's URL ("" when none)."""

    html: str
    summary: str
    image: str


def render_entry(article: Article, summary_chars: int) -> RenderedEntry:
    """The article rendered once: its HTML, the summary cut from that HTML, and its image."""
    html = article_html(article)
    return RenderedEntry(html, summary_text(article, html, summary_chars), image_url(article))


_converter: MarkdownConverter | None = (
    None  # made on first use (importing Python-Markdown costs start-up time)
)
_goldmark: MarkdownConverter | None = None  # the same with GOLDMARK_EXTENSIONS, for Hugo pages
# Goldmark's defaults beyond ours: GFM (tables, strikethrough, task lists, autolinks), definition lists,
# footnotes and typographer quotes, dashes and ellipses.
GOLDMARK_EXTENSIONS = [
    *_MARKDOWN_EXTENSIONS,
    "def_list",
    "smarty",
    "pymdownx.tilde",
    "pymdownx.tasklist",
    "pymdownx.magiclink",
]
_GOLDMARK_CONFIGS: dict[str, dict[str, Any]] = {
    "smarty": {"smart_angled_quotes": True},
    "pymdownx.tilde": {"subscript": False},
}
# A task list's checkbox (an <input>, which no feed or mail keeps) becomes a ballot box character.
_TASK_BOX = re.compile(r"<input\b[^>]*type=\"checkbox\"[^>]*/?>\s*")


_LIST_ITEM = re.compile(r"^ {0,12}(?:[*+-]|\d{1,9}[.)])[ \t]+\S")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def separate_list_items(text: str) -> str:
    """Put a blank line before a list item that directly follows a paragraph line.

    Hugo (CommonMark) lets a list item interrupt a paragraph; Python-Markdown does not, and shows the
    `*   ` of such an item as text. The seed article has exactly this shape, so match Hugo.
    """
    lines = text.split("\n")
    out: list[str] = []
    fenced = False
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and _LIST_ITEM.match(line) and out and out[-1].strip():
            previous = out[-1]
            if not _LIST_ITEM.match(previous) and not previous.lstrip().startswith(("|", ">", "#")):
                out.append("")
        out.append(line)
    return "\n".join(out)


def prepare(*markups: str) -> None:
    """Make the Markdown converters of these markups now ("markdown", "goldmark" for a Hugo page;
    none given: "markdown"): called before worker processes fork, each inherits them instead of
    importing Python-Markdown and building its own."""
    global _converter, _goldmark
    for markup in markups or ("markdown",):
        if markup == "goldmark":
            if _goldmark is None:
                _goldmark = MarkdownConverter("goldmark")
        elif _converter is None:
            _converter = MarkdownConverter()


# What every match of an inline pattern contains: a character of each string ("" for a delimiter
# pattern: one of its delimiters, `*`, `_`, `~`…). Python-Markdown tries every inline pattern on every
# text node, and most documents hold the characters of few of them (no `<`, `&` or `\`, often no `` ` ``
# or `!`): a pattern whose characters a document lacks cannot match in it, so its inline passes go
# without that pattern. Nothing Python-Markdown puts into the text before those passes is one of these
# characters (its placeholders are letters, digits, ':', STX and ETX; a tab becomes spaces), and a
# pattern that matches nothing changes nothing: the HTML is the same (tests/test_render_speed.py renders
# every pattern both ways, bench/pattern_skip_check.py a whole corpus). Keyed by name and class: a
# pattern not listed here (another extension's, or one a later Python-Markdown renamed) is always tried.
_PATTERN_NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("backtick", "BacktickInlineProcessor"): ("`",),
    ("escape", "EscapeInlineProcessor"): ("\\",),
    ("footnote", "FootnoteInlineProcessor"): ("[", "^"),
    ("reference", "ReferenceInlineProcessor"): ("[",),
    ("link", "LinkInlineProcessor"): ("[",),
    ("image_link", "ImageInlineProcessor"): ("!", "["),
    ("image_reference", "ImageReferenceInlineProcessor"): ("!", "["),
    ("short_reference", "ShortReferenceInlineProcessor"): ("[",),
    ("short_image_ref", "ShortImageReferenceInlineProcessor"): ("!", "["),
    ("autolink", "AutolinkInlineProcessor"): ("<",),
    ("autolink", "MagiclinkAutoPattern"): ("<",),
    ("automail", "AutomailInlineProcessor"): ("<", "@"),
    ("linebreak", "SubstituteTagInlineProcessor"): (" \t",),  # two spaces before a line end
    ("html", "HtmlInlineProcessor"): ("<",),
    ("entity", "HtmlInlineProcessor"): ("&", ";"),
    ("magic-link", "MagiclinkPattern"): ("/.",),  # "://" or "www."
    ("magic-mail", "MagiclinkMailPattern"): ("@",),
    ("em_strong", "DelimiterProcessor"): ("",),
    ("delimiter", "DelimiterProcessor"): ("",),
    ("smarty-ellipses", "SubstituteTextPattern"): (".",),
    ("smarty-em-dashes", "SubstituteTextPattern"): ("-",),
    ("smarty-en-dashes", "SubstituteTextPattern"): ("-",),
    ("smarty-left-angle-quotes", "SubstituteTextPattern"): ("<",),
    ("smarty-right-angle-quotes", "SubstituteTextPattern"): (">",),
    **{(f"smarty-quotes-{n}", "SubstituteTextPattern"): ("'\"",) for n in range(15)},
}


class MarkdownConverter:
    """Python-Markdown with the extensions of `markup` ("markdown", or "goldmark" for a Hugo page), one
    document at a time. With `skip`, each document's inline passes (Python-Markdown's own, and
    smarty's) leave out the patterns whose characters it lacks (`_PATTERN_NEEDS`): the same HTML, sooner."""

    def __init__(self, markup: str = "markdown", *, skip: bool = True) -> None:
        import markdown
        from markdown.treeprocessors import InlineProcessor

        self.goldmark = markup == "goldmark"
        extensions, configs = (
            (GOLDMARK_EXTENSIONS, _GOLDMARK_CONFIGS) if self.goldmark else (_MARKDOWN_EXTENSIONS, {})
        )
        self.md = markdown.Markdown(
            extensions=[_extension(name, configs.get(name, {})) for name in extensions], output_format="html"
        )
        self.passes: list[tuple[InlineProcessor, Registry[Any], dict[str, tuple[str, ...]]]] = []
        for name in ("inline", "smarty"):
            if not skip or name not in self.md.treeprocessors:
                continue
            processor = self.md.treeprocessors[name]
            if isinstance(processor, InlineProcessor):
                self.passes.append((processor, processor.inlinePatterns, _needs(processor.inlinePatterns)))
        self.triggers = sorted(
            {c for *_, needs in self.passes for groups in needs.values() for c in "".join(groups)}
        )
        self.subsets: dict[tuple[int, str], Registry[Any]] = {}

    def convert(self, text: str) -> str:
        """The raw (unsanitized) HTML of one document."""
        text = separate_list_items(text)
        subsets = self.patterns_for(text)
        self.md.reset()
        try:
            for (processor, _, _), subset in zip(self.passes, subsets, strict=True):
                processor.inlinePatterns = subset
            html = str(self.md.convert(text))
        finally:
            for processor, patterns, _ in self.passes:
                processor.inlinePatterns = patterns
        if self.goldmark:
            html = _TASK_BOX.sub(lambda m: "\u2611 " if "checked" in m.group(0) else "\u2610 ", html)
        return html

    def patterns_for(self, text: str) -> list[Registry[Any]]:
        """For each inline pass, the patterns that can match in `text`: those whose characters it holds."""
        present = "".join(c for c in self.triggers if c in text)
        subsets = []
        for index, (_, patterns, needs) in enumerate(self.passes):
            subset = self.subsets.get((index, present))
            if subset is None:
                subset = patterns[:]  # a copy: the same names, priorities and order
                for name, groups in needs.items():
                    if not all(any(c in present for c in group) for group in groups):
                        subset.deregister(name)
                if len(self.subsets) < _SUBSETS:
                    self.subsets[index, present] = subset
            subsets.append(subset)
        return subsets


def _extension(name: str, config: dict[str, Any]) -> Extension:
    """Python-Markdown's extension `name` ("footnotes" is one of its own, "pymdownx.tilde" a module),
    made by its module's `makeExtension`: given a name, Markdown first reads the entry points of every
    installed distribution (about 40 ms, which an incremental build rendering one article pays too)."""
    module = importlib.import_module(name if "." in name else f"markdown.extensions.{name}")
    extension: Extension = module.makeExtension(**config)
    return extension


_SUBSETS = 256  # the subsets kept, by the triggers present (a few dozen in a real site)


def _needs(patterns: Registry[Any]) -> dict[str, tuple[str, ...]]:
    """The patterns of `patterns` known to `_PATTERN_NEEDS`, by name, with what each match contains."""
    needs = {}
    for name, kind in _PATTERN_NEEDS:
        if name in patterns and type(patterns[name]).__name__ == kind:
            groups = _PATTERN_NEEDS[name, kind]
            if groups == ("",):
                tokens = getattr(patterns[name], "tokens", None)
                if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
                    continue
                groups = ("".join(t[0] for t in tokens),)
            needs[name] = groups
    return needs


def render_parts(article: Article, summary_chars: int) -> tuple[str, str, str]:
    """`render_entry` as a plain tuple (html, summary, image): what a worker process sends back."""
    entry = render_entry(article, summary_chars)
    return entry.html, entry.summary, entry.image


def unrendered(seconds: float | None, cause: str) -> tuple[str, str]:
    """The problem (message, hint) of an article whose rendering ran out of its budget of `seconds`
    (`[content] render_timeout`; None when it did not), or failed with `cause`: it is not published.

    Python-Markdown is quadratic on some input (50,000 `[` take minutes), so each article's rendering
    runs in a worker process that is stopped when its budget runs out (`jobs.render_entries`)."""
    if seconds is not None:
        return (
            f"Markdown took longer than {seconds:g} s to render, so the article is not published",
            "raise [content] render_timeout, or simplify the body: long runs of unmatched '[' are slow",
        )
    return f"Markdown could not be rendered ({cause}), so the article is not published", "simplify the body"


def markdown_to_html(text: str, markup: str = "markdown") -> str:
    """Raw (unsanitized) HTML from Markdown; one converter per process, reset between documents.
    `markup="goldmark"` (a Hugo page) adds what Hugo's Goldmark renders by default (GOLDMARK_EXTENSIONS)."""
    try:
        return _convert(text, markup)
    except RecursionError:  # its own text varies with where the limit was hit: one cause, one message
        raise RecursionError("nested too deeply") from None


def _convert(text: str, markup: str) -> str:
    prepare(markup)
    if markup == "goldmark":
        assert _goldmark is not None
        return _goldmark.convert(text)
    assert _converter is not None
    return _converter.convert(text)


def html_text(html: str) -> str:
    """The text of an HTML fragment, whitespace folded (no space between two Chinese characters)."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return _join_words(extractor.parts)


def sanitize(html: str, base_url: str, id_prefix: str = "") -> str:
    """Safe HTML whose links and images are absolute against base_url; ids and `#` links get id_prefix."""

    def resolve(url: str) -> str:
        if url.startswith("#"):
            return "#" + id_prefix + url[1:]
        return urljoin(base_url, quote(url, safe=_URL_SAFE))

    def rewrite_srcset(tag: str, attribute: str, value: str) -> str | None:
        if attribute == "srcset":
            return absolute_srcset(value, base_url)
        return value

    return nh3.clean(
        clean_xml_text(html),
        tags=_ALLOWED_TAGS,
        clean_content_tags={"script", "style", "iframe", "object", "embed", "template", "noscript"},
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=rewrite_srcset,
        link_rel=None,
        url_schemes=_URL_SCHEMES,
        url_relative=resolve,
        id_prefix=id_prefix or None,
    )


def absolute_srcset(value: str, base_url: str) -> str:
    candidates = []
    for candidate in value.split(","):
        parts = candidate.strip().split(maxsplit=1)
        if not parts:
            continue
        url = urljoin(base_url, quote(parts[0], safe=_URL_SAFE))
        if urlsplit(url).scheme not in ("http", "https"):
            continue
        candidates.append(" ".join([url, *parts[1:]]))
    return ", ".join(candidates)


def image_url(article: Article) -> str:
    """The featured image as an absolute, percent-encoded http(s) URL ("" when the article has none, or
    when its image is some other kind of URL: a `javascript:` or `data:` image never reaches a reader)."""
    if not article.image:
        return ""
    url = urljoin(article.url, quote(article.image.strip(), safe=_URL_SAFE))
    return url if urlsplit(url).scheme in ("http", "https") else ""


def article_id_prefix(article: Article) -> str:
    return "a" + hashlib.sha1(article.entry_id.encode("utf-8"), usedforsecurity=False).hexdigest()[:8] + "-"


def article_html(article: Article, with_image: bool = True) -> str:
    """The article's full, safe HTML, with its featured image on top."""
    if article.body is None:
        raise ValueError(f"{article.source}: body not loaded (see content.load_bodies)")
    body = sanitize(markdown_to_html(article.body, article.markup), article.url, article_id_prefix(article))
    image = image_url(article) if with_image else ""
    if image:
        alt = _escape_attribute(clean_xml_text(article.title))
        body = f'<p><img src="{_escape_attribute(image)}" alt="{alt}" /></p>\n' + body
    return body


def _escape_attribute(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


class _TextExtractor(HTMLParser):
    def __init__(self, skip: set[str] | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._skipped = skip or {"sup", "script", "style"}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._skipped:
            self._skip += 1
        elif tag in ("p", "br", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "tr"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._skipped and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_SPACE_BETWEEN_CJK = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


def _join_words(parts: list[str]) -> str:
    """Whitespace folded to single spaces, and none between two Chinese characters or punctuation marks
    (paragraphs joined with a space read as a typo in Chinese)."""
    return _SPACE_BETWEEN_CJK.sub("", " ".join("".join(parts).split()))


def summary_text(article: Article, rendered_html: str, limit: int = 160) -> str:
    """Plain-text summary: the front-matter one, else the first paragraphs of the article's rendered
    HTML (no headings, code, tables or footnote marks), cut by characters. A Hugo page's summary is
    Markdown (Hugo's authored summary), rendered here to its text."""
    if article.summary and article.markup == "goldmark":
        return clean_xml_text(one_line(html_text(markdown_to_html(article.summary, article.markup))))
    if article.summary:
        return clean_xml_text(one_line(article.summary))
    return clean_xml_text(truncate(_leading_text(rendered_html, enough=limit * 2), limit))


def _leading_text(html: str, enough: int) -> str:
    """Text of the first paragraphs of rendered HTML, read only as far as needed."""
    extractor = _TextExtractor(
        skip={"sup", "script", "style", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "figcaption"}
    )
    for start in range(0, len(html), 2048):
        extractor.feed(html[start : start + 2048])
        if sum(len(part) for part in extractor.parts) >= enough:
            break
    return _join_words(extractor.parts)


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, ending at a sentence end when one falls in the second half.

    Counted in characters, not words: Chinese has no spaces, so "the first N words" would be everything.
    """
    if len(text) <= limit:
        return text
    window = text[:limit]
    best = -1
    for index, char in enumerate(window):
        if char in _SENTENCE_END and (char != "." or index + 1 >= len(text) or text[index + 1] == " "):
            end = index + 1
            while end < len(window) and window[end] in _CLOSERS:
                end += 1
            best = end
    if best >= limit // 2:
        return window[:best].rstrip()
    cut = window[: limit - 1]
    if cut and cut[-1].isascii() and cut[-1].isalnum() and text[limit - 1].isascii():
        space = cut.rfind(" ")
        if space >= limit // 2:
            cut = cut[:space]
    return cut.rstrip(" ，,、;；:：") + "…"
