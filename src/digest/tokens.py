"""Signed tokens for the subscriber links: what a link may do, for which address, until when. Pure.

A token is itsdangerous' URL-safe serializer over a small JSON list `[purpose, address, issued_ms, ref]`,
signed with HMAC-SHA1 under a key derived from the secret and a salt of its own per purpose, so a token
made for one purpose never verifies as another (the purpose is also checked inside the payload). The
alphabet is base64url plus `.`: it lives in a URL path, where no proxy strips it as it may a query string.

- `unsubscribe` and `preferences` tokens never expire (a digest read a year later must still be able to
  unsubscribe) and carry no time, so the same address gives the same token: the digest stays
  byte-identical for the same input.
- `confirm` (7 days), `form` (the signed timestamp of the subscribe page, 1 day) and `csrf` (the
  preferences form, 1 day) carry the time they were made, in milliseconds, inside the signed payload.

The clock is a parameter: itsdangerous' own `TimestampSigner` reads `time.time()` (in `get_timestamp`)
and keeps only whole seconds, so instead of it the issue time is part of the signed payload and the age
is checked here against the `now` the caller passes; a token dated in the future is refused as well.

Keys rotate: `parse_keys` reads the environment variable's value, newest key first. The newest signs;
every key verifies (itsdangerous tries each, newest first, comparing with `hmac.compare_digest`, in
`signer.SigningAlgorithm.verify_signature`), so links mailed before a rotation keep working until the
old key is dropped from the variable.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadData, URLSafeSerializer

from .errors import ConfigError

Purpose = Literal["confirm", "unsubscribe", "preferences", "form", "csrf"]
PURPOSES: tuple[Purpose, ...] = ("confirm", "unsubscribe", "preferences", "form", "csrf")
# How long a token of each purpose is good for; None: for ever.
MAX_AGE: dict[Purpose, dt.timedelta | None] = {
    "confirm": dt.timedelta(days=7),
    "unsubscribe": None,
    "preferences": None,
    "form": dt.timedelta(days=1),
    "csrf": dt.timedelta(days=1),
}
MIN_KEY_LENGTH = 32  # characters; `python -c "import secrets; print(secrets.token_urlsafe(32))"` gives 43
MAX_TOKEN_LENGTH = 1024  # longer is refused before any work: no address makes a token this long
_KEY_SEPARATORS = re.compile(r"[\s,]+")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class InvalidToken(Exception):
    """The token is not one of ours for this purpose: tampered, truncated, foreign or malformed."""


class ExpiredToken(InvalidToken):
    """The token is ours but too old (or dated in the future)."""


@dataclass(frozen=True)
class Token:
    purpose: Purpose
    address: str  # the normalised address; "" for a `form` token
    issued: dt.datetime | None  # UTC, to the millisecond; None for purposes that never expire
    ref: int | None = None  # for `confirm`: which subscribe request is being confirmed


def parse_keys(value: str | None, variable: str) -> tuple[str, ...]:
    """The signing keys held by the environment variable `variable`, newest first.

    Keys are separated by whitespace or commas; each must be at least `MIN_KEY_LENGTH` characters.
    The error names the variable and never shows a key."""
    if value is None or not value.strip():
        raise ConfigError(
            f"the environment variable {variable} holding the signing key is not set",
            key="server.secret_env",
            hint=f"export {variable}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )
    keys = tuple(key for key in _KEY_SEPARATORS.split(value.strip()) if key)
    for position, key in enumerate(keys, start=1):
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"key {position} in the environment variable {variable} is {len(key)} characters long, "
                f"fewer than {MIN_KEY_LENGTH}",
                key="server.secret_env",
                hint="use a random key such as secrets.token_urlsafe(32); separate keys by spaces",
            )
    if len(set(keys)) != len(keys):
        raise ConfigError(f"the environment variable {variable} holds one key twice", key="server.secret_env")
    return keys


def _millis(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


class Tokens:
    """Makes and reads tokens with one set of keys (newest first)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        # itsdangerous signs with the last key of its list and verifies with each, last first.
        ordered = list(reversed(keys))
        self._serializers = {
            purpose: URLSafeSerializer(ordered, salt=f"digest.{purpose}") for purpose in PURPOSES
        }

    def make(
        self, purpose: Purpose, address: str, *, now: dt.datetime | None = None, ref: int | None = None
    ) -> str:
        """A token for `address`; `now` is required (and only used) for the purposes that expire."""
        issued: int | None = None
        if MAX_AGE[purpose] is not None:
            if now is None:
                raise ValueError(f"a {purpose} token needs now")
            issued = _millis(now)
        return self._serializers[purpose].dumps([purpose, address, issued, ref])

    def list_links(self, address: str) -> tuple[str, str]:
        """(unsubscribe, preferences) tokens for a digest to `address`: the same every time."""
        return self.make("unsubscribe", address), self.make("preferences", address)

    def read(self, token: str, purpose: Purpose, *, now: dt.datetime) -> Token:
        """The verified token, or `InvalidToken`/`ExpiredToken`; nothing about a bad token is trusted."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("not a token")
        try:
            payload = self._serializers[purpose].loads(token)
        except (BadData, ValueError, json.JSONDecodeError, UnicodeError):
            raise InvalidToken("bad signature") from None
        if not (
            isinstance(payload, list)
            and len(payload) == 4
            and payload[0] == purpose
            and isinstance(payload[1], str)
            and (payload[2] is None or type(payload[2]) is int)
            and (payload[3] is None or type(payload[3]) is int)
        ):
            raise InvalidToken("not a token for this purpose")
        _, address, issued_ms, ref = payload
        limit = MAX_AGE[purpose]
        issued: dt.datetime | None = None
        if limit is not None:
            if issued_ms is None:
                raise InvalidToken("no issue time")
            age = _millis(now) - issued_ms
            if age < 0 or age > limit // dt.timedelta(milliseconds=1):
                raise ExpiredToken(f"{purpose} token is {age} ms old")
            issued = _EPOCH + dt.timedelta(milliseconds=issued_ms)
        return Token(purpose, address, issued, ref)
