"""A digest as an email: Jinja renders, premailer inlines the CSS, then the MIME message is built. Pure.

`render_digest` runs once per distinct digest (the inliner is the slow part); the result still holds a
placeholder where each recipient's address goes, and `build_message` fills it in per recipient, after
inlining, so 10,000 subscribers cost one render. Nothing from content can reach a header line: every
header value has its CR/LF removed before it is set.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import hashlib
import logging
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.utils import format_datetime, parseaddr
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import cssutils
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)
from markupsafe import Markup
from premailer import Premailer

from .compose import (
    RECIPIENT_PLACEHOLDER,
    Digest,
    archive_index_url,
    archive_url,
    build_context,
    move_oldest_to_overflow,
    one_line,
    strings,
)
from .config import Config
from .errors import DigestError

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

# The project's own templates: beside src/ in a checkout; a copy inside the package for a wheel.
_PROJECT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
_PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"


def template_folders(config: Config) -> list[Path]:
    """Where templates are looked up, first match wins: the editors' `[digest] templates`, the
    `templates/` beside the config file, then the project's own (so an editor may override one file)."""
    folders: list[Path] = []
    custom = config.digest.templates
    if custom is not None and not custom.is_dir():
        raise DigestError(
            f"templates folder not found: {custom}",
            path=str(config.path),
            key="digest.templates",
            hint="point [digest] templates at a folder",
        )
    for folder in (custom, config.root / "templates", _PROJECT_TEMPLATES, _PACKAGE_TEMPLATES):
        if folder is not None and folder.is_dir() and folder.resolve() not in folders:
            folders.append(folder.resolve())
    return folders


_environments: dict[tuple[Path, ...], Environment] = {}


def environment(config: Config) -> Environment:
    """One Jinja environment per set of folders (it caches compiled templates and reloads changed ones).

    Autoescaping is on for everything but the plain-text templates, whose output is never HTML.
    """
    folders = tuple(template_folders(config))
    env = _environments.get(folders)
    if env is None:
        env = Environment(
            loader=ChoiceLoader([FileSystemLoader(folder) for folder in folders]),
            autoescape=select_autoescape(disabled_extensions=("txt", "txt.j2"), default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=True,
        )
        _environments[folders] = env
    return env


def stylesheet(env: Environment) -> Markup:
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
    env = environment(config)
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
            f"digest {digest.period}: HTML is {_kb(first_size)} encoded, over the budget of {_kb(budget)} "
            f"([digest] max_bytes); moved the {moved} oldest article(s) to the 'and {len(current.overflow)} "
            f"more' link"
        )
        if size > budget:
            message += f", still {_kb(size)}: the template alone is over the budget"
        log.warning(message)
        warnings.append(message)
    warnings.extend(f"relative link in the digest: {url}" for url in relative_links(html))
    if not web and not config.digest.unsubscribe_url:
        warnings.append("no unsubscribe link: set [digest] unsubscribe_url")
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
    env: Environment, digest: Digest, config: Config, web: bool, warnings: list[str]
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


def template_error(exc: Exception) -> DigestError:
    """A Jinja error as one line naming the template file and line.

    Syntax errors carry both; errors while rendering (an undefined name) don't, but Jinja rewrites the
    traceback so that the template's own frame names its file and line: take them from there.
    """
    name = getattr(exc, "filename", None) or getattr(exc, "name", None)
    line = getattr(exc, "lineno", None)
    if name is None:
        trace = exc.__traceback__
        while trace is not None:
            if trace.tb_frame.f_code.co_filename.endswith(".j2"):
                name, line = trace.tb_frame.f_code.co_filename, trace.tb_lineno
            trace = trace.tb_next
    message = getattr(exc, "message", None) or str(exc)
    return DigestError(
        f"template error: {message}", path=str(name or "template"), line=line, hint="see [digest] templates"
    )


