"""The digest rendered: Jinja fills the templates, then premailer inlines the CSS, once. Pure.

`render_digest` runs once per distinct digest (the inliner is the slow part) and keeps the size budget:
the HTML part is measured as it travels (base64), and the oldest articles move to the "and N more" link
when it would not fit. The result still holds a placeholder where each recipient's address goes;
`message.build_message` fills it in per recipient, after inlining, so 10,000 subscribers cost one render.
The web copy and the archive index come from the same templates (`archive_files`).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

import cssutils
from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from premailer import Premailer

from .config import Config, DigestConfig
from .errors import DigestError
from .i18n import localisation
from .jinja import sandboxed_environment, template_error
from .present import archive_index_context, build_context, unsubscribe_link
from .selection import Digest, move_oldest_to_overflow
from .text import one_line

log = logging.getLogger(__name__)

# RFC 5322: a line is at most 998 octets, CRLF excluded.
MAX_LINE_BYTES = 998
_PERIOD = re.compile(r"^\d{4}-W\d{2}$")


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: str  # CSS inlined, with per-recipient placeholders still in it
    text: str
    encoded_html_bytes: int  # the HTML part as it travels (base64, CRLF), placeholders unfilled
    warnings: tuple[str, ...]
    digest: Digest | None = None  # the digest as rendered: after the size budget moved items to overflow
    budget: int = 0  # `[digest] max_bytes` that applied (0 for the web copy, which has no budget)


# ---------------------------------------------------------------- templates


def stylesheet(env: SandboxedEnvironment) -> Markup:
    """digest.css as it is on disk: read through the loader (never rendered, CSS braces are not Jinja)."""
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, "digest.css")
    return Markup(source)  # noqa: S704 - the editors' own stylesheet, not content


# ---------------------------------------------------------------- rendering


def render_digest(digest: Digest, config: Config, *, web: bool = False) -> RenderedDigest:
    """The digest's subject, inlined HTML and text; the email copy fits `[digest] max_bytes` encoded.

    When it does not fit, the oldest articles move to the "and N more" link to the web copy, one
    re-render per step (only over-budget digests pay for it). The web copy (`web=True`) keeps everything
    and has no per-subscriber link.
    """
    env = sandboxed_environment(config)
    warnings: list[str] = []
    html, text = _render(env, digest, config, web, warnings)
    size = encoded_size(html)
    budget = 0 if web else config.digest.max_bytes
    current = digest
    if budget and size > budget:
        first_size = size
        current, html, text, size = _fit(env, digest, config, size, budget, warnings)
        moved = len(current.overflow) - len(digest.overflow)
        message = (
            f"digest {digest.period}: HTML is {kb(first_size)} encoded, over the budget of {kb(budget)} "
            f"([digest] max_bytes); moved the {moved} oldest article(s) to the 'and {len(current.overflow)} "
            f"more' link"
        )
        if size > budget:
            message += f", still {kb(size)}: the template alone is over the budget"
        log.warning(message)
        warnings.append(message)
    warnings.extend(f"relative link in the digest: {url}" for url in relative_links(html))
    if not web and not unsubscribe_link(config):
        warnings.append("no unsubscribe link: set [server] public_url or [digest] unsubscribe_url")
    return RenderedDigest(
        subject=subject_line(config, digest.period),
        html=html,
        text=text,
        encoded_html_bytes=size,
        warnings=tuple(dict.fromkeys(warnings)),
        digest=current,
        budget=budget,
    )


def _render(
    env: SandboxedEnvironment, digest: Digest, config: Config, web: bool, warnings: list[str]
) -> tuple[str, str]:
    context = build_context(digest, config, web=web, subject=subject_line(config, digest.period))
    try:
        context["stylesheet"] = stylesheet(env)
        html = env.get_template("digest.html.j2").render(context)
        text = env.get_template("digest.txt.j2").render(context)
    except TemplateError as exc:
        raise template_error(exc) from None
    inlined, css_messages = inline_css(html)
    warnings.extend(f"CSS: {m}" for m in css_messages)
    return inlined, plain_text(text)


def _fit(
    env: SandboxedEnvironment, digest: Digest, config: Config, size: int, budget: int, warnings: list[str]
) -> tuple[Digest, str, str, int]:
    """Move the oldest items to the overflow until the encoded HTML fits the budget."""
    total = len(digest.items)
    # What the page costs with no article at all tells how much each article costs on average.
    empty = move_oldest_to_overflow(digest, total)
    html, text = _render(env, empty, config, False, [])
    chrome = encoded_size(html)
    per_item = max(1.0, (size - chrome) / max(total, 1))
    moved = min(total, max(1, math.ceil((size - budget) / per_item)))
    while True:
        current = move_oldest_to_overflow(digest, moved)
        html, text = _render(env, current, config, False, warnings)
        size = encoded_size(html)
        if size <= budget or moved >= total:
            return current, html, text, size
        moved = min(total, moved + max(1, math.ceil((size - budget) / per_item)))


def encoded_size(html: str) -> int:
    """Bytes of the HTML part's body as `message.build_message` sends it: UTF-8 with CRLF line ends, in
    base64 lines of 76 characters, each ending in CRLF (test_message keeps the two equal)."""
    lines = html.encode("utf-8").splitlines()
    raw = sum(len(line) for line in lines) + 2 * len(lines)
    encoded = 4 * math.ceil(raw / 3)
    return encoded + 2 * math.ceil(encoded / 76)


def kb(size: int) -> str:
    """A byte count as editors read it: 91.2 KB (decimal kilobytes, as Gmail's clipping limit is quoted)."""
    return f"{size / 1000:.1f} KB"


def subject_line(config: Config, period: str) -> str:
    """`[digest] subject` with {site} and {period} filled; never more than one line. Left at its
    default, the subject is in the digest's language (`{site} 周报 {period}`, `{site} weekly {period}`)."""
    template = config.digest.subject
    if template == DigestConfig.subject:
        template = localisation(config.site.language).pgettext(
            "the subject when [digest] subject is not set", "{site} weekly {period}"
        )
    return one_line(template.replace("{site}", config.site.title).replace("{period}", period))


def plain_text(text: str) -> str:
    """Tidy the text part: no runs of blank lines, no trailing spaces, no line over 998 octets."""
    text = re.sub(r"[ \t]+\n", "\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
    return "\n".join(piece for line in text.split("\n") for piece in _split_long(line))


def _split_long(line: str) -> list[str]:
    """A line cut into pieces of at most 998 UTF-8 bytes, at a space when there is one."""
    pieces: list[str] = []
    while len(line.encode("utf-8")) > MAX_LINE_BYTES:
        cut = len(line.encode("utf-8")[:MAX_LINE_BYTES].decode("utf-8", "ignore"))
        space = line.rfind(" ", 0, cut)
        cut = space if space > cut // 2 else cut
        pieces.append(line[:cut].rstrip())
        line = line[cut:].lstrip()
    pieces.append(line)
    return pieces


# ---------------------------------------------------------------- CSS inlining


class _Collect(logging.Handler):
    """Keeps cssutils' messages for the render's warnings (they go to our log, never to stderr)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_css_log = _Collect()
# cssutils logs to its own logger with a handler on stderr; point it at ours instead, once.
cssutils.log.setLog(logging.getLogger("digest.cssutils"))
# cssutils' log and premailer's parse cache are process-wide: one inlining at a time.
_inline_lock = threading.Lock()


def inline_css(html: str) -> tuple[str, list[str]]:
    """Move the stylesheet into `style=` attributes, the way email clients need it.

    keep_style_tags keeps the `<style>` block (with the `@media` rules) in the head; strip_important=False
    keeps the `!important` those rules need to beat inline styles; width/height attributes come from the
    template, not from CSS (premailer would turn `width:100%` into `width="100%"`, which Outlook stretches).
    """
    with _inline_lock:
        _css_log.messages.clear()
        inliner = Premailer(
            html,
            keep_style_tags=True,
            strip_important=False,
            preserve_internal_links=True,
            allow_network=False,
            allow_loading_external_files=False,
            disable_validation=True,  # validation only flags mso-* and vendor properties we need
            disable_basic_attributes=["width", "height"],
            align_floating_images=False,  # no floats here, and it re-parses every image's style (slow)
            cssutils_logging_handler=_css_log,
            cssutils_logging_level=logging.WARNING,
        )
        result = inliner.transform(pretty_print=False)
        messages = list(_css_log.messages)
    return str(result), messages


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.urls.append(value.strip())


def links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.urls


def relative_links(html: str) -> list[str]:
    """href/src values an email client cannot resolve: anything but absolute http(s), mailto, `#`."""
    found = []
    for url in links(html):
        if url.startswith("#") or re.match(r"(?i)(https?://[^/]|mailto:|tel:|cid:)", url):
            continue
        found.append(url)
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- the web archive


def archive_files(
    digest: Digest, config: Config, periods: Sequence[str] = (), rendered: RenderedDigest | None = None
) -> dict[str, bytes]:
    """{path relative to `[digest] archive_dir`: bytes}: this digest's web copy and the index of all,
    for the caller to write.

    `periods` are the earlier digests' periods (from the state); the index lists them, newest first.
    Pass `rendered` when the web copy was already rendered with `render_digest(..., web=True)`.
    """
    web = rendered if rendered is not None else render_digest(digest, config, web=True)
    all_periods = sorted({digest.period, *periods}, reverse=True)
    for period in all_periods:
        if not _PERIOD.match(period):
            raise DigestError(f"not a digest period: {period!r}", hint='expected e.g. "2025-W26"')
    env = sandboxed_environment(config)
    context = archive_index_context(config, all_periods)
    try:
        context["stylesheet"] = stylesheet(env)
        index = env.get_template("archive_index.html.j2").render(context)
    except TemplateError as exc:
        raise template_error(exc) from None
    return {f"{digest.period}.html": web.html.encode("utf-8"), "index.html": index.encode("utf-8")}
