"""Handing messages over: to the outbox folder, or to an SMTP server over reused connections.

A transport's `send` answers for one recipient with an `Outcome`: `sent` (accepted), `failed` (the
server said no for good: 5xx) or `deferred` (it kept saying "later": 4xx until `max_attempts`). When
the whole message went out but no reply to its final dot came within `smtp_data_timeout` (RFC 5321
§4.5.3.2.6: 10 minutes), the outcome is unknown: the server may have taken it. `send` raises
`UnknownOutcome`; the message is not sent again in that run, and `UnknownOutcome.settle` says how it is
recorded (sent once more by the next run, never a third time). A
problem no retry of this message can fix (wrong password, server unreachable, TLS refused, the sender
refused) raises `DeliveryError` instead, so the run stops and leaves the rest for the next run rather
than marking every remaining subscriber failed. So does a 421 on a fresh connection: the server is
refusing everyone for now, and waiting out the backoff once per recipient would take days for a large
list.

One `Smtp` is one connection; `[delivery] connections` of them deliver in parallel (`weekly.Courier`
runs them). `RefusalWatch` sees every outcome of the run, from all connections, and tells a server
refusing everyone from recipients refused on their own: `DEFERRALS_BEFORE_STOP` recipients deferred in
a row, or refusals with one permanent code from the first recipients of a run, before the server
accepted anything (a relay denying relaying answers 550 5.7.1 to every recipient), stop the run with
them still pending, as for a 421.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import smtplib
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal, Protocol

from .config import Config, DeliveryConfig
from .errors import DeliveryError
from .output import safe_join, write_atomic
from .text import one_line

Sleep = Callable[[float], None]

# Recipients deferred one after another (each after all its attempts) before the run concludes the
# server is deferring everyone, stops, and leaves the rest pending for the next run.
DEFERRALS_BEFORE_STOP = 3
# Recipients refused with one permanent code before the server accepted any message in the run: then
# the refusal is the server's (a relay denying relaying), not theirs.
REFUSALS_BEFORE_STOP = 3


@dataclass(frozen=True)
class Outcome:
    status: Literal["sent", "failed", "deferred"]
    attempts: int
    error: str = ""  # the server's last reply, e.g. "550 5.1.1 no such user"


# How an unknown outcome is recorded; a delivery whose last error starts so had one before.
UNKNOWN_PREFIX = "no reply to the end of DATA"


class UnknownOutcome(DeliveryError):
    """The message went out whole, and no reply to its final dot came: it may have been accepted.

    `waited` is how long the reply was waited for, or None when the connection dropped first. A wait
    that ran out stops the run (`stops_run`): a server that takes more than `smtp_data_timeout` to
    answer one message would take as long for each of the others. A dropped connection does not: the
    next recipient goes out on a new one."""

    def __init__(self, description: str, recipient: str, waited: float | None, attempts: int) -> None:
        how = f"within {waited:g} s" if waited is not None else "before the connection dropped"
        self.detail = f"{UNKNOWN_PREFIX} {how}; the server may have accepted it"
        super().__init__(
            f"{description}: {UNKNOWN_PREFIX} for {recipient} {how}",
            hint="the server may have accepted it; it is sent again once, by the next run",
        )
        self.attempts = attempts
        self.stops_run = waited is not None

    def settle(self, previous_error: str) -> tuple[Outcome, str]:
        """(what to record, why the run stops): deferred the first time, so the next run sends it once
        more; failed when that was already the retry, so there is never a third copy."""
        if previous_error.startswith(UNKNOWN_PREFIX):
            error = self.detail + " (twice: not sent again)"
            reason = f"{self.message} (the server may have accepted it; it was sent twice, not again)"
            return Outcome("failed", self.attempts, error), reason
        return Outcome("deferred", self.attempts, self.detail), str(self)


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


def connection_count(config: Config) -> int:
    """How many connections deliver at once: `[delivery] connections` over SMTP; the outbox writes
    its files one after another (the same files either way)."""
    return config.delivery.connections if config.delivery.method == "smtp" else 1


def open_transport(
    config: Config,
    *,
    sleep: Sleep | None = None,
    stop: threading.Event | None = None,
    environ: Mapping[str, str] | None = None,
) -> Transport:
    if config.delivery.method == "smtp":
        return Smtp(
            config.delivery,
            sleep=sleep,
            stop=stop,
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


class _FinalReplyMissing(Exception):
    """The end of DATA was sent and its reply did not come: the message may have been taken. The
    argument says whether it was the wait that ended (True) or the connection (False)."""


class _WaitsForTheFinalReply(smtplib.SMTP):
    """smtplib's SMTP, but the reply to the end of DATA is waited for `data_timeout` seconds (not the
    command timeout), and its absence is `_FinalReplyMissing`, never an ordinary lost connection: the
    message may be in the server's queue already, and sending it again would make a copy."""

    data_timeout = 600.0
    _replies_in_data: int | None = None

    def data(self, msg: Any) -> tuple[int, bytes]:
        self._replies_in_data = 0
        try:
            return super().data(msg)
        finally:
            self._replies_in_data = None

    def getreply(self) -> tuple[int, bytes]:
        if self._replies_in_data is None:
            return super().getreply()
        self._replies_in_data += 1
        if self._replies_in_data == 1:  # the 354 to DATA itself: nothing was sent yet
            return super().getreply()
        sock, timeout = self.sock, self.timeout
        if sock is not None:
            sock.settimeout(self.data_timeout)
        try:
            return super().getreply()
        except smtplib.SMTPServerDisconnected as exc:
            raise _FinalReplyMissing(isinstance(exc.__context__, TimeoutError)) from None
        finally:
            if sock is not None and self.sock is sock:
                sock.settimeout(timeout)


