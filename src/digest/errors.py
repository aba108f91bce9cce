"""One error hierarchy: every problem digest reports names where it is and what is wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass

# What must never reach a terminal or a log as it is: C0 and C1 controls (a newline in a file name
# would print a line of its own, such as a forged "Error: …"), the Unicode line separators, and the
# lone surrogates that stand for a file name's bytes that are not UTF-8.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escaped(text: str) -> str:
    """`text` as one printable line: controls as `\\n`, `\\x1b`, …, a byte that was not UTF-8 as `\\xe9`."""
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte itself
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class DigestError(Exception):
    """Base of every error digest raises on purpose; the CLI turns it into one `Error: …` line (always
    one line: what it quotes, a file name above all, is shown escaped)."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.key = key
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "") + ": "
        hint = f" ({self.hint})" if self.hint else ""
        return escaped(f"{where}{self.message}{hint}")


class ConfigError(DigestError):
    """The config file is missing, unreadable, or has an unknown or mistyped key."""


class ArticleError(DigestError):
    """One article cannot be published as it is; the others still are."""


class OutputError(DigestError):
    """An output path would leave its folder, or two outputs would share one file."""


class StateError(DigestError):
    """The state database cannot be opened, migrated, or locked."""


class DeliveryError(DigestError):
    """A message could not be handed to the outbox or the SMTP server."""


@dataclass(frozen=True)
class Problem:
    """A reported, non-fatal problem: the article at `path` was skipped (or, when `skipped` is False,
    published but not as asked: a topic under another feed file name, a web copy not written)."""

    path: str
    message: str
    line: int | None = None
    hint: str | None = None
    skipped: bool = True

    def __str__(self) -> str:
        where = self.path + (f":{self.line}" if self.line else "")
        hint = f" ({self.hint})" if self.hint else ""
        return escaped(f"{where}: {self.message}{hint}")

    @classmethod
    def from_error(cls, error: DigestError, path: str) -> Problem:
        return cls(path=error.path or path, message=error.message, line=error.line, hint=error.hint)
