"""The subscriber service the web pages call: tokens checked, then one store operation each.

`SubscriberService` holds the signing keys and a way to open the state database (one connection per
server thread, migrated on first use); every method takes the `now` it acts at. It never answers with
more than the page needs: a bad token is `invalid` whatever was wrong with it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from . import subscriptions as store
from .subscriptions import Limits, SignupRequest, Subscriber
from .tokens import ExpiredToken, InvalidToken, Purpose, Token, Tokens

LinkStatus = Literal["valid", "expired", "invalid"]


@dataclass(frozen=True)
class Link:
    """What a token in a URL turned out to be."""

    status: LinkStatus
    address: str = ""
    language: str = ""  # the subscriber's, "" when unknown
    subscriber: Subscriber | None = None


@dataclass(frozen=True)
class SignupResult:
    signup: store.Signup
    confirm_token: str = ""  # set when a confirmation mail is due


class SubscriberService:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        tokens: Tokens,
        topics: Callable[[], Sequence[str]],
        limits: Limits | None = None,
    ) -> None:
        self._connect = connect
        self._local = threading.local()
        self.tokens = tokens
        self._topics = topics
        self.limits = limits or Limits()

    def db(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections stay in the thread that made them)."""
        connection: sqlite3.Connection | None = getattr(self._local, "db", None)
        if connection is None:
            connection = self._connect()
            store.migrate(connection)
            self._local.db = connection
        return connection

    def topics(self) -> list[str]:
        """The topic names a subscriber may choose, as the site spells them."""
        return list(self._topics())

    # ------------------------------------------------------------ the subscribe form

    def form_stamp(self, now: dt.datetime) -> str:
        return self.tokens.make("form", "", now=now)

    def form_age(self, stamp: str, now: dt.datetime) -> dt.timedelta | None:
        """How long ago the subscribe page carrying `stamp` was served; None for a bad stamp."""
        try:
            token = self.tokens.read(stamp, "form", now=now)
        except InvalidToken:
            return None
        assert token.issued is not None
        return now - token.issued

    def subscribe(self, request: SignupRequest, now: dt.datetime) -> SignupResult:
        signup = store.request_subscription(self.db(), request, now, self.limits)
        if signup.status != "send":
            return SignupResult(signup)
        return SignupResult(
            signup, self.tokens.make("confirm", signup.address, now=now, ref=signup.request_id)
        )

    # ------------------------------------------------------------ links from mail

    def _read(self, token: str, purpose: Purpose, now: dt.datetime) -> Token | Link:
        try:
            return self.tokens.read(token, purpose, now=now)
        except ExpiredToken:
            return Link("expired")
        except InvalidToken:
            return Link("invalid")

    def _look_up(self, token: str, purpose: Purpose, now: dt.datetime) -> Link:
        """What a page shows for a token of `purpose`, changing nothing."""
        read = self._read(token, purpose, now)
        return read if isinstance(read, Link) else self._link(read)

    def _link(self, token: Token) -> Link:
        current = store.subscriber(self.db(), token.address)
        return Link("valid", token.address, current.language if current else "", current)

    def confirm_link(self, token: str, now: dt.datetime) -> Link:
        return self._look_up(token, "confirm", now)

    def confirm(self, token: str, ip: str, now: dt.datetime) -> tuple[Link, store.ConfirmStatus | None]:
        read = self._read(token, "confirm", now)
        if isinstance(read, Link):
            return read, None
        status = store.confirm(self.db(), read.address, read.ref or 0, ip, now)
        return self._link(read), status

    def unsubscribe_link(self, token: str, now: dt.datetime) -> Link:
        return self._look_up(token, "unsubscribe", now)

    def unsubscribe(self, token: str, method: str, ip: str, now: dt.datetime) -> Link:
        """Suppress the token's address (idempotent; also when it is no longer listed)."""
        read = self._read(token, "unsubscribe", now)
        if isinstance(read, Link):
            return read
        store.unsubscribe(self.db(), read.address, method, now, ip)
        return self._link(read)

    def preferences_link(self, token: str, now: dt.datetime) -> Link:
        return self._look_up(token, "preferences", now)

    def csrf_token(self, address: str, now: dt.datetime) -> str:
        return self.tokens.make("csrf", address, now=now)

    def save_preferences(
        self,
        token: str,
        csrf: str,
        *,
        name: str,
        language: str,
        topics: frozenset[str],
        unsubscribe: bool,
        ip: str,
        now: dt.datetime,
    ) -> tuple[Link, store.PreferencesStatus | Literal["csrf", "unsubscribed"] | None]:
        read = self._read(token, "preferences", now)
        if isinstance(read, Link):
            return read, None
        try:
            if self.tokens.read(csrf, "csrf", now=now).address != read.address:
                return self._link(read), "csrf"
        except InvalidToken:
            return self._link(read), "csrf"
        if unsubscribe:
            store.unsubscribe(self.db(), read.address, "page", now, ip)
            return self._link(read), "unsubscribed"
        status = store.update_preferences(
            self.db(), read.address, name=name, language=language, topics=topics, ip=ip, now=now
        )
        return self._link(read), status

    # ------------------------------------------------------------ for the digest

    def list_tokens(self, address: str) -> tuple[str, str]:
        """(unsubscribe, preferences) tokens for a digest to `address`: the same every time."""
        return self.tokens.list_links(address)
