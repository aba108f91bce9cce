"""Handing messages over: to the outbox folder, or to an SMTP server over one reused connection.

A transport's `send` answers for one recipient with an `Outcome`: `sent` (accepted), `failed` (the
server said no for good: 5xx) or `deferred` (it kept saying "later": 4xx until `max_attempts`). A
problem no retry of this message can fix (wrong password, server unreachable, TLS refused, the sender
refused) raises `DeliveryError` instead, so the run stops and leaves the rest for the next run rather
than marking every remaining subscriber failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Literal, Protocol

from .config import Config, DeliveryConfig
from .errors import DeliveryError
from .output import safe_join, write_atomic

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class Outcome:
    status: Literal["sent", "failed", "deferred"]
    attempts: int
    error: str = ""  # the server's last reply, e.g. "550 5.1.1 no such user"


class Transport(Protocol):
    description: str

    def send(self, sender: str, recipient: str, data: bytes, *, key: str) -> Outcome:
        """Hand over one message; `key` names it where a name is needed (the outbox file)."""
        ...

    def close(self) -> None: ...


def envelope_sender(config: Config) -> str:
    """The SMTP MAIL FROM address: the address part of `[digest] from`."""
    address = parseaddr(config.digest.sender)[1]
    if "@" not in address:
        raise DeliveryError(
            f"'digest.from' has no email address: {config.digest.sender!r}",
            path=str(config.path),
            key="digest.from",
            hint='e.g. "Site <digest@example.com>"',
        )
    return address


def open_transport(
    config: Config, *, sleep: Sleep = time.sleep, environ: Mapping[str, str] | None = None
) -> Transport:
    if config.delivery.method == "smtp":
        return Smtp(
            config.delivery,
            sleep=sleep,
            environ=os.environ if environ is None else environ,
            config_path=str(config.path),
        )
    return Outbox(config.delivery.outbox)


# ---------------------------------------------------------------- outbox


_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


class Outbox:
    """One `.eml` file per message in a folder, for a local MTA's pickup or for eyes.

    The file name is fixed by the message key, and a file already holding the same bytes is left
    alone, so re-sending a message (a resumed run) never makes a second copy.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = f"outbox {folder}"

    def path_for(self, key: str) -> Path:
        name = _UNSAFE.sub("_", key)
        if name != key:  # two keys that differ only in unsafe characters must not share a file
            name += "-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
        return safe_join(self.folder, name.lstrip(".") + ".eml")

    def send(self, sender: str, recipient: str, data: bytes, *, key: str) -> Outcome:
        try:
            write_atomic(self.path_for(key), data)
        except OSError as exc:
            raise DeliveryError(
                f"cannot write to the outbox: {exc.strerror}", path=str(self.folder)
            ) from None
        return Outcome("sent", 1)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- SMTP


class _Unreachable(Exception):
    """Connecting (or logging in) failed in a way a later attempt might not."""