class _Plain(_WaitsForTheFinalReply):
    pass


class _Ssl(_WaitsForTheFinalReply, smtplib.SMTP_SSL):
    pass


class Smtp:
    """smtplib over one connection for the whole run, reconnecting when the server drops it; one
    thread at a time uses it.

    A 4xx is retried on the same connection after `retry_backoff * 2**n` seconds, up to `max_attempts`
    attempts in all; a 5xx is final. A dropped connection, or a 421 on a connection that already
    carried messages, is re-opened at once for the next attempt: servers that close after N messages
    per connection are common and not a reason to wait. A 421 on a fresh connection means the server
    is shutting down or refusing service: that raises `DeliveryError`, so the run stops (the rest stay
    pending).

    The backoff waits on `stop` (set by SIGTERM to the scheduler), so a stop never waits out a retry:
    the recipient in hand is then `deferred` with the attempts made. `sleep`, when given, waits instead
    (tests pass one that records the waits).
    """

    def __init__(
        self,
        config: DeliveryConfig,
        *,
        sleep: Sleep | None = None,
        stop: threading.Event | None = None,
        environ: Mapping[str, str],
        config_path: str = "",
    ) -> None:
        self.config = config
        self.sleep = sleep
        self.stop = stop if stop is not None else threading.Event()
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
        self._conn: _WaitsForTheFinalReply | None = None
        self._carried = 0  # messages the current connection has carried
        self.connections = 0  # how many times we connected: 1 for a run on a healthy server

    def _connection(self) -> _WaitsForTheFinalReply:
        if self._conn is not None and self._conn.sock is not None:
            return self._conn
        self._conn = None
        c = self.config
        try:
            context = ssl.create_default_context()
            if c.smtp_security == "ssl":
                conn: _WaitsForTheFinalReply = _Ssl(
                    c.smtp_host, c.smtp_port, timeout=c.smtp_timeout, context=context
                )
            else:
                conn = _Plain(c.smtp_host, c.smtp_port, timeout=c.smtp_timeout)
            conn.data_timeout = c.smtp_data_timeout
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
        self._carried = 0
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
            if wait and not self._pause(wait):
                break  # asked to stop: leave this recipient for the next run
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
                self._carried += 1
                return Outcome("sent", attempts)
            except _FinalReplyMissing as exc:
                self._drop()
                timed_out = bool(exc.args[0])
                raise UnknownOutcome(
                    self.description,
                    recipient,
                    self.config.smtp_data_timeout if timed_out else None,
                    attempts,
                ) from None
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
                fresh = self._carried == 0
                self._drop()  # the server is closing this connection
                if fresh:
                    # Not a per-connection message limit: the server is shutting down or refusing
                    # service to everyone. Stop the run; this recipient stays pending.
                    raise DeliveryError(
                        f"{self.description}: {last}",
                        hint="the server is not taking mail now; the next run retries",
                    )
                wait = 0.0  # most likely a per-connection limit: a new connection, at once
                continue
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

    def _pause(self, seconds: float) -> bool:
        """Wait out a backoff; False (at once) when asked to stop."""
        if self.stop.is_set():
            return False
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            self.stop.wait(seconds)
        return not self.stop.is_set()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.quit()
        self._drop()


