"""Handing messages over: the outbox, and SMTP with retries against a real server (delivery.py)."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from digest.config import DeliveryConfig
from digest.delivery import DEFERRALS_BEFORE_STOP, REFUSALS_BEFORE_STOP, Outbox, Outcome, RefusalWatch, Smtp
from digest.errors import DeliveryError

from smtp_server import Handler, smtp_server

MESSAGE = b"Subject: hi\r\nMessage-ID: <1@example.com>\r\n\r\nbody\r\n"


class Sleeps:
    """The backoff clock: records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def smtp(
    port: int, sleeps: Sleeps | None = None, environ: dict[str, str] | None = None, **keys: object
) -> Smtp:
    settings: dict[str, object] = {
        "method": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_timeout": 5.0,
        "max_attempts": 3,
        "retry_backoff": 2.0,
        **keys,
    }
    config = dataclasses.replace(DeliveryConfig(), **settings)  # type: ignore[arg-type]
    return Smtp(config, sleep=sleeps or Sleeps(), environ=environ or {})


def test_outbox_writes_one_file_per_message_and_never_a_second_copy(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    assert (
        outbox.send("d@example.com", "a@example.com", MESSAGE, key="2025-W27--a@example.com").status == "sent"
    )
    path = tmp_path / "outbox" / "2025-W27--a@example.com.eml"
    assert path.read_bytes() == MESSAGE
    mtime = path.stat().st_mtime_ns
    outbox.send("d@example.com", "a@example.com", MESSAGE, key="2025-W27--a@example.com")
    assert path.stat().st_mtime_ns == mtime  # a resumed run re-sends the same bytes: untouched
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left


def test_outbox_names_stay_inside_the_folder(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    outbox.send("d@example.com", "x", MESSAGE, key="../../etc/passwd")
    outbox.send("d@example.com", "x", MESSAGE, key="a/b@example.com")
    names = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert len(names) == 2
    assert all(name.endswith(".eml") and "/" not in name and not name.startswith(".") for name in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox"]


def test_one_connection_carries_many_messages() -> None:
    with smtp_server() as server:
        transport = smtp(server.port)
        for i in range(20):
            assert transport.send("d@example.com", f"r{i}@example.com", MESSAGE).status == "sent"
        transport.close()
        assert server.count == 20
        assert server.connections == 1
        assert transport.connections == 1


def test_a_4xx_is_retried_with_backoff_until_accepted() -> None:
    handler = Handler()
    handler.reply_rcpt("busy@example.com", "451 4.3.0 try again later", times=2)
    with smtp_server(handler) as server:
        sleeps = Sleeps()
        outcome = smtp(server.port, sleeps).send("d@example.com", "busy@example.com", MESSAGE)
        assert (outcome.status, outcome.attempts) == ("sent", 3)
        assert sleeps.waits == [2.0, 4.0]
        assert handler.attempts["busy@example.com"] == 3
        assert server.count == 1


def test_a_4xx_that_never_ends_is_deferred_after_max_attempts() -> None:
    handler = Handler()
    handler.reply_rcpt("full@example.com", "452 4.2.2 mailbox full", times=10)
    with smtp_server(handler) as server:
        sleeps = Sleeps()
        transport = smtp(server.port, sleeps)
        outcome = transport.send("d@example.com", "full@example.com", MESSAGE)
        assert outcome == dataclasses.replace(
            outcome, status="deferred", attempts=3, error="452 4.2.2 mailbox full"
        )
        assert sleeps.waits == [2.0, 4.0]
        # The connection is still good for the next recipient.
        assert transport.send("d@example.com", "ok@example.com", MESSAGE).status == "sent"
        assert server.connections == 1


def test_a_5xx_is_final_and_not_retried() -> None:
    handler = Handler()
    handler.reply_rcpt("gone@example.com", "550 5.1.1 no such user", times=10)
    handler.reply_data("spam@example.com", "554 5.7.1 rejected as spam")
    with smtp_server(handler) as server:
        sleeps = Sleeps()
        transport = smtp(server.port, sleeps)
        gone = transport.send("d@example.com", "gone@example.com", MESSAGE)
        assert (gone.status, gone.attempts, gone.error) == ("failed", 1, "550 5.1.1 no such user")
        spam = transport.send("d@example.com", "spam@example.com", MESSAGE)
        assert (spam.status, spam.attempts, spam.error) == ("failed", 1, "554 5.7.1 rejected as spam")
        assert sleeps.waits == []
        assert handler.attempts["gone@example.com"] == 1
        assert server.count == 0


def test_a_dropped_connection_is_reopened_without_losing_a_message() -> None:
    with smtp_server(Handler(drop_after=3)) as server:
        sleeps = Sleeps()
        transport = smtp(server.port, sleeps)
        for i in range(10):
            assert transport.send("d@example.com", f"r{i}@example.com", MESSAGE).status == "sent"
        transport.close()
        assert sorted(r.rcpt_tos[0] for r in server.received) == sorted(
            f"r{i}@example.com" for i in range(10)
        )
        assert server.connections == 4
        assert sleeps.waits == []  # a drop is not the server asking us to wait


def test_login_uses_the_password_from_the_environment() -> None:
    with smtp_server(login=("digest", "s3cret")) as server:
        transport = smtp(
            server.port,
            environ={"DIGEST_SMTP_PASSWORD": "s3cret"},
            smtp_username="digest",
            smtp_password_env="DIGEST_SMTP_PASSWORD",
        )
        assert transport.send("d@example.com", "a@example.com", MESSAGE).status == "sent"
        transport.close()
        wrong = smtp(
            server.port,
            environ={"DIGEST_SMTP_PASSWORD": "nope"},
            smtp_username="digest",
            smtp_password_env="DIGEST_SMTP_PASSWORD",
        )
        with pytest.raises(DeliveryError, match="login refused: 535"):
            wrong.send("d@example.com", "a@example.com", MESSAGE)


def test_a_missing_password_variable_is_an_error_before_anything_is_sent() -> None:
    with pytest.raises(DeliveryError, match=r"environment variable DIGEST_SMTP_PASSWORD .* is not set"):
        smtp(25, environ={}, smtp_username="digest", smtp_password_env="DIGEST_SMTP_PASSWORD")


def test_an_unreachable_server_stops_the_run_instead_of_failing_every_recipient() -> None:
    with smtp_server() as server:
        port = server.port
    sleeps = Sleeps()
    with pytest.raises(DeliveryError, match=f"SMTP 127.0.0.1:{port}: cannot connect"):
        smtp(port, sleeps).send("d@example.com", "a@example.com", MESSAGE)
    assert sleeps.waits == [2.0, 4.0]  # three attempts to connect, then it gives up


def test_421_on_a_fresh_connection_stops_the_run_at_once() -> None:
    handler = Handler()
    handler.reply_rcpt("a@example.com", "421 4.3.2 service shutting down", times=10)
    with smtp_server(handler) as server:
        sleeps = Sleeps()
        with pytest.raises(DeliveryError, match=r"421 4\.3\.2 service shutting down"):
            smtp(server.port, sleeps, max_attempts=5).send("d@example.com", "a@example.com", MESSAGE)
        assert sleeps.waits == []  # not 2 + 4 + 8 + 16 s for this recipient, then as much for the next
        assert handler.attempts["a@example.com"] == 1


def test_421_after_messages_on_the_connection_reconnects_at_once() -> None:
    handler = Handler()
    handler.reply_rcpt("r2@example.com", "421 4.7.0 too many messages on this connection")
    with smtp_server(handler) as server:
        sleeps = Sleeps()
        transport = smtp(server.port, sleeps)
        for i in range(4):
            assert transport.send("d@example.com", f"r{i}@example.com", MESSAGE).status == "sent"
        assert sleeps.waits == []
        assert transport.connections == 2
        assert handler.attempts["r2@example.com"] == 2


def test_each_connection_answers_for_its_recipient_and_the_watch_for_the_run() -> None:
    """A transport defers recipient after recipient without judging the server: with several
    connections only the run sees them all in a row (RefusalWatch)."""
    handler = Handler()
    for i in range(10):
        handler.reply_rcpt(f"r{i}@example.com", "451 4.3.0 try again later", times=99)
    with smtp_server(handler) as server:
        sleeps = Sleeps()
        transport = smtp(server.port, sleeps)
        for i in range(DEFERRALS_BEFORE_STOP + 1):
            assert transport.send("d@example.com", f"r{i}@example.com", MESSAGE).status == "deferred"
        assert len(sleeps.waits) == 2 * (DEFERRALS_BEFORE_STOP + 1)  # (3 attempts, 2 waits) per recipient


def deferred(error: str = "451 4.3.0 try again later") -> Outcome:
    return Outcome("deferred", 3, error)


def test_recipients_deferred_in_a_row_stop_the_run() -> None:
    watch = RefusalWatch("SMTP x")
    for n in range(DEFERRALS_BEFORE_STOP - 1):
        assert watch.settle(f"r{n}@example.com", deferred()) == [(f"r{n}@example.com", deferred())]
        assert watch.refusing == ""
    # The one that makes them so many is not recorded: it stays pending, like everyone after it.
    assert watch.settle("last@example.com", deferred("452 4.3.1 queue full")) == []
    assert watch.refusing == (
        f"SMTP x: {DEFERRALS_BEFORE_STOP} recipients in a row were deferred (last: 452 4.3.1 queue full); "
        "the server is refusing mail for now (the next run retries them and the rest)"
    )
    assert watch.left_pending() == 1
    assert watch.left_pending() == 0


def test_a_busy_mailbox_between_good_ones_is_only_deferred() -> None:
    watch = RefusalWatch("SMTP x")
    for i in range(5):  # five deferrals, never two in a row
        assert len(watch.settle(f"busy{i}@example.com", deferred())) == 1
        assert len(watch.settle(f"ok{i}@example.com", Outcome("sent", 1))) == 1
    # A 5xx is an answer too: it also ends a run of deferrals.
    for outcome in (deferred(), deferred(), Outcome("failed", 1, "550 5.1.1 no such user"), deferred()):
        assert len(watch.settle("x@example.com", outcome)) == 1
    assert watch.refusing == ""


def test_a_stop_cuts_the_backoff_short_and_defers_the_recipient_in_hand() -> None:
    handler = Handler()
    handler.reply_rcpt("busy@example.com", "451 4.3.0 try again later", times=99)
    with smtp_server(handler) as server:
        stop = threading.Event()
        config = dataclasses.replace(
            DeliveryConfig(),
            method="smtp",
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            max_attempts=5,
            retry_backoff=600.0,
        )
        transport = Smtp(config, stop=stop, environ={})  # no fake sleep: it waits on `stop`

        def stop_once_tried() -> None:
            deadline = time.monotonic() + 10
            while handler.attempts["busy@example.com"] < 1 and time.monotonic() < deadline:
                time.sleep(0.001)
            stop.set()  # as SIGTERM to the scheduler does

        threading.Thread(target=stop_once_tried, daemon=True).start()
        started = time.monotonic()
        outcome = transport.send("d@example.com", "busy@example.com", MESSAGE)
        assert time.monotonic() - started < 5  # not the 600 s backoff
        assert (outcome.status, outcome.attempts, outcome.error) == (
            "deferred",
            1,
            "451 4.3.0 try again later",
        )
        assert handler.attempts["busy@example.com"] == 1


@pytest.mark.parametrize(
    ("reply", "refusing"),
    [
        ("550 5.7.1 relaying denied", True),
        ("554 5.7.1 sender address rejected", True),
        ("553 5.1.8 sender domain does not exist", True),
        ("550 relaying denied", True),  # no enhanced code: the basic one decides
        ("550 5.1.1 no such user", False),  # the recipient's own address
        ("552 5.2.2 mailbox full", False),  # the recipient's own mailbox
    ],
)
def test_refusals_with_one_code_from_the_first_recipients_are_the_servers(reply: str, refusing: bool) -> None:
    watch = RefusalWatch("SMTP x")
    recorded = [
        watch.settle(f"r{n}@example.com", Outcome("failed", 1, reply)) for n in range(REFUSALS_BEFORE_STOP)
    ]
    assert bool(watch.refusing) is refusing
    assert sum(len(r) for r in recorded) == (0 if refusing else REFUSALS_BEFORE_STOP)


def test_an_acceptance_or_another_code_releases_the_held_refusals() -> None:
    watch = RefusalWatch("SMTP x")
    assert watch.settle("a@example.com", Outcome("failed", 1, "550 5.7.1 denied")) == []
    released = watch.settle("b@example.com", Outcome("failed", 1, "554 5.7.0 other"))
    assert [r for r, _ in released] == ["a@example.com"]
    released = watch.settle("c@example.com", Outcome("sent", 1))
    assert [r for r, _ in released] == ["b@example.com", "c@example.com"]
    # Once the server accepted a message, a refusal is the recipient's: recorded at once.
    assert [r for r, _ in watch.settle("d@example.com", Outcome("failed", 1, "550 5.7.1 denied"))] == [
        "d@example.com"
    ]
    assert watch.end_of_digest() == ([], "")
