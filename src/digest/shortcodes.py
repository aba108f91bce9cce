"""Hugo shortcodes in a page's Markdown, turned into safe HTML before it is rendered. Pure.

Hugo's built-in shortcodes (`figure`, `ref`, `relref`, `youtube`, `vimeo`, `gist`, `highlight`,
`param`) become the equivalent HTML a feed reader or a mail client can show (no iframes or scripts: a
video or a gist is a link); any other shortcode is removed with its inner content kept, and named in
`Expanded.unknown`. The escaped form `{{</* x */>}}` (Hugo's way of writing a shortcode as text) is
kept as text with its `<` and `>` written as HTML entities, so that no `{{<` reaches a feed or an email.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

BUILT_IN = frozenset({"figure", "ref", "relref", "youtube", "vimeo", "gist", "highlight", "param"})

# {{< name args >}}, {{% name args %}}, {{< /name >}}, {{< name args />}}; {{</* ... */>}} is text.
_TAG = re.compile(
    r"\{\{(?P<open>[<%])(?P<escaped>/\*)?\s*(?P<close>/)?\s*(?P<name>[\w./-]+)(?P<args>.*?)"
    r"(?P<self>/)?\s*(?(escaped)\*/)[>%]\}\}",
    re.DOTALL,
)
_OPEN = re.compile(r"\{\{[<%]")
_CLOSE = re.compile(r"[>%]\}\}")
_MAX_DEPTH = 20
_ARG = re.compile(r'\s*(?:(?P<key>[\w-]+)=)?(?:"(?P<dq>(?:[^"\\]|\\.)*)"|`(?P<bq>[^`]*)`|(?P<bare>[^\s"`]+))')


@dataclass(frozen=True)
class Call:
    """One shortcode as written: its name, positional and named arguments, and inner text (or None)."""

    name: str
    positional: tuple[str, ...]
    named: Mapping[str, str]
    inner: str | None = None
    depth: int = 1  # how deep inside other shortcodes (1: at the top)

    def arg(self, key: str, position: int | None = None, default: str = "") -> str:
        if key in self.named:
            return self.named[key]
        if position is not None and position < len(self.positional):
            return self.positional[position]
        return default


@dataclass
class Expanded:
    """The text with every shortcode expanded, and what the caller should hear about."""

    text: str
    unknown: list[str] = field(default_factory=list)  # names of non-built-in shortcodes, first use order
    unresolved: list[str] = field(default_factory=list)  # ref/relref targets that name no page


Resolver = Callable[[str, str], str | None]  # (target, lang) -> permalink, or None


def parse_args(text: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """Hugo's shortcode arguments: `"quoted"`, `` `raw` ``, bare words, `key="value"`."""
    positional: list[str] = []
    named: dict[str, str] = {}
    for match in _ARG.finditer(text):
        if match.group("dq") is not None:
            value = match.group("dq").replace('\\"', '"').replace("\\\\", "\\")
        elif match.group("bq") is not None:
            value = match.group("bq")
        else:
            value = match.group("bare") or ""
        if match.group("key"):
            named[match.group("key")] = value
        else:
            positional.append(value)
    return tuple(positional), named


def has_shortcodes(text: str) -> bool:
    return "{{<" in text or "{{%" in text


def calls(text: str) -> list[Call]:
    """Every shortcode in `text` (top level, paired ones with their inner text), in order."""
    out: list[Call] = []

    def keep(call: Call) -> str:
        out.append(call)
        return ""

    _walk(text, keep)
    return out


def expand(
    text: str,
    resolve: Resolver,
    page_params: Mapping[str, Any],
    site_params: Mapping[str, Any],
    lang: str = "",
) -> Expanded:
    """`text` with every shortcode replaced by its HTML (built-in) or its inner content (any other)."""
    result = Expanded("")

    def render(call: Call) -> str:
        if call.name not in BUILT_IN:
            if call.name not in result.unknown:
                result.unknown.append(call.name)
            return "" if call.inner is None else _walk(call.inner, render, call.depth)
        if call.name in ("ref", "relref"):
            target = call.arg("path", 0)
            anchor = ""
            if "#" in target:
                target, _, anchor = target.partition("#")
            found = resolve(target, call.arg("lang", None, lang)) if target else ""
            if found is None:
                result.unresolved.append(target)
                found = ""
            return html.escape(found + ("#" + anchor if anchor else ""))
        if call.name == "param":
            return html.escape(_param(call.arg("name", 0), page_params, site_params))
        return _BUILDERS[call.name](call)

    result.text = _OPEN.sub("{{", _walk(text, render))
    return result


@dataclass(frozen=True)
class _Tag:
    start: int
    end: int
    match: re.Match[str]

    def group(self, name: str) -> str | None:
        return self.match.group(name)


def _tags(text: str) -> list[_Tag]:
    """Every well-formed shortcode tag, in one pass: each `{{<` or `{{%` is read up to the first `>}}`
    or `%}}` after it, unless another opener comes first (then it is no tag). Linear in the text."""
    openers = [m.start() for m in _OPEN.finditer(text)]
    closers = [m.end() for m in _CLOSE.finditer(text)]
    found: list[_Tag] = []
    after = 0  # the end of the last tag: an opener inside it is part of it
    c = 0
    for n, start in enumerate(openers):
        if start < after:
            continue
        while c < len(closers) and closers[c] - 3 < start + 3:
            c += 1
        if c == len(closers):
            break
        end = closers[c]
        if n + 1 < len(openers) and openers[n + 1] < end - 3 and not text.startswith("/*", start + 3):
            continue  # another opener before the closer: this one is not a tag
        match = _TAG.fullmatch(text, start, end)
        if match is not None:
            found.append(_Tag(start, end, match))
            after = end
    return found


