"""`digest run` delivering through a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import datetime as dt
import random
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest import subscriptions
from digest.cli import main
from digest.config import load_config
from digest.db import open_database
from digest.delivery import DEFERRALS_BEFORE_STOP, REFUSALS_BEFORE_STOP
from digest.state import State

from conftest import NOW, Site, article_text
from smtp_server import Handler, SmtpServer, smtp_delivery, smtp_server, write_run_config, write_subscribers

SUBSCRIBERS = [
    ("zhang@example.com", "张三", ""),
    ("li@example.org", "Li Si", "投融资与市场洞察"),
    ("wang@example.com", "Wang, Wu", "Policy;前沿模型与算法"),
]


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as running:
        yield running


def make_site(site: Site, server: SmtpServer, **delivery: object) -> Site:
    write_run_config(site.root, delivery=smtp_delivery(server, **delivery))
    write_subscribers(site.root, SUBSCRIBERS)
    site.add(
        "money.md", article_text("融资新闻", "2025-06-26T09:00:00+08:00", main_topics=["投融资与市场洞察"])
    )
    site.add(
        "model.md", article_text("模型发布", "2025-06-27T09:00:00+08:00", main_topics=["前沿模型与算法"])
    )
    site.add("rules.md", article_text("New rules", "2025-06-28T09:00:00+08:00", main_topics=["Policy"]))
    return site


def run(site: Site, now: dt.datetime = NOW) -> tuple[int, list[str]]:
    result = CliRunner().invoke(
        main, ["--config", str(site.root / "config.toml"), "run", "--now", now.isoformat()]
    )
    return result.exit_code, result.stdout.splitlines()


def deliveries(site: Site) -> dict[str, tuple[str, int, str]]:
    state = State.open(load_config(site.root / "config.toml").state.path)
    try:
        digest = state.digest_for_period("2025-W27")
        assert digest is not None
        return {d.recipient: (d.status, d.attempts, d.last_error) for d in state.deliveries(digest.id)}
    finally:
        state.close()


@pytest.mark.parametrize("connections", [1, 4])
def test_three_subscribers_receive_their_digest_with_the_right_headers(
    site: Site, server: SmtpServer, connections: int
) -> None:
    make_site(site, server, connections=connections)
    code, lines = run(site)
    assert code == 0
    assert lines[-1] == f"delivered via SMTP 127.0.0.1:{server.port}: 3 sent, 0 failed, 0 deferred"
    assert server.connections == min(connections, 3)  # one connection for the whole run, or one each
    copies = server.handler.by_recipient()
    assert sorted(copies) == sorted(email for email, _, _ in SUBSCRIBERS)
    titles = {"融资新闻", "模型发布", "New rules"}
    expected = {
        "zhang@example.com": titles,
        "li@example.org": {"融资新闻"},
        "wang@example.com": {"模型发布", "New rules"},
    }
    for address, name, _ in SUBSCRIBERS:
        [received] = copies[address]
        message = received.message
        assert received.mail_from == "digest@example.com"
        assert message["To"].addresses[0].addr_spec == address
        assert message["To"].addresses[0].display_name == name
        assert message["From"].addresses[0].addr_spec == "digest@example.com"
        assert message["Subject"] == "Test Site 周报 2025-W27"
        assert message["Message-ID"].endswith("@example.com>")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert address.replace("@", "%40") in message["List-Unsubscribe"]
        assert message.get_content_type() == "multipart/alternative"
        plain, html = (part.get_content() for part in message.iter_parts())
        shown = {title for title in titles if title in plain}
        assert shown == expected[address], address
        assert {title for title in titles if title in html} == expected[address]
        assert address.replace("@", "%40") in html  # the per-subscriber unsubscribe link, filled in
    assert len({r.message["Message-ID"] for r in server.received}) == 3


def test_a_4xx_is_retried_and_a_5xx_is_recorded_not_retried(site: Site, server: SmtpServer) -> None:
    make_site(site, server, max_attempts=3)
    server.handler.reply_rcpt("zhang@example.com", "451 4.7.1 greylisted, try again", times=2)
    server.handler.reply_rcpt("li@example.org", "550 5.1.1 no such user", times=99)
    code, lines = run(site)
    assert code == 4
    assert lines[-3:] == [
        f"delivered via SMTP 127.0.0.1:{server.port}: 2 sent, 1 failed, 0 deferred",
        "failed: li@example.org: 550 5.1.1 no such user",
        "suppressed: 1 address refused for good; nothing more is sent to them",
    ]
    assert server.handler.attempts == {"zhang@example.com": 3, "li@example.org": 1, "wang@example.com": 1}
    assert sorted(server.handler.by_recipient()) == ["wang@example.com", "zhang@example.com"]
    assert deliveries(site) == {
        "zhang@example.com": ("sent", 3, ""),
        "li@example.org": ("failed", 1, "550 5.1.1 no such user"),
        "wang@example.com": ("sent", 1, ""),
    }
    # The next run does not try the refused address again, and there is nothing new.
    code, _ = run(site, NOW + dt.timedelta(hours=1))
    assert code == 5
    assert server.handler.attempts["li@example.org"] == 1


def test_a_refusal_of_the_address_suppresses_it_one_of_the_message_does_not(
    site: Site, server: SmtpServer
) -> None:
    """550 5.1.1 (no such user) is about the address: no digest goes to it again, whatever the list
    says. 554 5.7.1 (refused as spam) is about this message: the next digest still goes."""
    make_site(site, server)
    server.handler.reply_rcpt("li@example.org", "550 5.1.1 no such user")
    server.handler.reply_data("wang@example.com", "554 5.7.1 message refused as spam")
    code, lines = run(site)
    assert code == 4
    assert lines[-1] == "suppressed: 1 address refused for good; nothing more is sent to them"
    site.add("next.md", article_text("Next week", "2025-07-02T09:00:00+08:00", main_topics=["Policy"]))
    code, lines = run(site, NOW + dt.timedelta(days=7))
    assert code == 0
    assert server.handler.attempts["li@example.org"] == 1  # never tried again
    week28 = {
        rcpt for item in server.received if "W28" in str(item.message["Subject"]) for rcpt in item.rcpt_tos
    }
    assert week28 == {"zhang@example.com", "wang@example.com"}
    result = CliRunner().invoke(main, ["--config", str(site.root / "config.toml"), "subscribers", "list"])
    assert "li@example.org  suppressed (hard-bounce)  " in result.stdout


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [
        ("550 5.1.1 no such user", True),
        ("550 5.1.10 recipient address rejected", True),
        ("551 5.1.6 user has moved", True),
        ("552 5.2.1 mailbox disabled", True),
        ("550 no such mailbox", True),
        ("553 mailbox name not allowed", True),
        ("552 5.2.2 mailbox full", False),
        ("554 5.7.1 refused as spam", False),
        ("552 5.3.4 message too big", False),
        ("554 transaction failed", False),
        ("451 4.7.1 greylisted", False),
        ("", False),
    ],
)
def test_which_refusals_are_about_the_address(reply: str, permanent: bool) -> None:
    from digest.bounces import is_permanent_refusal

    assert is_permanent_refusal(reply) is permanent


def test_a_recipient_deferred_by_4xx_is_retried_by_the_next_run(site: Site, server: SmtpServer) -> None:
    make_site(site, server, max_attempts=2)
    server.handler.reply_rcpt("wang@example.com", "452 4.2.2 mailbox full", times=2)
    code, lines = run(site)
    assert code == 4
    assert "deferred: wang@example.com: 452 4.2.2 mailbox full" in lines
    assert lines[-1] == "1 deferred recipient is retried by the next run"
    code, lines = run(site, NOW + dt.timedelta(hours=1))
    assert code == 0
    assert lines[1] == "digest 2025-W27: resumed its unfinished delivery"
    assert [len(v) for v in server.handler.by_recipient().values()] == [1, 1, 1]
    assert deliveries(site)["wang@example.com"] == ("sent", 3, "")


def test_an_unreachable_server_leaves_everyone_for_the_next_run(site: Site) -> None:
    with smtp_server() as gone:
        make_site(site, gone, max_attempts=2)
    code, lines = run(site)
    assert code == 4
    assert lines[-1].startswith(f"stopped: SMTP 127.0.0.1:{gone.port}: cannot connect")
    assert lines[-1].endswith("; 3 recipients are left for the next run")
    assert {status for status, _, _ in deliveries(site).values()} == {"pending"}


def test_a_missing_password_stops_the_run_before_anything_is_recorded(
    site: Site, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_site(site, server, smtp_username="digest", smtp_password_env="DIGEST_TEST_SMTP_PASSWORD")
    monkeypatch.delenv("DIGEST_TEST_SMTP_PASSWORD", raising=False)
    result = CliRunner().invoke(
        main, ["--config", str(site.root / "config.toml"), "run", "--now", NOW.isoformat()]
    )
    assert result.exit_code == 1
    assert "Error: " in result.stderr
    assert (
        "the environment variable DIGEST_TEST_SMTP_PASSWORD (the SMTP password) is not set" in result.stderr
    )
    assert State.open(load_config(site.root / "config.toml").state.path).history().periods == ()
    assert server.count == 0


def test_the_feeds_are_built_even_while_the_mail_server_is_down(site: Site) -> None:
    with smtp_server() as gone:
        make_site(site, gone, max_attempts=2)
    code, _ = run(site)  # records the W27 digest; nobody can be reached: all pending
    assert code == 4
    # Next day, a new article; the server is still down. The feeds go out before the resume fails.
    site.add("later.md", article_text("Later news", "2025-07-01T09:00:00+08:00", main_topics=["Policy"]))
    code, lines = run(site, NOW + dt.timedelta(days=1, hours=2))
    assert code == 4
    assert lines[0] == "feeds: 4 of 4 articles published in 4 feeds; 3 files changed"
    assert lines[1] == "digest 2025-W27: resumed its unfinished delivery"
    assert lines[-1].startswith(f"stopped: SMTP 127.0.0.1:{gone.port}: cannot connect")
    assert "Later news" in (site.root / "feeds" / "index.xml").read_text(encoding="utf-8")
    assert {status for status, _, _ in deliveries(site).values()} == {"pending"}


def left_for_the_next_run(line: str) -> int:
    match = re.search(r"; (\d+) recipients? (?:are|is) left for the next run$", line)
    assert match is not None, line
    return int(match.group(1))


@pytest.mark.parametrize("connections", [1, 4])
def test_a_server_deferring_everyone_stops_the_run_instead_of_backing_off_per_recipient(
    site: Site, server: SmtpServer, connections: int
) -> None:
    make_site(site, server, max_attempts=3, connections=connections)
    everyone = [f"reader{n:02d}@example.com" for n in range(20)]
    write_subscribers(site.root, [(address, "", "") for address in everyone])
    for address in everyone:
        server.handler.reply_rcpt(address, "451 4.3.0 queue full, try later", times=99)
    code, lines = run(site)
    assert code == 4
    assert lines[-1].startswith(
        f"stopped: SMTP 127.0.0.1:{server.port}: {DEFERRALS_BEFORE_STOP} recipients in a row were deferred "
        "(last: 451 4.3.0 queue full, try later); the server is refusing mail for now "
        "(the next run retries them and the rest); "
    )
    states = [status for status, _, _ in deliveries(site).values()]
    # Recorded deferred: those before the one that tipped it (it stays pending), and those the other
    # connections had in hand, their backoff cut short. Everyone else is pending, and said to be.
    recorded = states.count("deferred")
    assert DEFERRALS_BEFORE_STOP - 1 <= recorded <= DEFERRALS_BEFORE_STOP - 1 + connections - 1
    assert states.count("pending") == 20 - recorded == left_for_the_next_run(lines[-1])
    # Three recipients' backoffs (and one on each other connection), not twenty.
    assert sum(server.handler.attempts.values()) <= 3 * (DEFERRALS_BEFORE_STOP + connections - 1)
    if connections == 1:
        assert recorded == DEFERRALS_BEFORE_STOP - 1
        assert sum(server.handler.attempts.values()) == 3 * DEFERRALS_BEFORE_STOP
    # When the server is back, the next run sends to everyone, once.
    for address in everyone:
        server.handler._rcpt_replies.pop(address, None)
    code, _ = run(site, NOW + dt.timedelta(hours=1))
    assert code == 0
    assert sorted(server.handler.by_recipient()) == everyone
    assert all(len(copies) == 1 for copies in server.handler.by_recipient().values())


def test_one_busy_mailbox_is_retried_and_does_not_stop_the_run(site: Site, server: SmtpServer) -> None:
    make_site(site, server, max_attempts=2)
    server.handler.reply_rcpt("li@example.org", "450 4.2.1 mailbox busy", times=99)
    code, lines = run(site)
    assert code == 4
    assert "deferred: li@example.org: 450 4.2.1 mailbox busy" in lines
    assert not any(line.startswith("stopped:") for line in lines)
    assert server.handler.attempts["li@example.org"] == 2
    assert sorted(server.handler.by_recipient()) == ["wang@example.com", "zhang@example.com"]


def test_a_421_from_a_server_shutting_down_stops_the_run_at_once(site: Site, server: SmtpServer) -> None:
    make_site(site, server, max_attempts=5, retry_backoff=30.0, connections=1)
    server.handler.reply_rcpt("zhang@example.com", "421 4.3.2 shutting down", times=99)
    code, lines = run(site)  # no 30 + 60 + 120 + 240 s of backoff: a 421 on a fresh connection is final
    assert code == 4
    assert lines[-1] == (
        f"stopped: SMTP 127.0.0.1:{server.port}: 421 4.3.2 shutting down (the server is not taking mail "
        "now; the next run retries); 3 recipients are left for the next run"
    )
    assert server.handler.attempts["zhang@example.com"] == 1
    assert {status for status, _, _ in deliveries(site).values()} == {"pending"}


def test_a_421_on_every_fresh_connection_stops_all_four_at_once(site: Site, server: SmtpServer) -> None:
    make_site(site, server, max_attempts=5, retry_backoff=30.0, connections=4)
    write_subscribers(site.root, [(f"reader{n:02d}@example.com", "", "") for n in range(20)])
    server.handler.refuse_all = "421 4.3.2 shutting down"
    code, lines = run(site)  # no backoff on any of the four, and no fifth recipient tried
    assert code == 4
    assert lines[-1] == (
        f"stopped: SMTP 127.0.0.1:{server.port}: 421 4.3.2 shutting down (the server is not taking mail "
        "now; the next run retries); 20 recipients are left for the next run"
    )
    assert sum(server.handler.attempts.values()) == 4
    assert {status for status, _, _ in deliveries(site).values()} == {"pending"}


# ---------------------------------------------------------------- issue 10: one subscriber or one server
# must never cost the others their mail

INJECTED = "=?utf-8?q?Joe=0D=0ABcc:_x@y.z?="  # an encoded word that decodes to CRLF + a header


def test_a_name_that_decodes_to_a_line_break_is_made_safe_and_everyone_gets_the_digest(
    site: Site, server: SmtpServer
) -> None:
    make_site(site, server)
    rows = [(f"reader{n}@example.com", f"Reader {n}", "") for n in range(5)]
    rows[1] = ("joe@example.com", INJECTED, "")
    write_subscribers(site.root, rows)
    code, lines = run(site)
    assert code == 0, lines
    assert lines[-1] == f"delivered via SMTP 127.0.0.1:{server.port}: 5 sent, 0 failed, 0 deferred"
    [joe] = server.handler.by_recipient()["joe@example.com"]
    head = joe.data.split(b"\r\n\r\n", 1)[0]
    assert not any(line.startswith(b"Bcc") for line in head.split(b"\r\n"))
    assert joe.message["Bcc"] is None
    assert joe.message["To"].addresses[0].display_name == "Joe Bcc: x@y.z"
    assert joe.message["To"].addresses[0].addr_spec == "joe@example.com"
    assert sorted(server.handler.by_recipient()) == sorted(email for email, _, _ in rows)


def test_a_corrected_name_applies_to_recipients_not_yet_sent(site: Site, server: SmtpServer) -> None:
    import sqlite3

    with smtp_server() as gone:
        make_site(site, gone, max_attempts=1)
    code, _ = run(site)  # the digest is recorded; nobody can be reached: everyone pending
    assert code == 4
    # A state written by an earlier version stored the name as it was read, encoded word and all.
    path = load_config(site.root / "config.toml").state.path
    with sqlite3.connect(path) as db:
        db.execute("UPDATE deliveries SET name = ? WHERE recipient = 'li@example.org'", (INJECTED,))
    db.close()
    make_site(site, server)  # the server is back, and the list corrects Li's name
    corrected = ("li@example.org", "Li Si (corrected)", "")
    write_subscribers(site.root, [SUBSCRIBERS[0], corrected, SUBSCRIBERS[2]])
    code, lines = run(site, NOW + dt.timedelta(hours=1))
    assert code == 0, lines
    [li] = server.handler.by_recipient()["li@example.org"]
    assert li.message["To"].addresses[0].display_name == "Li Si (corrected)"
    assert {status for status, _, _ in deliveries(site).values()} == {"sent"}


def test_an_answer_to_the_end_of_data_slower_than_smtp_timeout_is_waited_for_not_resent(
    site: Site, server: SmtpServer
) -> None:
    make_site(site, server, smtp_timeout=0.2)  # and the default wait for the final reply: 10 minutes
    server.handler.answer_delay = 0.6
    code, lines = run(site)
    assert code == 0, lines
    assert [len(copies) for copies in server.handler.by_recipient().values()] == [1, 1, 1]
    assert {status for status, _, _ in deliveries(site).values()} == {"sent"}


def test_no_answer_to_the_end_of_data_is_an_unknown_outcome_never_sent_twice_in_a_run(
    site: Site, server: SmtpServer
) -> None:
    make_site(site, server, smtp_timeout=0.2, smtp_data_timeout=0.3, connections=1)
    server.handler.answer_delay = 0.8  # longer than the wait for the final reply: the server has it
    code, lines = run(site)
    assert code == 4
    assert lines[-1] == (
        f"stopped: SMTP 127.0.0.1:{server.port}: no reply to the end of DATA for zhang@example.com within "
        "0.3 s (the server may have accepted it; it is sent again once, by the next run); "
        "2 recipients are left for the next run"
    )
    server.wait_for(1)
    assert {r: len(c) for r, c in server.handler.by_recipient().items()} == {"zhang@example.com": 1}
    states = deliveries(site)
    assert states["zhang@example.com"][0] == "deferred"
    assert states["li@example.org"][0] == states["wang@example.com"][0] == "pending"
    # The next run sends it once more; when that one is unanswered too, it is given up, not sent a third
    # time: at most one duplicate, as for a run killed in flight.
    code, lines = run(site, NOW + dt.timedelta(hours=1))
    assert code == 4
    server.wait_for(2)
    states = deliveries(site)
    assert states["zhang@example.com"][0] == "failed"
    server.handler.answer_delay = 0.0
    code, lines = run(site, NOW + dt.timedelta(hours=2))
    assert code == 0, lines
    copies = {r: len(c) for r, c in server.handler.by_recipient().items()}
    assert copies == {"zhang@example.com": 2, "li@example.org": 1, "wang@example.com": 1}
    zhang = server.handler.by_recipient()["zhang@example.com"]
    assert zhang[0].message["Message-ID"] == zhang[1].message["Message-ID"]


@pytest.mark.parametrize("connections", [1, 4])
def test_a_relay_refusing_every_recipient_leaves_everyone_pending(
    site: Site, server: SmtpServer, connections: int
) -> None:
    make_site(site, server, connections=connections)
    everyone = [f"reader{n:02d}@example.com" for n in range(10)]
    write_subscribers(site.root, [(address, "", "") for address in everyone])
    server.handler.refuse_all = "550 5.7.1 relaying denied"
    code, lines = run(site)
    assert code == 4
    assert lines[-1] == (
        f"stopped: SMTP 127.0.0.1:{server.port}: the first {REFUSALS_BEFORE_STOP} recipients were all "
        "refused with 550 5.7.1 relaying denied; the server is refusing this sender, not these recipients "
        "(check [delivery] and [digest] from; the next run retries); 10 recipients are left for the next run"
    )
    # Three refusals, and at most one more on each other connection, in flight when the third came.
    attempts = sum(server.handler.attempts.values())
    assert REFUSALS_BEFORE_STOP <= attempts <= REFUSALS_BEFORE_STOP + connections - 1
    assert {status for status, _, _ in deliveries(site).values()} == {"pending"}
    server.handler.refuse_all = ""  # the relay is fixed: everyone gets it, once
    code, _ = run(site, NOW + dt.timedelta(hours=1))
    assert code == 0
    assert sorted(server.handler.by_recipient()) == everyone


def test_two_subscribers_both_refused_with_one_policy_code_stay_pending(
    site: Site, server: SmtpServer
) -> None:
    make_site(site, server)
    write_subscribers(site.root, [("a@example.com", "", ""), ("b@example.com", "", "")])
    server.handler.refuse_all = "554 5.7.1 sender address rejected"
    code, lines = run(site)
    assert code == 4
    assert lines[-1].endswith("; 2 recipients are left for the next run")
    assert {status for status, _, _ in deliveries(site).values()} == {"pending"}


def test_refusals_followed_by_an_acceptance_are_the_recipients_own(site: Site, server: SmtpServer) -> None:
    make_site(site, server)
    server.handler.reply_rcpt("zhang@example.com", "550 5.7.1 recipient rejected by policy", times=9)
    server.handler.reply_rcpt("li@example.org", "550 5.7.1 recipient rejected by policy", times=9)
    code, lines = run(site)
    assert code == 4
    assert lines[-3:] == [
        f"delivered via SMTP 127.0.0.1:{server.port}: 1 sent, 2 failed, 0 deferred",
        "failed: zhang@example.com: 550 5.7.1 recipient rejected by policy",
        "failed: li@example.org: 550 5.7.1 recipient rejected by policy",
    ]
    assert deliveries(site)["zhang@example.com"][0] == "failed"
    assert deliveries(site)["wang@example.com"][0] == "sent"


def test_a_connection_dropped_after_the_end_of_data_is_not_resent_in_the_run_and_the_rest_go_out(
    site: Site, server: SmtpServer
) -> None:
    make_site(site, server)
    server.handler.drop_after_taking.append("zhang@example.com")
    code, lines = run(site)
    assert code == 4
    assert (
        "deferred: zhang@example.com: no reply to the end of DATA before the connection dropped; the server "
        "may have accepted it"
    ) in lines
    assert not any(line.startswith("stopped:") for line in lines)
    assert [len(c) for c in server.handler.by_recipient().values()] == [1, 1, 1]  # no second copy now
    # The next run sends it once more: the one duplicate "at most one" allows, with its Message-ID.
    code, _ = run(site, NOW + dt.timedelta(hours=1))
    assert code == 0
    zhang = server.handler.by_recipient()["zhang@example.com"]
    assert len(zhang) == 2 and zhang[0].message["Message-ID"] == zhang[1].message["Message-ID"]
    assert deliveries(site)["zhang@example.com"][0] == "sent"


# ---------------------------------------------------------------- issue 11: several connections at once


class Watching(Handler):
    """A server that, at each MAIL, looks up in the state database whether the message this connection
    carried before is recorded as sent, and counts the messages it is taking at once."""

    def __init__(self, state: Path) -> None:
        super().__init__(data_delay=0.02)
        self.state = state
        self.unrecorded: list[str] = []  # a connection's message not recorded when it began the next
        self.taking = self.most_at_once = 0

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        carried = [r.rcpt_tos[0] for r in self.received if r.connection == session.digest_connection]
        if carried:
            db = sqlite3.connect(f"{self.state.as_uri()}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT status FROM deliveries WHERE recipient = ?", carried[-1:]).fetchone()
            finally:
                db.close()
            if row != ("sent",):
                self.unrecorded.append(carried[-1])
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.taking += 1
        self.most_at_once = max(self.most_at_once, self.taking)
        try:
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.taking -= 1


def test_four_connections_send_at_once_each_recording_a_message_before_sending_the_next(site: Site) -> None:
    handler = Watching(site.root / "state" / "state.sqlite3")
    with smtp_server(handler) as server:
        make_site(site, server, connections=4)
        everyone = write_subscribers(site.root, 60)
        code, lines = run(site)
        assert code == 0, lines
        assert lines[-1] == f"delivered via SMTP 127.0.0.1:{server.port}: 60 sent, 0 failed, 0 deferred"
        carried = Counter(item.connection for item in server.received)
        assert len(carried) == 4 and min(carried.values()) >= 5, carried
        assert handler.most_at_once == 4
        assert handler.unrecorded == []
        assert sorted(server.handler.by_recipient()) == sorted(everyone)
        assert all(len(copies) == 1 for copies in server.handler.by_recipient().values())
        assert len({item.message["Message-ID"] for item in server.received}) == 60


def test_unsubscribes_during_a_send_over_four_connections_skip_everyone_not_yet_sent(site: Site) -> None:
    """Whoever unsubscribes before the courier reaches them gets nothing: each recipient is looked up
    right before their message goes to a connection. Who that can be is known at the server: the list
    goes out in order, and each connection holds at most one message the server has not seen yet."""
    state = site.root / "state" / "state.sqlite3"
    chooser = random.Random(11)
    handler = Handler(data_delay=0.01)
    accept = handler.handle_DATA
    later: list[str] = []  # unsubscribed before the courier could have reached them
    sent_already: list[str] = []  # unsubscribed after their digest was accepted

    async def handle_DATA(server: Any, session: Any, envelope: Any) -> str:
        reply = await accept(server, session, envelope)
        if handler.count % 5 == 0 and handler.count <= 40:
            seen = len(handler.attempts)
            # Handed out so far: those the server has seen, skipped ones, and one in hand per connection.
            unseen = everyone[seen + len(later) + 4 :]
            chosen = chooser.sample([a for a in unseen if a not in later], 3)
            gone = chooser.choice([a for a in everyone[:seen] if a in handler.attempts])
            db = open_database(state)
            try:
                for address in [*chosen, gone]:
                    subscriptions.unsubscribe(db, address, "one-click", NOW)
            finally:
                db.close()
            later.extend(chosen)
            sent_already.append(gone)
        return reply

    handler.handle_DATA = handle_DATA  # type: ignore[method-assign]
    with smtp_server(handler) as server:
        make_site(site, server, connections=4)
        everyone = write_subscribers(site.root, 100)
        code, lines = run(site)
        assert code == 0, lines
        copies = server.handler.by_recipient()
        assert len(later) == 24
        assert sorted(copies) == sorted(set(everyone) - set(later))
        assert all(len(items) == 1 for items in copies.values())
        assert set(sent_already) <= set(copies)
        cancelled = {
            recipient for recipient, (status, _, _) in deliveries(site).items() if status == "cancelled"
        }
        assert cancelled == set(later)
        assert lines[-1] == (
            f"delivered via SMTP 127.0.0.1:{server.port}: 76 sent, 0 failed, 0 deferred, "
            "24 cancelled (unsubscribed)"
        )
