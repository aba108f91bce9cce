"""Who gets the digest: `[subscribers] file` (CSV) and/or `[subscribers] list`, validated.

The CSV has a header row `email,name,topics,language` (`name`, `topics` and `language` optional);
`topics` is separated by `;` and holds topic names as the articles spell them (matched by
`content.topic_key`, so case and spacing don't matter). An empty topic set means "every topic".
`language` is a language tag (`en`, `zh-CN`, `fr`): which of the site's languages the subscriber reads
(`feed_sets.language_of`); empty means the site's default language. A row with an invalid or repeated
address is reported as a `Problem` and skipped; the others still get the digest. A file that does not
parse row for row (a stray `"` opens a field that swallows the rows after it) is an error: nobody is
sent anything rather than the rows after it silently.

A name is made safe as it is read: RFC 2047 encoded words are decoded (a name such as
`=?utf-8?q?Joe=0D=0ABcc:_x@y.z?=` is `Joe Bcc: x@y.z`, never a second header), control characters are
dropped and whitespace (line breaks included) becomes single spaces.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path
from typing import Any

from .config import Config, decode_words
from .content import read_at_most, topic_key
from .errors import ConfigError, DigestError, Problem
from .text import one_line

COLUMNS = ("email", "name", "topics", "language")
MAX_FILE_BYTES = 64_000_000  # about a million subscribers; more is not a file digest should hold in memory
MAX_ADDRESS = 254  # RFC 5321: a path is at most 256 octets, brackets included

# An address smtplib can hand to any server without SMTPUTF8: a dot-atom local part and a host name.
# Deliberately narrower than RFC 5322 (no quoted local parts, no IP literals): those are typos far
# more often than real subscribers.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})+$")
# A language tag as BCP 47 spells one (subtags of letters and digits, the first letters only).
_LANGUAGE = re.compile(r"^[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True)
class Subscriber:
    email: str
    name: str = ""
    topics: frozenset[str] = frozenset()  # topic keys; empty = every topic
    language: str = ""  # a language tag as given; "" = the site's default language


@dataclass
class SubscriberList:
    subscribers: list[Subscriber] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def by_edition(
        self, language_of: Callable[[str], str]
    ) -> dict[tuple[str, frozenset[str]], list[Subscriber]]:
        """Subscribers grouped by (site language, topic set), in first-seen order: the digest is
        rendered once per group. `language_of` maps a subscriber's tag to a site language's key."""
        groups: dict[tuple[str, frozenset[str]], list[Subscriber]] = {}
        for subscriber in self.subscribers:
            groups.setdefault((language_of(subscriber.language), subscriber.topics), []).append(subscriber)
        return groups


def language_problem(value: str) -> str | None:
    """Why `value` is not a language tag, or None ("" is: the site's default language)."""
    if value and not _LANGUAGE.match(value):
        return f"{value!r} is not a language tag (e.g. en, zh-CN, fr)"
    return None


def address_problem(email: str) -> str | None:
    """Why `email` can't be used as a recipient, or None when it can."""
    if not email:
        return "no email address"
    if not email.isascii():
        return f"{email!r} is not a valid email address (non-ASCII addresses are not supported)"
    if len(email) > MAX_ADDRESS or not _ADDRESS.match(email):
        return f"{email!r} is not a valid email address"
    return None


def split_topics(value: str | Sequence[str] | None) -> frozenset[str]:
    """`"AI; 投融资"` or `["AI", "投融资"]` → topic keys."""
    if value is None:
        return frozenset()
    names = value.split(";") if isinstance(value, str) else list(value)
    return frozenset(topic_key(name) for name in names if topic_key(name))


def load_subscribers(config: Config) -> SubscriberList:
    """The subscribers from `[subscribers] file` then `[subscribers] list`; the first of two equal
    addresses (compared case-insensitively) wins and the other is reported."""
    result = SubscriberList()
    seen: dict[str, str] = {}
    section = config.subscribers
    if section.file is None and not section.list:
        # Without this a forgotten setting would mark a whole digest sent to nobody.
        raise ConfigError(
            "no subscribers are configured",
            path=str(config.path),
            key="subscribers.file",
            hint="set [subscribers] file or list",
        )
    if section.file is not None:
        shown = _display(section.file)
        _add(result, seen, parse_csv(_read(section.file, shown), shown))
    if section.list:
        _add(result, seen, _from_config(section.list, str(config.path)))
    return result


def _read(path: Path, shown: str) -> str:
    """The file's text; only a regular file (never a device or a pipe, which may never end) of at most
    `MAX_FILE_BYTES`."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise DigestError(
                "the subscribers file is not a regular file",
                path=shown,
                hint="point [subscribers] file at a CSV file",
            )
        if info.st_size > MAX_FILE_BYTES:
            raise DigestError(
                f"the subscribers file is {info.st_size} bytes, over the limit of {MAX_FILE_BYTES}",
                path=shown,
            )
        with path.open("rb") as handle:
            data = read_at_most(handle, MAX_FILE_BYTES)  # it may have grown since
        if len(data) > MAX_FILE_BYTES:
            raise DigestError(f"the subscribers file is over the limit of {MAX_FILE_BYTES} bytes", path=shown)
        return data.decode("utf-8-sig")  # Excel's CSV export starts with a BOM
    except FileNotFoundError:
        raise DigestError(
            "subscribers file not found", path=shown, hint="create it or fix [subscribers] file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DigestError(f"cannot read the subscribers file: {exc}", path=shown) from None


def require_subscribers(config: Config, result: SubscriberList) -> None:
    """Raise when not one subscriber is usable (a file with only its header, or every row skipped):
    a digest sent to nobody would still be recorded, and its articles never go out to anyone."""
    if result.subscribers:
        return
    section = config.subscribers
    if section.file is not None:
        where, key = _display(section.file), None
        source = "the subscribers file" + (" and [subscribers] list" if section.list else "")
    else:
        where, key = str(config.path), "subscribers.list"
        source = "[subscribers] list"
    hint: str | None
    if result.problems:
        first = result.problems[0]
        problems = len(result.problems)
        message = (
            f"no usable subscriber: every one in {source} was skipped "
            f"({problems} {'problem' if problems == 1 else 'problems'}); the first: "
            + (f"{first.path}:{first.line}" if first.line else first.path)
            + f": {first.message}"
        )
        hint = "`digest check` lists every problem"
    else:
        message = f"no subscriber: {source} lists nobody"
        hint = "add a row below the header email,name,topics" if section.file is not None else None
    raise DigestError(message, path=where, key=key, hint=hint)


def _display(path: Path) -> str:
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


Row = tuple[str, int | None, str, str, frozenset[str], str]  # (where, line, email, name, topics, language)


def _add(result: SubscriberList, seen: dict[str, str], rows: Iterable[Row | Problem]) -> None:
    for row in rows:
        if isinstance(row, Problem):
            result.problems.append(row)
            continue
        where, line, email, name, topics, language = row
        problem = address_problem(email) or language_problem(language)
        place = f"{where}:{line}" if line else where
        if problem is None and email.casefold() in seen:
            problem = f"{email!r} is listed twice (first at {seen[email.casefold()]})"
        if problem is not None:
            result.problems.append(Problem(where, problem, line, hint="this subscriber is skipped"))
            continue
        seen[email.casefold()] = place
        result.subscribers.append(Subscriber(email, name, topics, language))


def parse_csv(text: str, where: str) -> list[Row | Problem]:
    """Rows of a subscribers CSV; a header that is not `email[,name][,topics][,language]` (in any
    order) makes the file unusable."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DigestError(
            "the subscribers file is empty",
            path=where,
            hint="the first row must be the header: email,name,topics,language (all but email optional)",
        ) from None
    except csv.Error as exc:
        raise DigestError(f"not a CSV file: {exc}", path=where, line=1) from None
    columns = [column.strip().casefold() for column in header]
    unknown = [c for c in columns if c not in COLUMNS]
    if "email" not in columns or unknown or len(set(columns)) != len(columns):
        raise DigestError(
            f"the header row must name the columns email,name,topics,language, not {','.join(header)!r}",
            path=where,
            line=1,
            hint="name, topics and language are optional; no other column is allowed",
        )
    rows: list[Row | Problem] = []
    start = reader.line_num + 1  # the line the next row starts on
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a NUL byte, or a field over the csv module's limit
            raise DigestError(
                f"not valid CSV: {exc}; nobody was sent anything", path=where, line=reader.line_num + 1
            ) from None
        if any("\n" in value or "\r" in value for value in values):
            raise _runaway_quote(where, start)
        start = reader.line_num + 1
        if not any(value.strip() for value in values):
            continue  # blank line
        if len(values) > len(columns):
            rows.append(
                Problem(
                    where,
                    f"{len(values)} fields, but the header names {len(columns)}",
                    reader.line_num,
                    hint="quote a name that contains a comma",
                )
            )
            continue
        record = dict(zip(columns, values, strict=False))
        rows.append(
            (
                where,
                reader.line_num,
                record.get("email", "").strip(),
                safe_name(record.get("name", "")),
                split_topics(record.get("topics", "")),
                record.get("language", "").strip(),
            )
        )
    return rows