def _walk(text: str, render: Callable[[Call], str], depth: int = 0) -> str:
    """Replace each top-level shortcode (pairing openers with their closers) by `render(call)`."""
    if not has_shortcodes(text):
        return text
    tags = _tags(text)
    closer_of = _pairs(tags)
    out: list[str] = []
    position = 0
    index = 0
    while index < len(tags):
        tag = tags[index]
        out.append(text[position : tag.start])
        position = tag.end
        index += 1
        if tag.group("escaped"):
            out.append(_as_text(tag.match.group(0)))
            continue
        if tag.group("close"):
            continue  # a closer without its opener: dropped
        positional, named = parse_args(tag.group("args") or "")
        name = tag.group("name") or ""
        inner = None
        closer = closer_of.get(index - 1)
        if closer is not None:
            inner = text[tag.end : tags[closer].start]
            position = tags[closer].end
            index = closer + 1
        if inner is not None and tag.group("open") == "%" and name not in BUILT_IN:
            inner = inner.strip("\n")
        if depth >= _MAX_DEPTH:  # shortcodes nested deeper than anyone writes: their text only
            out.append(_text_only(inner or ""))
            continue
        out.append(render(Call(name, positional, named, inner, depth + 1)))
    out.append(text[position:])
    return "".join(out)


def _text_only(text: str) -> str:
    """The text with every shortcode tag cut out."""
    out, position = [], 0
    for tag in _tags(text):
        out.append(text[position : tag.start])
        position = tag.end
    out.append(text[position:])
    return _OPEN.sub("{{", "".join(out))


def _pairs(tags: list[_Tag]) -> dict[int, int]:
    """Opener index -> its closer's index: each closer closes the latest open shortcode of its name."""
    open_by_name: dict[str, list[int]] = {}
    pairs: dict[int, int] = {}
    for index, tag in enumerate(tags):
        if tag.group("escaped") or tag.group("self"):
            continue
        name = tag.group("name") or ""
        if not tag.group("close"):
            open_by_name.setdefault(name, []).append(index)
        elif open_by_name.get(name):
            pairs[open_by_name[name].pop()] = index
    return pairs


def _as_text(written: str) -> str:
    """An escaped shortcode as the text Hugo shows (`{{< x >}}`), `<`/`>` as entities."""
    inner = written.replace("{{</*", "{{<", 1).replace("*/>}}", ">}}").replace("{{%/*", "{{%")
    inner = inner.replace("*/%}}", "%}}")
    return inner.replace("<", "&lt;").replace(">", "&gt;")


def _param(name: str, page: Mapping[str, Any], site: Mapping[str, Any]) -> str:
    for source in (page, page.get("params") if isinstance(page.get("params"), Mapping) else {}, site):
        value: Any = source
        for part in name.lower().split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None and not isinstance(value, Mapping | list):
            if isinstance(value, bool):
                return "true" if value else "false"
            return str(value)
    return ""


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _figure(call: Call) -> str:
    src, link = call.arg("src"), call.arg("link")
    image = f'<img src="{_attr(src)}"'
    alt = call.arg("alt") or call.arg("caption")
    if alt:
        image += f' alt="{_attr(alt)}"'
    for key in ("width", "height"):
        if call.arg(key):
            image += f' {key}="{_attr(call.arg(key))}"'
    image += " />"
    if link:
        image = f'<a href="{_attr(link)}">{image}</a>'
    caption = ""
    title, text, attr = call.arg("title"), call.arg("caption"), call.arg("attr")
    if title or text or attr:
        caption = "<figcaption>"
        if title:
            caption += f"<h4>{html.escape(title)}</h4>"
        if text or attr:
            caption += "<p>" + html.escape(text)
            if attr:
                attr_text = html.escape(attr)
                if call.arg("attrlink"):
                    attr_text = f'<a href="{_attr(call.arg("attrlink"))}">{attr_text}</a>'
                caption += (" " if text else "") + attr_text
            caption += "</p>"
        caption += "</figcaption>"
    return f"\n\n<figure>{image}{caption}</figure>\n\n"


def _youtube(call: Call) -> str:
    video = quote(call.arg("id", 0), safe="")
    title = call.arg("title") or "YouTube video"
    return (
        f'<a href="https://www.youtube.com/watch?v={video}">'
        f'<img src="https://i.ytimg.com/vi/{video}/hqdefault.jpg" alt="{_attr(title)}" /></a>'
    )


def _vimeo(call: Call) -> str:
    video = quote(call.arg("id", 0), safe="")
    title = call.arg("title") or "Vimeo video"
    return f'<a href="https://vimeo.com/{video}">{html.escape(title)}</a>'


def _gist(call: Call) -> str:
    user, gist = quote(call.arg("user", 0), safe=""), quote(call.arg("id", 1), safe="")
    file = call.arg("file", 2)
    url = f"https://gist.github.com/{user}/{gist}"
    label = f"gist {call.arg('user', 0)}/{call.arg('id', 1)}" + (f" ({file})" if file else "")
    return f'<a href="{_attr(url)}">{html.escape(label)}</a>'


def _highlight(call: Call) -> str:
    code = (call.inner or "").strip("\n")
    lang = re.sub(r"[^\w+#.-]", "", call.arg("lang", 0))
    css = f' class="language-{lang}"' if lang else ""
    return f"\n\n<pre><code{css}>{html.escape(code)}</code></pre>\n\n"


_BUILDERS: dict[str, Callable[[Call], str]] = {
    "figure": _figure,
    "youtube": _youtube,
    "vimeo": _vimeo,
    "gist": _gist,
    "highlight": _highlight,
}

__all__ = ["BUILT_IN", "Call", "Expanded", "calls", "expand", "has_shortcodes", "parse_args"]
