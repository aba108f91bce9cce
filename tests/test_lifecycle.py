"""A subscriber's life across real `digest run`s, with the real subscriber server (`jobs.subscriber_app`
on waitress, 127.0.0.1) and a real SMTP server (aiosmtpd) receiving the confirmation mail and the digest.

Only the clock is fake: the server's `now()` is a value the test sets, each run is given its `now`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import http.client
import random
import re
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from click.testing import CliRunner

from digest import jobs
from digest import subscriptions as store
from digest.cli import main
from digest.config import load_config
from digest.exits import run_status
from digest.tokens import Tokens
from digest.web import BackgroundServer, bind

from conftest import NOW, Site, article_text
from smtp_server import Handler, Received, SmtpServer, smtp_delivery, smtp_server, write_run_config
from smtp_server import write_subscribers as write_csv

KEY = "lifecycle-key-" + "q" * 40
WEEK = dt.timedelta(days=7)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass
class Service:
    site: Site
    smtp: SmtpServer
    port: int

    @property
    def config(self) -> Any:
        return load_config(self.site.config_path)

    def request(self, method: str, path: str, body: str = "") -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body or None, FORM if method == "POST" else {})
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8")
        finally:
            connection.close()

    def digests(self, subject: str) -> dict[str, list[Received]]:
        """The digest messages with `subject` in their Subject, by recipient."""
        found: dict[str, list[Received]] = {}
        for item in self.smtp.received:
            if subject in str(item.message["Subject"]):
                for rcpt in item.rcpt_tos:
                    found.setdefault(rcpt, []).append(item)
        return found

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.config.state.path, isolation_level=None)


def write_config(site: Site, smtp: SmtpServer, port: int, extra: str = "", connections: int = 4) -> None:
    write_run_config(site.root, delivery=smtp_delivery(smtp, connections=connections))
    with site.config_path.open("a", encoding="utf-8") as out:
        out.write(
            f'\n[server]\npublic_url = "http://127.0.0.1:{port}/"\nsecret_env = "DIGEST_TEST_KEYS"\n{extra}'
        )


@contextlib.contextmanager
def service(
    site: Site, monkeypatch: pytest.MonkeyPatch, handler: Handler | None = None, connections: int = 4
) -> Iterator[Service]:
    monkeypatch.setenv("DIGEST_TEST_KEYS", KEY)
    with smtp_server(handler) as smtp:
        sock = bind("127.0.0.1", 0)
        port = int(sock.getsockname()[1])
        write_config(site, smtp, port, connections=connections)
        app = jobs.subscriber_app(load_config(site.config_path), lambda: NOW)
        server = BackgroundServer(app, sock).start()
        mailer = app.extensions["digest_mailer"]
        try:
            yield Service(site, smtp, port)
        finally:
            server.stop()
            mailer.close()


def parse(item: Received) -> EmailMessage:
    message = email.message_from_bytes(item.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def raw_header(data: bytes, name: bytes) -> bytes:
    """The header as the bytes on the wire, folded lines joined (no decoding at all)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    match = re.search(rb"^" + name + rb": ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.MULTILINE)
    assert match is not None, name
    return match.group(1).replace(b"\r\n", b"")


def unsubscribe_url(item: Received) -> str:
    header = raw_header(item.data, b"List-Unsubscribe").decode("ascii")
    url = header.split(">", 1)[0].lstrip("<")
    return urlsplit(url).path


def test_unconfirmed_gets_nothing_confirmed_gets_it_one_click_stops_it_and_no_import_brings_it_back(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(site.root, [("listed@example.com", "Listed", ""), ("stays@example.com", "Stays", "")])
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00", main_topics=["AI"]))
    with service(site, monkeypatch) as web:
        # Two readers sign up from the site's embedded form; one never confirms.
        for address in ("reader@example.com", "never@example.com"):
            assert web.request("POST", "/subscribe", urlencode({"email": address}))[0] == 200
        web.smtp.wait_for(2)
        confirm = {item.rcpt_tos[0]: parse(item) for item in web.smtp.received}
        assert sorted(confirm) == ["never@example.com", "reader@example.com"]

        first = jobs.run(web.config, NOW)
        assert (run_status(first), first.recipients) == (0, 2)
        assert sorted(web.digests("2025-W27")) == ["listed@example.com", "stays@example.com"]

        # The reader presses the confirmation button; the next digest goes to them too.
        body = confirm["reader@example.com"].get_body(("plain",))
        assert body is not None
        link = re.search(r"http://127\.0\.0\.1:\d+(/confirm/[A-Za-z0-9_.\-]+)", body.get_content())
        assert link is not None
        assert web.request("POST", link.group(1))[0] == 200
        site.add("b.md", article_text("Beta", "2025-07-02T10:00:00+08:00", main_topics=["AI"]))
        second = jobs.run(web.config, NOW + WEEK)
        assert (run_status(second), second.recipients) == (0, 3)
        received = web.digests("2025-W28")
        assert sorted(received) == ["listed@example.com", "reader@example.com", "stays@example.com"]

        # Its links are the service's, signed for the reader: plain ASCII, and the footer's work.
        [item] = received["reader@example.com"]
        header = raw_header(item.data, b"List-Unsubscribe")
        assert header.isascii() and b"reader" not in header  # a token, not the address
        path = unsubscribe_url(item)
        assert path.startswith("/unsubscribe/")
        text = parse(item).get_body(("plain",))
        assert text is not None
        preferences = re.search(r"http://127\.0\.0\.1:\d+(/preferences/[A-Za-z0-9_.\-]+)", text.get_content())
        assert f"http://127.0.0.1:{web.port}{path}" in text.get_content()
        assert preferences is not None
        status, page = web.request("GET", preferences.group(1))
        assert status == 200 and "reader@example.com" in page

        # One click (RFC 8058) for the reader and for a subscriber of the CSV.
        listed = unsubscribe_url(web.digests("2025-W28")["listed@example.com"][0])
        for url in (path, listed):
            assert web.request("POST", url, ONE_CLICK) == web.request("POST", url, ONE_CLICK)
            assert web.request("POST", url, ONE_CLICK)[0] == 200

        site.add("c.md", article_text("Gamma", "2025-07-09T10:00:00+08:00", main_topics=["AI"]))
        third = jobs.run(web.config, NOW + 2 * WEEK)
        assert (run_status(third), sorted(web.digests("2025-W29"))) == (0, ["stays@example.com"])

        # Re-importing the old CSV, by hand or by the next run, brings nobody back.
        result = CliRunner().invoke(
            main,
            ["--config", str(site.config_path), "subscribers", "import", str(site.root / "subscribers.csv")],
        )
        assert (result.exit_code, result.output) == (
            0,
            f"imported {site.root / 'subscribers.csv'}: 0 added, 0 activated, 1 kept, "
            "1 suppressed (not brought back)\n",
        )
        site.add("d.md", article_text("Delta", "2025-07-16T10:00:00+08:00", main_topics=["AI"]))
        fourth = jobs.run(web.config, NOW + 3 * WEEK)
        assert (run_status(fourth), sorted(web.digests("2025-W30"))) == (0, ["stays@example.com"])

        # Every address got each digest at most once; the unconfirmed one got none and was purged.
        for address, items in web.digests("周报").items():
            subjects = [str(parse(i)["Subject"]) for i in items]
            assert len(subjects) == len(set(subjects)), address
        assert "never@example.com" not in web.digests("周报")
        db = web.db()
        try:
            assert store.subscriber(db, "never@example.com") is None
            events = [
                (row[0], row[1], row[2])
                for row in db.execute("SELECT address, event, method FROM consent_log")
            ]
        finally:
            db.close()
        assert ("never@example.com", "subscribe-request", "") in events  # the log outlives the signup
        assert ("reader@example.com", "confirm", "") in events
        assert ("reader@example.com", "unsubscribe", "one-click") in events
        assert ("listed@example.com", "unsubscribe", "one-click") in events


def test_with_an_https_service_list_unsubscribe_is_one_click_and_ascii(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_run_config(site.root)
    write_csv(site.root, [("Reader@Example.com", "读者", "")])
    with site.config_path.open("a", encoding="utf-8") as out:
        out.write(
            '\n[server]\npublic_url = "https://example.com/newsletter/"\nsecret_env = "DIGEST_TEST_KEYS"\n'
        )
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00", main_topics=["AI"]))
    monkeypatch.setenv("DIGEST_TEST_KEYS", KEY)
    assert run_status(jobs.run(load_config(site.config_path), NOW)) == 0
    [path] = (site.root / "outbox").glob("*.eml")
    data = path.read_bytes()
    unsubscribe, preferences = Tokens([KEY]).list_links("reader@example.com")
    assert raw_header(data, b"List-Unsubscribe") == (
        f"<https://example.com/newsletter/unsubscribe/{unsubscribe}>,"
        " <mailto:digest@example.com?subject=unsubscribe>"
    ).encode("ascii")
    assert raw_header(data, b"List-Unsubscribe-Post") == b"List-Unsubscribe=One-Click"
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    assert html is not None
    assert f'href="https://example.com/newsletter/preferences/{preferences}"' in html.get_content()
    # The same input gives the same bytes: the tokens carry no time.
    path.unlink()
    (site.root / "state").rename(site.root / "state-first")
    assert run_status(jobs.run(load_config(site.config_path), NOW)) == 0
    assert path.read_bytes() == data


def test_a_run_without_the_signing_key_stops_before_recording_anything(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_run_config(site.root)
    write_csv(site.root, [("reader@example.com", "", "")])
    with site.config_path.open("a", encoding="utf-8") as out:
        out.write(
            '\n[server]\npublic_url = "https://example.com/newsletter/"\nsecret_env = "DIGEST_TEST_KEYS"\n'
        )
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00"))
    monkeypatch.delenv("DIGEST_TEST_KEYS", raising=False)
    result = CliRunner().invoke(main, ["--config", str(site.config_path), "run", "--now", NOW.isoformat()])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: {site.config_path}: the environment variable DIGEST_TEST_KEYS holding the signing key "
        "is not set"
    )
    assert not (site.root / "outbox").exists()


@pytest.mark.slow
def test_200_one_click_unsubscribes_during_a_send_to_1000_skip_everyone_not_yet_sent(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    addresses = write_csv(site.root, 1000)
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00"))
    chooser = random.Random(8058)
    targets = chooser.sample(addresses, 200)
    # 20 bursts of 10 concurrent POSTs, each while the run waits for the server's answer to a DATA.
    # (The last by the 742nd message: at least 800 go out, whatever is skipped.)
    bursts = {20 + 38 * n: targets[10 * n : 10 * n + 10] for n in range(20)}
    unsubscribed_at: dict[str, str] = {}  # address → the last one sent to before it unsubscribed
    answers: list[int] = []
    handler = Handler()
    accept = handler.handle_DATA
    tokens = Tokens([KEY])
    port_box: list[int] = []

    def one_click(address: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port_box[0], timeout=30)
        try:
            path = "/unsubscribe/" + tokens.list_links(address)[0]
            connection.request("POST", path, ONE_CLICK, FORM)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    async def handle_DATA(server: Any, session: Any, envelope: Any) -> str:
        reply = await accept(server, session, envelope)
        accepted = handler.count
        burst = bursts.get(accepted)
        if burst:
            with ThreadPoolExecutor(max_workers=len(burst)) as pool:
                answers.extend(pool.map(one_click, burst))
            unsubscribed_at.update(dict.fromkeys(burst, envelope.rcpt_tos[0]))
        return reply

    handler.handle_DATA = handle_DATA  # type: ignore[method-assign]
    # One connection, so the list order is the sending order (test_smtp has the same over four).
    with service(site, monkeypatch, handler, connections=1) as web:
        port_box.append(web.port)
        report = jobs.run(web.config, NOW)
        assert answers == [200] * 200
        assert (report.failed, report.deferred, report.left, report.stopped) == ([], [], 0, "")
        assert run_status(report) == 0
        position = {address: index for index, address in enumerate(addresses)}
        # Sent in list order: everyone after the last one sent before the unsubscribe was not yet sent.
        skipped = {a for a, last in unsubscribed_at.items() if position[a] > position[last]}
        got = web.digests("2025-W27")
        assert all(len(items) == 1 for items in got.values())  # nothing twice
        assert (
            set(got) == set(addresses) - skipped
        )  # nothing lost, every unsubscribed one not yet sent skipped
        assert (report.sent, report.cancelled) == (1000 - len(skipped), len(skipped))
        assert 40 < len(skipped) < 160  # both kinds happened: already sent, and skipped
        db = web.db()
        try:
            cancelled = {
                row[0]
                for row in db.execute(
                    "SELECT recipient FROM deliveries WHERE status = 'cancelled' AND last_error = ?",
                    ("suppressed (unsubscribe)",),
                )
            }
            one_clicks = db.execute(
                "SELECT count(*) FROM consent_log WHERE event = 'unsubscribe' AND method = 'one-click'"
            ).fetchone()[0]
        finally:
            db.close()
        assert cancelled == skipped and one_clicks == 200