def _from_config(entries: Sequence[Mapping[str, Any]], where: str) -> list[Row | Problem]:
    rows: list[Row | Problem] = []
    for index, entry in enumerate(entries):
        key = f"subscribers.list[{index}]"
        unknown = sorted(set(entry) - set(COLUMNS))
        if unknown:
            raise ConfigError(
                f"unknown key '{unknown[0]}' in '{key}'",
                path=where,
                key=key,
                hint="known keys: " + ", ".join(COLUMNS),
            )
        name, topics, language = entry.get("name", ""), entry.get("topics"), entry.get("language", "")
        if (
            not isinstance(name, str)
            or not isinstance(language, str)
            or not (
                topics is None
                or isinstance(topics, str)
                or (isinstance(topics, list) and all(isinstance(t, str) for t in topics))
            )
        ):
            raise ConfigError(
                f"'{key}': name and language must be strings and topics a string or a list of strings",
                path=where,
                key=key,
            )
        rows.append(
            (
                f"{where} [{key}]",
                None,
                str(entry["email"]).strip(),
                safe_name(name),
                split_topics(topics),
                language.strip(),
            )
        )
    return rows


def _runaway_quote(where: str, line: int) -> DigestError:
    """A quoted field with a line break in it: in a subscriber list that is a `"` never closed on its
    line, and every row up to the next `"` went into that one field."""
    return DigestError(
        "a quoted field runs over several lines, so the rows after it cannot be told apart; "
        "nobody was sent anything",
        path=where,
        line=line,
        hint="""check the quotes on this line: a '"' inside a field is written '""'""",
    )


_ENCODED_WORD_ROUNDS = 4  # an encoded word may hide another; more than this is not a name


def safe_name(value: str) -> str:
    """A display name as one line of plain text: encoded words decoded (repeatedly: one may decode to
    another), control characters dropped, whitespace collapsed; what the email package would still
    decode into something else loses its `=?`, so no name can ever write a line break into a header."""
    name = _one_line(value)
    for _ in range(_ENCODED_WORD_ROUNDS):
        if "=?" not in name:
            return name
        decoded = _one_line(decode_words(name))
        if decoded == name:
            break
        name = decoded
    try:  # what build_message will do with it: it must give this very name back
        header = policy.SMTP.header_store_parse("To", str(Address(display_name=name, addr_spec="a@b.c")))
        if header[1].addresses[0].display_name == name:
            return name
    except (ValueError, IndexError, HeaderParseError):
        pass
    return name.replace("=?", "= ?")


def _one_line(value: str) -> str:
    """Whitespace (CR, LF and the Unicode line separators included) as single spaces, no control
    characters."""
    text = one_line(value)
    if text.isprintable():
        return text
    return "".join(c for c in text if unicodedata.category(c) != "Cc")
