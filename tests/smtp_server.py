"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, a free port, in a background thread.

It records what it accepted (envelope and bytes; parsed on demand), can be told to answer 4xx/5xx to
given recipients for their first N attempts, to refuse every recipient with one reply (a relay that
denies relaying), to be slow at DATA (so a kill lands mid-delivery), to be slow to answer the end of
DATA after taking the message (a client that gives up has still delivered it), to drop connections
after N messages, and to require a login. Use it as a context manager: it stops on
exit, so a failing test never leaves a server behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import email
import io
import socket
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    connection: int  # which connection (1 = the first) carried it

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Handler:
    data_delay: float = 0.0  # seconds to wait at the end of DATA before taking the message
    answer_delay: float = 0.0  # seconds between taking the message (it is queued) and saying so
    # Addresses whose next message is taken, and then the connection dropped instead of answering.
    drop_after_taking: list[str] = field(default_factory=list)
    refuse_all: str = ""  # answer every RCPT with this reply, e.g. "550 5.7.1 relaying denied"
    drop_after: int = 0  # close the connection at the MAIL after this many messages on it (0: never)
    received: list[Received] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)  # RCPT commands seen, by address
    _rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    _data_replies: dict[str, list[str]] = field(default_factory=dict)
    _per_connection: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reply_rcpt(self, address: str, reply: str, times: int = 1) -> None:
        """Answer RCPT TO:<address> with `reply` (e.g. "450 4.2.1 busy") for its next `times` attempts."""
        self._rcpt_replies.setdefault(address, []).extend([reply] * times)

    def reply_data(self, address: str, reply: str, times: int = 1) -> None:
        """Answer the DATA of a message to `address` with `reply` for its next `times` attempts."""
        self._data_replies.setdefault(address, []).extend([reply] * times)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def by_recipient(self) -> dict[str, list[Received]]:
        with self._lock:
            copies: dict[str, list[Received]] = {}
            for item in self.received:
                for rcpt in item.rcpt_tos:
                    copies.setdefault(rcpt, []).append(item)
            return copies

    def _next(self, replies: dict[str, list[str]], address: str) -> str | None:
        with self._lock:
            queue = replies.get(address)
            return queue.pop(0) if queue else None

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        connection = session.digest_connection
        if self.drop_after and self._per_connection.get(connection, 0) >= self.drop_after:
            server.transport.close()  # an abrupt drop, as a server restarting would do
            return "421 4.3.2 closing"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self._lock:
            self.attempts[address] += 1
        reply = self._next(self._rcpt_replies, address) or self.refuse_all or None
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        for rcpt in envelope.rcpt_tos:
            reply = self._next(self._data_replies, rcpt)
            if reply is not None:
                return reply
        connection = session.digest_connection
        with self._lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content), connection)
            )
            self._per_connection[connection] = self._per_connection.get(connection, 0) + 1
        if self.answer_delay:  # a slow filter after queueing: the client may give up, the copy stays
            await asyncio.sleep(self.answer_delay)
        with self._lock:
            dropped = [r for r in envelope.rcpt_tos if r in self.drop_after_taking]
            for rcpt in dropped:
                self.drop_after_taking.remove(rcpt)
        if dropped:
            server.transport.close()
        return "250 2.0.0 queued"


class _Session(SMTP):
    """Numbers each connection, so tests can tell whether one was reused."""

    counter = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        type(self).counter += 1
        self.session.digest_connection = type(self).counter


class _Controller(Controller):
    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # "AUTH without TLS": on purpose, on 127.0.0.1
            warnings.simplefilter("ignore", UserWarning)
            return _Session(self.handler, **self.SMTP_kwargs)


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: Handler
    controller: _Controller

    @property
    def count(self) -> int:
        return self.handler.count

    @property
    def received(self) -> list[Received]:
        return list(self.handler.received)

    @property
    def connections(self) -> int:
        return len({item.connection for item in self.handler.received})

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Poll (with a deadline) until the server has accepted `count` messages."""
        deadline = time.monotonic() + timeout
        while self.count < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the server accepted {self.count} messages, not {count}, in {timeout} s"
                )
            time.sleep(0.002)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def smtp_server(
    handler: Handler | None = None, *, login: tuple[str, str] | None = None
) -> Iterator[SmtpServer]:
    """A running server; `login=(user, password)` makes it offer AUTH and accept only that pair."""
    handler = handler or Handler()
    kwargs: dict[str, Any] = {}
    if login is not None:

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == login
            return AuthResult(success=ok, handled=False)

        kwargs = {"authenticator": authenticate, "auth_require_tls": False, "auth_required": True}
    for _ in range(5):  # a free port can be taken between probing and binding: try another
        port = _free_port()
        controller = _Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        try:
            controller.start()
            break
        except (OSError, RuntimeError):
            continue
    else:  # pragma: no cover
        raise RuntimeError("no free port for the test SMTP server")
    try:
        yield SmtpServer("127.0.0.1", port, handler, controller)
    finally:
        controller.stop()


# ---------------------------------------------------------------- a site that delivers (outbox or here)

RUN_CONFIG = """\
[site]
title = "Test Site"
base_url = "https://example.com/"
language = "zh-CN"
timezone = "{timezone}"
author = "Editors"

[content]
dir = "content"

[feeds]
dir = "feeds"

[state]
path = "state/state.sqlite3"

[digest]
archive_dir = "archive"
from = "Test Site <digest@example.com>"
unsubscribe_url = "https://example.com/unsubscribe?email={{email}}"
manage_url = "https://example.com/preferences?email={{email}}"
{digest}

[subscribers]
file = "subscribers.csv"

[delivery]
{delivery}

[schedule]
{schedule}
"""

OUTBOX = 'method = "outbox"\noutbox = "outbox"'


def smtp_delivery(server: SmtpServer, **extra: object) -> str:
    """The [delivery] keys that send to `server` (retries fast unless told otherwise)."""
    keys: dict[str, object] = {
        "method": "smtp",
        "smtp_host": server.host,
        "smtp_port": server.port,
        "smtp_security": "none",
        "retry_backoff": 0.01,
        "max_attempts": 3,
        **extra,
    }
    return "\n".join(
        f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}" for key, value in keys.items()
    )


def write_run_config(
    root: Any,
    *,
    delivery: str = OUTBOX,
    digest: str = "",
    schedule: str = "",
    timezone: str = "Asia/Shanghai",
) -> Any:
    """Write <root>/config.toml for a site that sends its digest; returns its path."""
    path = root / "config.toml"
    path.write_text(
        RUN_CONFIG.format(delivery=delivery, digest=digest, schedule=schedule, timezone=timezone),
        encoding="utf-8",
    )
    return path


def write_subscribers(root: Any, rows: list[tuple[str, str, str]] | int) -> list[str]:
    """<root>/subscribers.csv from (email, name, topics) rows, or N generated ones; returns the addresses."""
    if isinstance(rows, int):
        rows = [(f"reader{i:05d}@example.com", f"Reader {i}", "") for i in range(rows)]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["email", "name", "topics"])
    writer.writerows(rows)
    (root / "subscribers.csv").write_text(text.getvalue(), encoding="utf-8")
    return [e for e, _, _ in rows]
