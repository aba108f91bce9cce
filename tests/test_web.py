"""The subscriber pages through a real HTTP client, against waitress on 127.0.0.1, mail to aiosmtpd.

Only the clock is fake: `Clock` is the app's `now()`, moved by the tests; nothing sleeps.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import http.client
import io
import json
import re
import smtplib
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from digest import subscriptions as store
from digest.jinja import sandboxed_environment
from digest.service import SubscriberService
from digest.subscriptions import Limits
from digest.tokens import Tokens
from digest.web import CONTENT_SECURITY_POLICY, BackgroundServer, Mailer, WebSettings, bind, create_app

from smtp_server import SmtpServer, smtp_server

NOW = dt.datetime(2025, 6, 30, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
KEY = "test-key-" + "k" * 40
TOPICS = ["AI", "投融资与市场洞察", "算力基础设施与芯片"]
FORM = "application/x-www-form-urlencoded"
CONFIRM_LINK = re.compile(r"http://127\.0\.0\.1:\d+/confirm/[A-Za-z0-9_.\-]+")


class Clock:
    """The app's clock; tests move it. Thread-safe: the server reads it from its worker threads."""

    def __init__(self, start: dt.datetime = NOW) -> None:
        self._moment = start
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self._moment

    def advance(self, **delta: float) -> None:
        with self._lock:
            self._moment += dt.timedelta(**delta)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str


@dataclass
class Web:
    url: str
    port: int
    clock: Clock
    smtp: SmtpServer
    service: SubscriberService
    db: sqlite3.Connection  # the test's own connection to the same file
    mailer: Mailer

    def request(
        self, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body, headers or {})
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read().decode("utf-8"))
        finally:
            connection.close()

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, fields: dict[str, str] | Sequence[tuple[str, str]] | None = None) -> Reply:
        return self.request("POST", path, urlencode(fields or {}), {"Content-Type": FORM})

    def flush(self) -> None:
        """Wait until every confirmation mail queued so far was handed to the SMTP server."""
        assert self.mailer.flush(timeout=10), "the mailer did not hand over its messages"

    def mails(self) -> list[EmailMessage]:
        self.flush()
        return [item.message for item in self.smtp.received]

    def state(self) -> tuple[object, ...]:
        """Everything the store holds, to show that a request changed nothing."""
        return tuple(
            tuple(self.db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall())
            for table in ("subscribers", "suppressions", "consent_log", "rate_events")
        )

    def consent(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(store.export_consent(self.db))))

    def stamp(self) -> str:
        page = self.get("/subscribe").body
        match = re.search(r'name="stamp" value="([^"]+)"', page)
        assert match is not None
        return match.group(1)

    def subscribe(self, email: str, *, wait: bool = True, **fields: str) -> Reply:
        """Fill in the page's form as a person would: load it, take some seconds, post it."""
        stamp = self.stamp()
        if wait:
            self.clock.advance(seconds=5)
        return self.post("/subscribe", {"email": email, "stamp": stamp, **fields})

    def confirm_path(self, message: EmailMessage) -> str:
        body = message.get_body(("plain",))
        assert body is not None
        match = CONFIRM_LINK.search(body.get_content())
        assert match is not None, body.get_content()
        return urlsplit(match.group(0)).path

    def tokens(self, address: str) -> tuple[str, str]:
        unsubscribe, preferences = self.service.list_tokens(address)
        return "/unsubscribe/" + unsubscribe, "/preferences/" + preferences

    def active(self) -> list[str]:
        return [s.address for s in store.recipients(self.db)]


def smtp_send(smtp: SmtpServer) -> Callable[[EmailMessage], None]:
    def send(message: EmailMessage) -> None:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            client.send_message(message)

    return send


@contextlib.contextmanager
def running(tmp_path: Path, limits: Limits | None = None, language: str = "zh-CN") -> Iterator[Web]:
    path = tmp_path / f"state-{uuid.uuid4().hex[:8]}.sqlite3"

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    clock = Clock()
    tokens = Tokens([KEY])
    service = SubscriberService(connect, tokens, lambda: TOPICS, limits or Limits(requests_per_ip=100_000))
    with smtp_server() as smtp:
        sock = bind("127.0.0.1", 0)
        port = int(sock.getsockname()[1])
        url = f"http://127.0.0.1:{port}/"
        settings = WebSettings(url, "Test Site", "Test Site <digest@example.com>", language=language)
        app = create_app(
            service, send=smtp_send(smtp), templates=sandboxed_environment(None), settings=settings, now=clock
        )
        server = BackgroundServer(app, sock).start()
        db = connect()
        store.migrate(db)
        mailer = app.extensions["digest_mailer"]
        try:
            yield Web(url, port, clock, smtp, service, db, mailer)
        finally:
            server.stop()
            mailer.close()
            db.close()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    with running(tmp_path) as app:
        yield app