def _fit(
    env: Environment, digest: Digest, config: Config, size: int, budget: int, warnings: list[str]
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
    """Bytes of the HTML part's body as `build_message` sends it: UTF-8 with CRLF line ends, in base64
    lines of 76 characters, each ending in CRLF."""
    lines = html.encode("utf-8").splitlines()
    raw = sum(len(line) for line in lines) + 2 * len(lines)
    encoded = 4 * math.ceil(raw / 3)
    return encoded + 2 * math.ceil(encoded / 76)


def _kb(size: int) -> str:
    return f"{size / 1000:.1f} KB"


def subject_line(config: Config, period: str) -> str:
    """`[digest] subject` with {site} and {period} filled; never more than one line."""
    subject = config.digest.subject.replace("{site}", config.site.title).replace("{period}", period)
    return one_line(subject)


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


# ---------------------------------------------------------------- the message


def fill_recipient(value: str, email: str) -> str:
    """The per-recipient placeholder replaced by the address, percent-encoded (safe in HTML and URLs)."""
    return value.replace(RECIPIENT_PLACEHOLDER, quote(email.strip(), safe=""))


def make_message_id(period: str, recipient: str, config: Config, salt: str = "") -> str:
    """Deterministic: a resumed run re-sends the same Message-ID, so clients collapse a duplicate.

    The address is hashed, so a Message-ID quoted in a reply does not give it away.
    """
    seed = "\0".join([config.site.base_url, period, recipient.strip().casefold(), salt])
    token = hashlib.sha256(seed.encode("utf-8")).hexdigest()[:24]
    return f"<{one_line(period).replace(' ', '')}.{token}@{config.site.domain}>"


def list_id(config: Config) -> str:
    """RFC 2919 `<label.domain>`: an ASCII label from the site title ("digest" when it has none)."""
    label = re.sub(r"[^a-z0-9]+", "-", config.site.title.casefold()).strip("-")
    label = "".join(c for c in label if c.isascii()) or "digest"
    return f"<{label}.{config.site.domain}>"


def build_message(
    rendered: RenderedDigest,
    config: Config,
    *,
    to: str,
    to_name: str = "",
    message_id: str,
    date: dt.datetime,
) -> bytes:
    """One recipient's message: RFC 5322 bytes with CRLF, text then HTML, ready for SMTP or a .eml file.

    The email package parses, encodes and folds every header, and refuses a CR/LF in one (each value is
    made one line first). The bodies are encoded here: the email package writes a body line by line in
    Python (~10 ms a message), while all that differs between two recipients is the last few kilobytes,
    where the per-recipient links are. test_message checks the bytes against the email package's own.
    """
    text, html, boundary = _prepared(rendered.text, rendered.html)
    address = quote(to.strip(), safe="").encode("ascii")
    head = [
        _fold_same("From", one_line(config.digest.sender)),
        _fold("To", str(Address(display_name=one_line(to_name), addr_spec=one_line(to)))),
        _fold_same("Subject", one_line(rendered.subject)),
        _fold_same("Date", format_datetime(date)),
        _fold("Message-ID", one_line(message_id)),
        _fold_same("List-Id", list_id(config)),
    ]
    unsubscribe = _list_unsubscribe(config, one_line(to))
    if unsubscribe:
        head.append(_fold("List-Unsubscribe", ", ".join(f"<{uri}>" for uri in unsubscribe)))
        if unsubscribe[0].startswith("https://"):
            # RFC 8058: a POST to the https URI unsubscribes with one click, no page to confirm.
            head.append(_fold_same("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    head.append(_fold_same("MIME-Version", "1.0"))
    head.append(_fold_same("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
    delimiter = f"--{boundary}".encode("ascii")
    return b"".join([
        *head, b"\r\n",
        delimiter, b"\r\n", text.fill(address), b"\r\n",
        delimiter, b"\r\n", html.fill(address), b"\r\n",
        delimiter, b"--\r\n",
    ])  # fmt: skip


def _fold(name: str, value: str) -> bytes:
    """One header as the email package writes it (RFC 2047 encoded, folded at 78, CRLF)."""
    return policy.SMTP.fold_binary(*policy.SMTP.header_store_parse(name, value))


# Headers that are the same for every recipient of a digest are folded once.
_fold_same = functools.lru_cache(maxsize=64)(_fold)
_PLACEHOLDER = RECIPIENT_PLACEHOLDER.encode("ascii")
_BASE64_LINE = 57  # input bytes per 76-character line of base64


@dataclass(frozen=True)
class _Part:
    """A MIME part prepared once per rendering: its base64 up to the first per-recipient placeholder is
    already encoded (cut at a whole line, so encoding the rest later gives the very same lines)."""

    head: bytes
    encoded: bytes
    rest: bytes  # CRLF-ended bytes still to encode, with the placeholders in them
    base64: bool

    def fill(self, address: bytes) -> bytes:
        rest = self.rest.replace(_PLACEHOLDER, address)
        return self.head + self.encoded + (_base64_lines(rest) if self.base64 else rest)


@functools.lru_cache(maxsize=16)
def _prepared(text: str, html: str) -> tuple[_Part, _Part, str]:
    # The boundary comes from the content, not from chance: the same digest to the same recipient is
    # the same bytes (a resumed run, a golden file). '_' is not in base64's alphabet: no body holds it.
    boundary = "=_digest_" + hashlib.sha256(f"{text}\0{html}".encode()).hexdigest()[:24]
    return _part("text/plain", text), _part("text/html", html, force_base64=True), boundary


def _part(content_type: str, content: str, force_base64: bool = False) -> _Part:
    """UTF-8 with CRLF line ends; 7bit when it is ASCII with short lines (even once the longest address
    is filled in), else base64: quoted-printable would make Chinese about 60% bigger than base64."""
    lines = content.encode("utf-8").splitlines()
    data = b"\r\n".join(lines) + b"\r\n"
    growth = 3 * 254 - len(_PLACEHOLDER)  # an address is at most 254 characters, each %XX at worst
    longest = max((len(line) + line.count(_PLACEHOLDER) * growth for line in lines), default=0)
    if not force_base64 and data.isascii() and longest <= MAX_LINE_BYTES:
        head = f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
        return _Part(head.encode("ascii"), b"", data, base64=False)
    first = data.find(_PLACEHOLDER)
    cut = (len(data) if first < 0 else first) // _BASE64_LINE * _BASE64_LINE
    head = f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    return _Part(head.encode("ascii"), _base64_lines(data[:cut]), data[cut:], base64=True)


def _base64_lines(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ending in CRLF (RFC 2045)."""
    encoded = binascii.b2a_base64(data, newline=False)
    if not encoded:
        return b""
    return b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


def _list_unsubscribe(config: Config, to: str) -> list[str]:
    uris = []
    url = config.digest.unsubscribe_url.replace("{email}", quote(to, safe=""))
    if url.startswith(("https://", "http://")):
        uris.append(one_line(url))
    sender = parseaddr(one_line(config.digest.sender))[1]
    if "@" in sender:
        uris.append(f"mailto:{sender}?subject=unsubscribe")
    return uris


# ---------------------------------------------------------------- the web archive


def write_archive(
    digest: Digest, config: Config, periods: Sequence[str] = (), rendered: RenderedDigest | None = None
) -> dict[str, bytes]:
    """{path relative to `[digest] archive_dir`: bytes}: this digest's web copy and the index of all.

    `periods` are the earlier digests' periods (from the state); the index lists them, newest first.
    Pass `rendered` when the web copy was already rendered with `render_digest(..., web=True)`.
    """
    web = rendered if rendered is not None else render_digest(digest, config, web=True)
    all_periods = sorted({digest.period, *periods}, reverse=True)
    for period in all_periods:
        if not _PERIOD.match(period):
            raise DigestError(f"not a digest period: {period!r}", hint='expected e.g. "2025-W26"')
    env = environment(config)
    context = {
        "site": {"title": config.site.title, "language": config.site.language, "url": config.site.base_url},
        "t": strings(config),
        "self_url": archive_index_url(config),
        "digests": [{"period": p, "url": archive_url(config, p), "name": f"{p}.html"} for p in all_periods],
    }
    try:
        context["stylesheet"] = stylesheet(env)
        index = env.get_template("archive_index.html.j2").render(context)
    except TemplateError as exc:
        raise template_error(exc) from None
    return {f"{digest.period}.html": web.html.encode("utf-8"), "index.html": index.encode("utf-8")}