def _text(message: bytes | str) -> str:
    return one_line(message.decode("utf-8", "replace") if isinstance(message, bytes) else message)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


# ---------------------------------------------------------------- the server's refusal, or the recipients'

_ENHANCED = re.compile(r"^(\d{3})(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?")


def _server_wide(error: str) -> str:
    """The reply's code ("550 5.7.1") when it can be the server's refusal of everyone; "" when it is
    about the recipient's own mailbox or address (RFC 3463: X.1.x addressing but for X.1.7 and X.1.8,
    which are the sender's, and X.2.x mailbox status)."""
    match = _ENHANCED.match(error)
    if match is None:
        return ""
    code, enhanced = match.group(1), match.group(2) or ""
    subject, detail = enhanced.split(".")[1:3] if enhanced else ("", "")
    if subject == "2" or (subject == "1" and detail not in ("7", "8")):
        return ""
    return f"{code} {enhanced}".strip()


class RefusalWatch:
    """Sees every outcome of the run, in the order they come (from all connections), and holds back
    those that may be the server's refusal of everyone rather than the recipients' own.

    `DEFERRALS_BEFORE_STOP` recipients deferred in a row mean the server is deferring everyone: the one
    that makes them so many is kept (not recorded) and the run stops. Until the server accepts one
    message in the run, permanent refusals with one code (a relay that denies relaying answers 550
    5.7.1 to everyone) are held instead of recorded: `REFUSALS_BEFORE_STOP` of them, or every recipient
    of a digest (two at least), mean the server refuses everyone, and the run stops with them all still
    pending, as for a 421. An acceptance, another reply, or the end of a digest with one such refusal
    releases what was held, to be recorded as failed.
    """

    def __init__(
        self,
        description: str,
        threshold: int = REFUSALS_BEFORE_STOP,
        deferrals: int = DEFERRALS_BEFORE_STOP,
    ) -> None:
        self.description, self.threshold, self.deferrals = description, threshold, deferrals
        self.accepted = False
        self.held: list[tuple[str, Outcome]] = []
        self.kept: list[tuple[str, Outcome]] = []  # the deferral that stopped the run: left pending
        self.deferred_in_a_row = 0
        self._code = ""

    def settle(self, recipient: str, outcome: Outcome) -> list[tuple[str, Outcome]]:
        """The outcomes to record now, in order: none while this one is held."""
        if outcome.status == "deferred":
            self.deferred_in_a_row += 1
            if self.deferred_in_a_row >= self.deferrals and not self.kept:
                self.kept.append((recipient, outcome))
                return self.release()
        else:
            self.deferred_in_a_row = 0
        code = _server_wide(outcome.error) if outcome.status == "failed" else ""
        if not self.accepted and code:
            released = self.release() if code != self._code else []
            self._code = code
            self.held.append((recipient, outcome))
            return released
        self.accepted = self.accepted or outcome.status == "sent"
        return [*self.release(), (recipient, outcome)]

    @property
    def refusing(self) -> str:
        """Why the run stops ("" when it goes on): recipients deferred in a row, or the first
        recipients all refused alike."""
        if self.kept:
            recipients, last = self.deferred_in_a_row, self.kept[0][1].error
            return (
                f"{self.description}: {recipients} recipients in a row were deferred (last: {last}); "
                "the server is refusing mail for now (the next run retries them and the rest)"
            )
        if len(self.held) < self.threshold:
            return ""
        return self._reason(f"the first {len(self.held)} recipients were all")

    def end_of_digest(self) -> tuple[list[tuple[str, Outcome]], str]:
        """(outcomes to record, why the run stops): every recipient of the digest refused alike (two
        or more) is the server's refusal; a single one is the recipient's."""
        if len(self.held) >= 2:
            return [], self._reason(f"all {len(self.held)} recipients were")
        return self.release(), ""

    def release(self) -> list[tuple[str, Outcome]]:
        released, self.held, self._code = self.held, [], ""
        return released

    def left_pending(self) -> int:
        """Forget what is held and kept (the run stops: they stay pending); how many they were."""
        count = len(self.release()) + len(self.kept)
        self.kept = []
        return count

    def _reason(self, who: str) -> str:
        reply = self.held[-1][1].error
        return (
            f"{self.description}: {who} refused with {reply}; the server is refusing this sender, "
            "not these recipients (check [delivery] and [digest] from; the next run retries)"
        )