def subscribed(web: Web, email: str = "reader@example.com", **fields: str) -> str:
    """Subscribe and confirm `email` through the pages; returns its normalised address."""
    before = len(web.mails())
    web.subscribe(email, **fields)
    web.smtp.wait_for(before + 1)
    reply = web.post(web.confirm_path(web.mails()[-1]))
    assert reply.status == 200, reply.body
    return store.normalise_address(email)


# ---------------------------------------------------------------- every answer


def test_every_page_has_a_strict_csp_no_script_no_cookie_and_no_referrer(web: Web) -> None:
    address = subscribed(web)
    unsubscribe, preferences = web.tokens(address)
    for path in ["/subscribe", "/subscribe?lang=en", unsubscribe, preferences, "/confirm/bad", "/nowhere"]:
        reply = web.get(path)
        assert reply.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert (
            "script-src" not in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        )
        assert reply.headers["Referrer-Policy"] == "no-referrer"
        assert reply.headers["Cache-Control"] == "no-store"
        assert reply.headers.get("Set-Cookie") is None
        assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
        assert (
            "<script" not in reply.body.lower() and " style=" not in reply.body and "<style" not in reply.body
        )
        assert reply.body.startswith("<!DOCTYPE html>")
    assert web.get("/nowhere").status == 404
    css = web.get("/web.css")
    assert (css.status, css.headers["Content-Type"]) == (200, "text/css; charset=utf-8")


