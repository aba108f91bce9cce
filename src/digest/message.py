"""A rendered digest as one recipient's email: the MIME message and its headers. Pure.

Rendering (Jinja, premailer, the size budget, the web archive) is `templating.py`'s. `build_message` fills
each recipient's address into the rendered HTML and text and writes the message bytes.

Headers: the ones that may carry content (From, To, Subject) go through the email package, which
encodes (RFC 2047) and folds them. The ones that are ASCII by construction (Message-ID, List-Id,
List-Unsubscribe, List-Unsubscribe-Post) are written as they are: the email package would turn a long
List-Unsubscribe into encoded words, which mail providers do not decode (RFC 2369), and RFC 8058's
one-click unsubscribe would break. Nothing from content can reach a header line: a value with a CR or LF
is made one line first, or refused.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import hashlib
import logging
import re
import string
from dataclasses import dataclass
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import format_datetime, parseaddr
from urllib.parse import quote, urlsplit, urlunsplit

from .config import Config
from .errors import DigestError
from .present import (
    PREFERENCES_PLACEHOLDER,
    RECIPIENT_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    unsubscribe_link,
)
from .templating import MAX_LINE_BYTES, RenderedDigest
from .text import one_line

log = logging.getLogger(__name__)

# RFC 5322 §2.1.1: a line SHOULD be at most 78 characters (a structured header is folded past that).
_FOLD_AT = 78
# A header item written as it is: printable ASCII, no CR/LF, no space at either end.
_HEADER_ITEM = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
# Kept as they are when a URI is made ASCII: RFC 3986's reserved characters, and '%' (already encoded).
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~"
# Kept as they are in a mailto: address (RFC 6068); ',' would start a second address, '%' is encoded.
_MAILTO_SAFE = "@!$'*+"


# ---------------------------------------------------------------- per-recipient values


# (unsubscribe, preferences): the recipient's signed tokens for the subscriber service's links.
LinkTokens = tuple[str, str]
NO_TOKENS: LinkTokens = ("", "")
# Token characters (itsdangerous' URL-safe alphabet): safe as they are in HTML, text and URLs.
_TOKEN = re.compile(r"[A-Za-z0-9_.-]*")


def recipient_values(email: str, tokens: LinkTokens = NO_TOKENS) -> dict[str, str]:
    """Each per-recipient placeholder and what replaces it: the address percent-encoded, the tokens."""
    for token in tokens:
        if not _TOKEN.fullmatch(token):
            raise DigestError(f"not a link token: {token!r}")
    return {
        RECIPIENT_PLACEHOLDER: quote(email.strip(), safe=""),
        UNSUBSCRIBE_PLACEHOLDER: tokens[0],
        PREFERENCES_PLACEHOLDER: tokens[1],
    }


def fill_recipient(value: str, email: str, tokens: LinkTokens = NO_TOKENS) -> str:
    """The per-recipient placeholders replaced (safe in HTML and URLs)."""
    for placeholder, filled in recipient_values(email, tokens).items():
        value = value.replace(placeholder, filled)
    return value


def ascii_domain(domain: str) -> str:
    """The domain as it may appear in a header: IDNA (`例子.中国` → `xn--fsqu00a.xn--fiqs8s`)."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "digest.invalid"  # RFC 2606: a name that can never be someone's real domain


def make_message_id(period: str, recipient: str, config: Config, salt: str = "") -> str:
    """Deterministic: a resumed run re-sends the same Message-ID, so clients collapse a duplicate.

    The address is hashed, so a Message-ID quoted in a reply does not give it away.
    """
    seed = "\0".join([config.site.base_url, period, recipient.strip().casefold(), salt])
    token = hashlib.sha256(seed.encode("utf-8")).hexdigest()[:24]
    label = re.sub(r"[^A-Za-z0-9-]+", "", period) or "digest"
    return f"<{label}.{token}@{ascii_domain(config.site.domain)}>"


def list_id(config: Config) -> str:
    """RFC 2919 `<label.domain>`: an ASCII label from the site title ("digest" when it has none)."""
    return _list_id(config.site.title, config.site.domain)


def _list_id(title: str, domain: str) -> str:
    label = re.sub(r"[^a-z0-9]+", "-", title.casefold()).strip("-")
    label = "".join(c for c in label if c.isascii()).strip("-") or "digest"
    return f"<{label}.{ascii_domain(domain)}>"