class Smtp:
    """smtplib over one connection for the whole run, reconnecting when the server drops it.

    A 4xx is retried on the same connection after `retry_backoff * 2**n` seconds, up to `max_attempts`
    attempts in all; a 5xx is final. A dropped connection (or a 421) is re-opened at once for the next
    attempt: servers that close after N messages per connection are common and not a reason to wait.
    """

    def __init__(
        self,
        config: DeliveryConfig,
        *,
        sleep: Sleep = time.sleep,
        environ: Mapping[str, str],
        config_path: str = "",
    ) -> None:
        self.config = config
        self.sleep = sleep
        self.description = f"SMTP {config.smtp_host}:{config.smtp_port}"
        self.password = ""
        if config.smtp_username:
            variable = config.smtp_password_env
            if not variable:
                raise DeliveryError(
                    "'delivery.smtp_username' is set but 'delivery.smtp_password_env' is not",
                    path=config_path,
                    key="delivery.smtp_password_env",
                    hint="name the environment variable that holds the password",
                )
            if variable not in environ:
                raise DeliveryError(
                    f"the environment variable {variable} (the SMTP password) is not set",
                    path=config_path,
                    key="delivery.smtp_password_env",
                )
            self.password = environ[variable]
        self._conn: smtplib.SMTP | None = None
        self.connections = 0  # how many times we connected: 1 for a run on a healthy server

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None and self._conn.sock is not None:
            return self._conn
        self._conn = None
        c = self.config
        try:
            context = ssl.create_default_context()
            if c.smtp_security == "ssl":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.smtp_host, c.smtp_port, timeout=c.smtp_timeout, context=context
                )
            else:
                conn = smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=c.smtp_timeout)
            try:
                conn.ehlo_or_helo_if_needed()
                if c.smtp_security == "starttls":
                    conn.starttls(context=context)
                    conn.ehlo()
                if c.smtp_username:
                    conn.login(c.smtp_username, self.password)
            except BaseException:
                conn.close()
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"{self.description}: login refused: {_reply(exc)}",
                hint="check smtp_username and the password variable",
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(
                f"{self.description}: {exc}",
                hint="the server offers no STARTTLS or AUTH; check smtp_security",
            ) from None
        except ssl.SSLError as exc:
            raise DeliveryError(
                f"{self.description}: TLS failed: {exc}",
                hint="check smtp_security and smtp_port (465 is ssl, 587 starttls)",
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            detail = _reply(exc) if isinstance(exc, smtplib.SMTPResponseException) else str(exc)
            raise _Unreachable(f"cannot connect: {detail or type(exc).__name__}") from None
        self._conn = conn
        self.connections += 1
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def send(self, sender: str, recipient: str, data: bytes, *, key: str = "") -> Outcome:
        attempts, last, wait, unreachable = 0, "", 0.0, False
        while attempts < self.config.max_attempts:
            if wait:
                self.sleep(wait)
            attempts += 1
            try:
                conn = self._connection()
            except _Unreachable as exc:
                last, unreachable = str(exc), True
                wait = self.config.retry_backoff * 2 ** (attempts - 1)
                continue
            unreachable = False
            code, message = 0, ""
            try:
                conn.sendmail(sender, [recipient], data)
                return Outcome("sent", attempts)
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = exc.recipients.get(recipient, (0, b""))
                message = _text(reply)
            except smtplib.SMTPSenderRefused as exc:
                if exc.smtp_code >= 500:
                    raise DeliveryError(
                        f"{self.description}: sender {sender} refused: {_reply(exc)}",
                        hint="check [digest] from",
                    ) from None
                code, message = exc.smtp_code, _text(exc.smtp_error)
            except smtplib.SMTPResponseException as exc:
                code, message = exc.smtp_code, _text(exc.smtp_error)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                # The server may have taken the message before the line dropped; nothing tells us, so
                # the retry can duplicate it. It carries the same Message-ID, so clients collapse it.
                self._drop()
                last, wait = f"connection lost: {exc or type(exc).__name__}", 0.0
                continue
            except smtplib.SMTPException as exc:  # e.g. the server can't take SMTPUTF8: no retry helps
                return Outcome("failed", attempts, str(exc))
            last = f"{code} {message}".strip()
            if code == 421:
                self._drop()  # the server is closing this connection; the next attempt opens a new one
            if code >= 500:
                return Outcome("failed", attempts, last)
            wait = self.config.retry_backoff * 2 ** (attempts - 1)
        if unreachable:
            # No connection after every attempt: the server is down for everyone, not for this
            # recipient. Stop the run; this recipient stays pending for the next one.
            raise DeliveryError(
                f"{self.description}: {last}",
                hint="check smtp_host, smtp_port and smtp_security; the next run retries",
            )
        return Outcome("deferred", attempts, last)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.quit()
        self._drop()


def _text(message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return " ".join(text.split())


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"
