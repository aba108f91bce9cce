"""One error hierarchy: every problem digest reports names where it is and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass


class DigestError(Exception):
    """Base of every error digest raises on purpose; the CLI turns it into one `Error: …` line."""

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
        return f"{where}{self.message}{hint}"


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
    """A reported, non-fatal problem: the article at `path` was skipped."""

    path: str
    message: str
    line: int | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = self.path + (f":{self.line}" if self.line else "")
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}: {self.message}{hint}"

    @classmethod
    def from_error(cls, error: DigestError, path: str) -> Problem:
        return cls(path=error.path or path, message=error.message, line=error.line, hint=error.hint)