def test_the_page_speaks_the_language_asked_for(web: Web) -> None:
    assert '<html lang="zh-CN">' in web.get("/subscribe").body
    english = web.get("/subscribe", **{"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.body and "Subscribe to Test Site" in english.body
    assert english.headers["Content-Language"] == "en"
    assert '<html lang="en">' in web.get("/subscribe?lang=en").body


# ---------------------------------------------------------------- subscribe


def test_a_signup_sends_one_rfc5322_confirmation_with_topics_time_link_and_ignore_note(web: Web) -> None:
    reply = web.subscribe(
        "Reader@Example.com", name="张三", language="en", scope="some", topics="AI", form_version="v7"
    )
    assert reply.status == 200
    web.smtp.wait_for(1)
    [received] = web.smtp.received
    assert received.rcpt_tos == ["reader@example.com"]
    message = received.message
    assert message["To"] == "张三 <reader@example.com>"
    assert message["From"] == "Test Site <digest@example.com>"
    assert message["Subject"] == "Confirm your subscription to Test Site"
    assert message["Date"] == "Mon, 30 Jun 2025 08:00:05 +0800"
    assert re.fullmatch(r"<confirm\.[0-9a-f]{32}@example\.com>", message["Message-ID"])
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "text/plain"
    for name, value in message.items():
        assert "\n" not in str(value) and "\r" not in str(value), name
    for line in received.data.split(b"\r\n"):
        assert len(line) <= 998
    text = message.get_content().replace("\r\n", "\n")
    assert (
        "On 2025-06-30 08:00 UTC+08:00, someone asked to subscribe reader@example.com to Test Site." in text
    )
    assert "Topics chosen: AI\n" in text
    assert "If it was not you, ignore this mail" in text
    assert CONFIRM_LINK.search(text)
    # Nothing is active before the confirmation.
    assert web.active() == []
    [request] = web.consent()
    assert (request["event"], request["ip"], request["source"]) == (
        "subscribe-request",
        "127.0.0.1",
        "subscribe-page",
    )
    assert json.loads(request["details"])["form_version"] == "v7"


def test_the_answer_is_the_same_page_whatever_the_address(web: Web) -> None:
    subscribed(web, "active@example.com")
    web.post(web.tokens("active@example.com")[0], {"List-Unsubscribe": "One-Click"})
    subscribed(web, "still@example.com")
    web.clock.advance(hours=1)
    answers = {
        what: web.subscribe(email).body
        for what, email in [
            ("new", "new@example.com"),
            ("pending", "new@example.com"),
            ("active", "still@example.com"),
            ("suppressed", "active@example.com"),
            ("invalid", "not an address"),
            ("injection", "a@example.com\r\nBcc: all@example.com"),
        ]
    }
    assert len(set(answers.values())) == 1, answers
    honeypot = web.post("/subscribe", {"email": "bot@example.com", "website": "http://spam.example"})
    assert honeypot.body == answers["new"]


def test_who_gets_a_confirmation_new_pending_and_suppressed_but_not_active_bots_or_invalid(web: Web) -> None:
    subscribed(web, "active@example.com")
    subscribed(web, "gone@example.com")
    web.post(web.tokens("gone@example.com")[0], {"List-Unsubscribe": "One-Click"})
    sent_before = len(web.mails())
    web.clock.advance(hours=1)
    web.subscribe("active@example.com")
    web.subscribe("gone@example.com")
    web.subscribe("new@example.com")
    web.subscribe("not an address")
    web.subscribe("victim@example.com\r\nBcc: all@example.com")
    web.post("/subscribe", {"email": "bot@example.com", "website": "filled"})
    assert [m["To"] for m in web.mails()[sent_before:]] == ["gone@example.com", "new@example.com"]
    assert web.active() == ["active@example.com"]  # a request alone brings no one back


def test_a_form_posted_back_within_two_seconds_or_with_a_forged_stamp_fails_silently(web: Web) -> None:
    stamp = web.stamp()
    web.clock.advance(seconds=1.9)
    fast = web.post("/subscribe", {"email": "fast@example.com", "stamp": stamp})
    forged = web.post("/subscribe", {"email": "forged@example.com", "stamp": stamp[:-3] + "abc"})
    foreign = web.post(
        "/subscribe", {"email": "foreign@example.com", "stamp": web.tokens("x@example.com")[0]}
    )
    web.clock.advance(seconds=0.2)
    slow = web.post("/subscribe", {"email": "human@example.com", "stamp": stamp})
    assert fast.body == forged.body == foreign.body == slow.body
    assert [m["To"] for m in web.mails()] == ["human@example.com"]


def test_an_embedded_form_without_a_stamp_works(web: Web) -> None:
    web.post("/subscribe", {"email": "embedded@example.com", "form_version": "site-footer-2025"})
    assert [m["To"] for m in web.mails()] == ["embedded@example.com"]
    assert web.consent()[0]["source"] == "embedded-form"


def test_a_name_cannot_inject_a_header(web: Web) -> None:
    web.subscribe("reader@example.com", name="Eve\r\nBcc: all@example.com")
    web.smtp.wait_for(1)
    [received] = web.smtp.received
    assert received.rcpt_tos == ["reader@example.com"]
    assert received.message["Bcc"] is None
    assert received.message["To"] == '"Eve Bcc: all@example.com" <reader@example.com>'


def test_ten_kilobyte_fields_get_the_same_page_and_nothing_long_is_stored(web: Web) -> None:
    normal = web.subscribe("first@example.com").body
    big = "x" * 10_240
    huge_email = web.subscribe(big + "@example.com")
    huge_fields = web.subscribe(
        "second@example.com", name=big, language=big, topics=big, scope="some", form_version=big
    )
    assert huge_email.body == huge_fields.body == normal
    assert huge_email.status == huge_fields.status == 200
    web.request("POST", "/subscribe", urlencode({"website": "", "email": "a@example.com"}) + "&x=" + big, {})
    web.flush()
    pending = store.subscriber(web.db, "second@example.com")
    assert pending is not None and len(pending.name) == store.MAX_NAME and pending.topics == frozenset()
    assert max(len(row["details"]) for row in web.consent()) < 1000
    too_big = web.request(
        "POST", "/subscribe", "email=a@example.com&x=" + "y" * 70_000, {"Content-Type": FORM}
    )
    assert too_big.status == 413 and "<script" not in too_big.body


def test_a_thousand_signups_of_one_address_send_one_confirmation_mail(web: Web) -> None:
    for _ in range(1000):
        web.post("/subscribe", {"email": "reader@example.com"})
        web.clock.advance(milliseconds=100)  # 100 s in all: inside the ten-minute limit
    assert [m["To"] for m in web.mails()] == ["reader@example.com"]


def test_requests_beyond_the_per_ip_limit_get_the_same_page_and_no_mail(tmp_path: Path) -> None:
    with running(tmp_path, Limits(requests_per_ip=3)) as web:
        answers = {web.post("/subscribe", {"email": f"r{i}@example.com"}).body for i in range(5)}
        assert len(answers) == 1
        assert [m["To"] for m in web.mails()] == [f"r{i}@example.com" for i in range(3)]


# ---------------------------------------------------------------- confirm


def test_opening_the_confirmation_link_changes_nothing_pressing_its_button_does(web: Web) -> None:
    web.subscribe("reader@example.com")
    web.smtp.wait_for(1)
    path = web.confirm_path(web.mails()[0])
    before = web.state()
    page = web.get(path)
    page_again = web.request("HEAD", path)
    assert page.status == page_again.status == 200
    assert '<form method="post">' in page.body and "<button" in page.body
    assert web.state() == before and web.active() == []
    web.clock.advance(minutes=5)
    confirmed = web.post(path)
    assert confirmed.status == 200 and "Location" not in confirmed.headers
    assert web.active() == ["reader@example.com"]
    assert "/preferences/" in confirmed.body
    assert web.consent()[-1]["event"] == "confirm" and web.consent()[-1]["ip"] == "127.0.0.1"
    assert web.post(path).status == 200  # twice: still subscribed, nothing new logged
    assert [row["event"] for row in web.consent()] == ["subscribe-request", "confirm"]


def test_an_expired_tampered_or_foreign_confirmation_changes_nothing(web: Web) -> None:
    web.subscribe("reader@example.com")
    web.smtp.wait_for(1)
    path = web.confirm_path(web.mails()[0])
    unsubscribe, preferences = web.tokens("reader@example.com")
    before = web.state()
    tampered = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
    assert web.post(tampered).status == 400
    assert web.post("/confirm/" + unsubscribe.rsplit("/", 1)[1]).status == 400
    assert web.post("/confirm/" + preferences.rsplit("/", 1)[1]).status == 400
    web.clock.advance(days=7, seconds=1)
    expired = web.post(path)
    assert expired.status == 410 and "/subscribe" in expired.body
    assert web.get(path).status == 410
    assert web.state() == before


# ---------------------------------------------------------------- unsubscribe (RFC 8058)


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "----digest-test-boundary-7MA4YWxkTrZu0gW"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe_as_gmail_sends_it(web: Web, encoding: str) -> None:
    address = subscribed(web)
    path, _ = web.tokens(address)
    if encoding == "urlencoded":
        body, content_type = b"List-Unsubscribe=One-Click", FORM
    else:
        body, content_type = multipart({"List-Unsubscribe": "One-Click"})
    first = web.request("POST", path, body, {"Content-Type": content_type})
    assert first.status == 200
    assert "Location" not in first.headers and first.headers.get("Set-Cookie") is None
    assert web.active() == [] and store.is_suppressed(web.db, address)
    last = web.consent()[-1]
    assert (last["event"], last["method"], last["ip"]) == ("unsubscribe", "one-click", "127.0.0.1")
    # Idempotent: the same answer, and still one unsubscribe in the log.
    second = web.request("POST", path, body, {"Content-Type": content_type})
    assert (second.status, second.body) == (first.status, first.body)
    assert [row["event"] for row in web.consent()].count("unsubscribe") == 1


def test_a_valid_token_for_an_address_already_gone_answers_the_same(web: Web) -> None:
    known = subscribed(web, "known@example.com")
    known_answer = web.post(web.tokens(known)[0], {"List-Unsubscribe": "One-Click"})
    gone_answer = web.post(web.tokens("never-listed@example.com")[0], {"List-Unsubscribe": "One-Click"})
    assert gone_answer.status == known_answer.status == 200
    assert gone_answer.body == known_answer.body.replace(known, "never-listed@example.com")
    assert store.is_suppressed(web.db, "never-listed@example.com")


def test_a_tampered_or_foreign_unsubscribe_token_changes_nothing(web: Web) -> None:
    address = subscribed(web)
    path, preferences = web.tokens(address)
    signed = path.rsplit(".", 1)
    before = web.state()
    for bad in [
        signed[0] + "." + signed[1][::-1],
        "/unsubscribe/" + preferences.rsplit("/", 1)[1],
        "/unsubscribe/" + web.stamp(),
        "/unsubscribe/" + Tokens(["another-" + "z" * 40]).make("unsubscribe", address),
    ]:
        reply = web.post(bad, {"List-Unsubscribe": "One-Click"})
        assert reply.status == 400, bad
    assert web.state() == before
    assert web.active() == [address]


def test_the_unsubscribe_page_changes_nothing_until_its_button_is_pressed(web: Web) -> None:
    address = subscribed(web)
    path, preferences = web.tokens(address)
    before = web.state()
    page = web.get(path)
    assert page.status == 200
    assert '<form method="post">' in page.body and preferences in page.body
    assert web.state() == before
    pressed = web.post(path)
    assert pressed.status == 200 and web.active() == []
    assert web.consent()[-1]["method"] == "page"


# ---------------------------------------------------------------- preferences


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def test_preferences_change_topics_language_and_name_and_each_change_is_logged(web: Web) -> None:
    address = subscribed(web, name="Li")
    _, path = web.tokens(address)
    page = web.get(path)
    assert page.status == 200 and 'value="Li"' in page.body
    fields = [
        ("csrf", csrf_of(page.body)),
        ("name", "Li Si"),
        ("language", "en"),
        ("scope", "some"),
        ("topics", "AI"),
        ("topics", "算力基础设施与芯片"),
        ("topics", "not a topic"),
    ]
    saved = web.post(path, fields)
    assert saved.status == 200 and "Saved." in saved.body and '<html lang="en">' in saved.body
    [active] = store.recipients(web.db)
    assert (active.name, active.language, active.topics) == ("Li Si", "en", {"ai", "算力基础设施与芯片"})
    change = web.consent()[-1]
    assert change["event"] == "preferences"
    assert json.loads(change["details"])["topics"] == [[], ["ai", "算力基础设施与芯片"]]
    everything = web.post(path, [("csrf", csrf_of(saved.body)), ("name", "Li Si"), ("scope", "all")])
    assert everything.status == 200
    assert store.recipients(web.db)[0].topics == frozenset()


def test_preferences_refuse_a_post_without_a_valid_csrf_token(web: Web) -> None:
    address = subscribed(web, "reader@example.com")
    other = subscribed(web, "other@example.com")
    _, path = web.tokens(address)
    _, other_path = web.tokens(other)
    before = web.state()
    other_csrf = csrf_of(web.get(other_path).body)
    for csrf in ["", "garbage", other_csrf, web.tokens(address)[0].rsplit("/", 1)[1]]:
        reply = web.post(path, {"csrf": csrf, "name": "Mallory", "scope": "all"})
        assert reply.status == 400
    web.clock.advance(days=1, seconds=1)
    stale = csrf_of(web.get(path).body)
    web.clock.advance(days=1, seconds=1)
    assert web.post(path, {"csrf": stale, "name": "Mallory", "unsubscribe": "1"}).status == 400
    assert web.state() == before


def test_the_preferences_page_can_unsubscribe(web: Web) -> None:
    address = subscribed(web)
    _, path = web.tokens(address)
    reply = web.post(path, {"csrf": csrf_of(web.get(path).body), "unsubscribe": "1"})
    assert reply.status == 200 and web.active() == []
    assert web.consent()[-1]["method"] == "page"
    assert "/subscribe" in web.get(path).body  # now it offers to subscribe again


def test_no_get_or_head_changes_anything(web: Web) -> None:
    address = subscribed(web)
    web.subscribe("pending@example.com")
    web.smtp.wait_for(2)
    confirm = web.confirm_path(web.mails()[-1])
    unsubscribe, preferences = web.tokens(address)
    before = web.state()
    for method in ("GET", "HEAD"):
        for path in [
            "/subscribe",
            confirm,
            unsubscribe,
            preferences,
            "/web.css",
            unsubscribe + "?List-Unsubscribe=One-Click",
        ]:
            assert web.request(method, path).status == 200, (method, path)
    assert web.state() == before


def test_a_refused_confirmation_mail_is_logged_and_the_next_one_still_goes(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    web.smtp.handler.reply_rcpt("refused@example.com", "550 5.1.1 no such user")
    refused = web.subscribe("refused@example.com")
    accepted = web.subscribe("reader@example.com")
    assert refused.status == accepted.status == 200 and refused.body == accepted.body
    assert [m["To"] for m in web.mails()] == ["reader@example.com"]
    assert any(
        "the confirmation mail to refused@example.com was not sent" in record.getMessage()
        and "no such user" in record.getMessage()
        for record in caplog.records
    )