def _idna_host(url: str) -> str:
    """The URL with a non-ASCII host in its IDNA (punycode) form, as mail clients resolve it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host.isascii():
        return url
    netloc = host.encode("idna").decode("ascii") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _list_unsubscribe(config: Config, values: dict[str, str]) -> list[str]:
    """The https URI with the recipient's values (`recipient_values`) filled in, then a mailto: to the
    sender; both plain ASCII."""
    uris = []
    for uri in _unsubscribe_templates(unsubscribe_link(config), config.digest.sender):
        for placeholder, value in values.items():
            uri = uri.replace(placeholder, value)
        uris.append(uri)
    room = MAX_LINE_BYTES - len("List-Unsubscribe: <>,")
    too_long = [uri for uri in uris if len(uri) > room]
    if too_long:
        log.warning(
            "List-Unsubscribe: left out a URI of %d characters (a header line holds at most %d octets); "
            "shorten [digest] unsubscribe_url or [server] public_url",
            len(too_long[0]),
            MAX_LINE_BYTES,
        )
    return [uri for uri in uris if len(uri) <= room]


@functools.lru_cache(maxsize=16)
def _unsubscribe_templates(link: str, sender: str) -> tuple[str, ...]:
    """The List-Unsubscribe URIs made ASCII once per digest, placeholders still in them: a placeholder
    is unreserved ASCII, and what fills it (a percent-encoded address, a token) is too, so quoting and
    then filling gives what filling and then quoting would."""
    uris = []
    if link.startswith(("https://", "http://")):
        uris.append(quote(_idna_host(one_line(link)), safe=_URI_SAFE))
    address = parseaddr(one_line(sender))[1]
    if "@" in address:
        uris.append(f"mailto:{quote(address, safe=_MAILTO_SAFE)}?subject=unsubscribe")
    return tuple(uris)


# ---------------------------------------------------------------- headers


def structured_header(name: str, *items: str) -> bytes:
    """`Name: a, b` with CRLF, written as it is (never RFC 2047 encoded), for values that are ASCII by
    construction; folded after each comma, and only there, when the line would pass 78 characters.

    Refuses (DigestError) an item that is not printable ASCII (a CR/LF can never start a header) or a
    line over RFC 5322's 998 octets.
    """
    for item in items:
        if not _HEADER_ITEM.fullmatch(item):
            raise DigestError(f"{name}: not a printable ASCII header value: {item!r}")
    line = f"{name}: {', '.join(items)}"
    if len(line) > _FOLD_AT:
        line = f"{name}: " + ",\r\n ".join(items)
    longest = max(len(part) for part in line.split("\r\n"))
    if longest > MAX_LINE_BYTES:
        raise DigestError(f"{name}: a line of {longest} octets, over {MAX_LINE_BYTES}")
    return line.encode("ascii") + b"\r\n"


def _fold(name: str, value: str) -> bytes:
    """One header as the email package writes it (RFC 2047 encoded where needed, folded at 78, CRLF)."""
    return policy.SMTP.fold_binary(*policy.SMTP.header_store_parse(name, value))


def recipient_header(to: str, name: str = "") -> bytes:
    """`To:` for one recipient, as the email package writes it (RFC 2047 encoded, folded at 78); an
    address that is not one addr-spec (a CR/LF, a space, a second address) is refused rather than
    written. Once per subscriber: the courier keeps it for each digest of the run."""
    address, name = to.strip(), one_line(name)
    quick = _quick_to_header(address, name)
    if quick is not None:
        return quick
    if not address or any(c.isspace() or not c.isprintable() for c in address):
        raise DigestError(f"not a recipient address: {to!r}")
    try:
        return _fold("To", str(Address(display_name=name, addr_spec=address)))
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise DigestError(f"not a recipient address: {to!r} ({exc})") from None


# A dot-atom address (RFC 5322 §3.4.1), ASCII: the email package writes it as it is.
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_PLAIN_ADDRESS = re.compile(rf"{_DOT_ATOM}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
# A name of atext words (no '=' or '?': they could read as an encoded word), one space between them.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*")
# One word that needs encoding: no space, no ASCII but letters and digits (a Chinese name, "Zoë").
_ONE_WORD = re.compile(r"(?:[A-Za-z0-9]|[^\x00-\x7f])+")
# Bytes RFC 2047's Q encoding leaves as they are in a phrase (as the email package's encoder does).
_Q_PLAIN = frozenset(f"-!*+/{string.ascii_letters}{string.digits}".encode("ascii"))


def _quick_to_header(address: str, name: str) -> bytes | None:
    """What the email package writes for the common names (none, plain ASCII words, one word to
    encode) and plain addresses on one line, without its parser: 50 times faster. None for anything
    else (folding, quoting), which the email package then writes; test_message checks they agree."""
    if not _PLAIN_ADDRESS.fullmatch(address):
        return None
    if not name:
        line = f"To: {address}"
        return (line + "\r\n").encode("ascii") if len(line) <= _FOLD_AT else None
    if _PLAIN_NAME.fullmatch(name):
        phrase = name
    elif _ONE_WORD.fullmatch(name) and name.isprintable():
        try:
            phrase = _encoded_word(name.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate
            return None
    else:
        return None
    line = f"To: {phrase} <{address}>"
    return (line + "\r\n").encode("ascii") if len(line) <= _FOLD_AT else None  # else it is folded


def _encoded_word(data: bytes) -> str:
    """RFC 2047's encoded word for UTF-8 `data`, Q or B as the email package picks (Q unless B is
    shorter by 5 or more)."""
    q = "".join(chr(b) if b in _Q_PLAIN else "_" if b == 0x20 else f"={b:02X}" for b in data)
    b = binascii.b2a_base64(data, newline=False).decode("ascii")
    return f"=?utf-8?q?{q}?=" if len(q) - len(b) < 5 else f"=?utf-8?b?{b}?="


# ---------------------------------------------------------------- the message


def build_message(
    rendered: RenderedDigest,
    config: Config,
    *,
    to: str,
    to_name: str = "",
    message_id: str,
    date: dt.datetime,
    tokens: LinkTokens = NO_TOKENS,
    to_header: bytes | None = None,
) -> bytes:
    """One recipient's message: RFC 5322 bytes with CRLF, text then HTML, ready for SMTP or a .eml file.

    The bodies are encoded here: the email package writes a body line by line in Python (~10 ms a
    message), while all that differs between two recipients is the last few kilobytes, where the
    per-recipient links are. test_message checks the bytes against the email package's own.
    """
    to_line = to_header if to_header is not None else recipient_header(to, to_name)
    message_id = one_line(message_id)
    if not _MESSAGE_ID.fullmatch(message_id):
        raise DigestError(f"not a Message-ID: {message_id!r}", hint="expected <id@domain>")
    text, html, boundary = _prepared(rendered.text, rendered.html)
    filled = recipient_values(to, tokens)
    values = [(k.encode("ascii"), v.encode("ascii")) for k, v in filled.items()]
    sender, subject_and_date, list_line, mime = _digest_head(
        config.digest.sender, rendered.subject, date, config.site.title, config.site.domain, boundary
    )
    head = [sender, to_line, subject_and_date, structured_header("Message-ID", message_id), list_line]
    unsubscribe = _list_unsubscribe(config, filled)
    if unsubscribe:
        head.append(structured_header("List-Unsubscribe", *(f"<{uri}>" for uri in unsubscribe)))
        if unsubscribe[0].startswith("https://"):
            # RFC 8058: a POST to the https URI unsubscribes with one click, no page to confirm.
            head.append(structured_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    head.append(mime)
    delimiter = f"--{boundary}".encode("ascii")
    return b"".join([
        *head, b"\r\n",
        delimiter, b"\r\n", text.fill(values), b"\r\n",
        delimiter, b"\r\n", html.fill(values), b"\r\n",
        delimiter, b"--\r\n",
    ])  # fmt: skip


@functools.lru_cache(maxsize=16)
def _digest_head(
    sender: str, subject: str, date: dt.datetime, title: str, domain: str, boundary: str
) -> tuple[bytes, bytes, bytes, bytes]:
    """(From, Subject and Date, List-Id, MIME-Version and Content-Type): the same for every recipient
    of a digest, so folded once."""
    return (
        _fold("From", one_line(sender)),
        _fold("Subject", one_line(subject)) + _fold("Date", format_datetime(date)),
        structured_header("List-Id", _list_id(title, domain)),
        _fold("MIME-Version", "1.0") + _fold("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    )


_PLACEHOLDERS = tuple(
    p.encode("ascii") for p in (RECIPIENT_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER, PREFERENCES_PLACEHOLDER)
)
# What a placeholder may grow to: an address of 254 characters, each %XX at worst; a token for one
# (base64 of its JSON payload and a signature) is shorter than that.
_GROWTH = 3 * 254
_BASE64_LINE = 57  # input bytes per 76-character line of base64


@dataclass(frozen=True)
class _Part:
    """A MIME part prepared once per rendering: its base64 up to the first per-recipient placeholder is
    already encoded (cut at a whole line, so encoding the rest later gives the very same lines)."""

    head: bytes
    encoded: bytes
    rest: bytes  # CRLF-ended bytes still to encode, with the placeholders in them
    base64: bool

    def fill(self, values: list[tuple[bytes, bytes]]) -> bytes:
        rest = self.rest
        for placeholder, value in values:
            rest = rest.replace(placeholder, value)
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
    longest = max(
        (len(line) + sum(line.count(p) * (_GROWTH - len(p)) for p in _PLACEHOLDERS) for line in lines),
        default=0,
    )
    if not force_base64 and data.isascii() and longest <= MAX_LINE_BYTES:
        head = f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
        return _Part(head.encode("ascii"), b"", data, base64=False)
    found = [i for i in (data.find(p) for p in _PLACEHOLDERS) if i >= 0]
    cut = min(found, default=len(data)) // _BASE64_LINE * _BASE64_LINE
    head = f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    return _Part(head.encode("ascii"), _base64_lines(data[:cut]), data[cut:], base64=True)


def _base64_lines(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ending in CRLF (RFC 2045)."""
    encoded = binascii.b2a_base64(data, newline=False)
    if not encoded:
        return b""
    return b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"
