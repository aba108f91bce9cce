"""The subscriber pages: a Flask app on waitress, every page a Jinja2 template, no state changed on GET.

`create_app` takes what it needs as plain values: the service (tokens and the store, `service.py`), a
`send(message)` for the confirmation mail, the template environment (`jinja.sandboxed_environment`:
the site's overrides first, then the shipped `web_*` templates), the settings and a `now()`; it reads
no config and no clock of its own. The routes, under `settings.public_url`:

- `GET /subscribe` the form, with a signed timestamp; `POST /subscribe` always the same answer page,
  whatever the address (new, pending, active, suppressed, invalid) and whatever the honeypot, the
  timestamp (posted back within `min_form_age` fails silently) or the rate limits said.
- `GET /confirm/<token>` a page with one button; `POST` activates (a scanner that opens links changes
  nothing).
- `POST /unsubscribe/<token>` RFC 8058 one-click: `List-Unsubscribe=One-Click` as urlencoded or
  multipart, no cookie, no CSRF token, 200 and no redirect, idempotent. `GET` shows a button posting
  to the same URL and a link to the preferences.
- `GET/POST /preferences/<token>` topics (or all), language, name, unsubscribe; the form carries a
  signed CSRF token bound to the address.

Every answer carries a strict Content-Security-Policy (no script at all, styles from `web.css` only),
`Referrer-Policy: no-referrer` (the URLs hold tokens) and `Cache-Control: no-store`. Confirmation mails
go out from one background thread, so an answer takes as long whether a mail was due or not.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import queue
import signal
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import waitress
import waitress.server
from flask import Flask, Response, request
from jinja2 import Environment
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from .content import topic_key
from .errors import DigestError
from .i18n import localisation
from .service import Link, SubscriberService
from .subscriptions import LANGUAGES, SignupRequest, normalise_language
from .text import one_line

log = logging.getLogger(__name__)

Send = Callable[[EmailMessage], None]
Now = Callable[[], dt.datetime]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HONEYPOT = "website"  # a field people never see (hidden by CSS) and bots fill in
MAX_BODY = 64 * 1024  # bytes of a request body: a form is a few hundred

# The words of the pages and the mail, by the name templates use: English msgids of the gettext
# catalogue (`locales/`, context "subscriber pages"), translated through i18n.py.
MESSAGES: dict[str, str] = {
    "subscribe_title": "Subscribe to {site}",
    "email": "Email address",
    "name": "Name (optional)",
    "language": "Language",
    "topics": "Topics",
    "all_topics": "All topics",
    "chosen_topics": "Only these topics",
    "subscribe": "Subscribe",
    "honeypot": "Leave this empty",
    "consent": "We use this address only to send the {site} digest; every mail has a one-click unsubscribe.",
    "check_inbox_title": "Check your inbox",
    "check_inbox": "If this address can subscribe, we have sent it a confirmation email. "
    "Follow its link to finish subscribing.",
    "confirm_title": "Confirm your subscription",
    "confirm_text": "Press the button to confirm that {address} subscribes to {site}.",
    "confirm_button": "Confirm",
    "confirmed_title": "Subscribed",
    "confirmed": "{address} is subscribed to {site}.",
    "manage": "Manage your preferences",
    "unsubscribe_title": "Unsubscribe",
    "unsubscribe_text": "Press the button and {address} will no longer receive {site}.",
    "unsubscribe_button": "Unsubscribe",
    "unsubscribed_title": "Unsubscribed",
    "unsubscribed": "{address} will receive no more mail from {site}.",
    "resubscribe": "Subscribe again",
    "preferences_title": "Your preferences",
    "save": "Save",
    "saved": "Saved.",
    "unchanged": "Nothing changed.",
    "not_subscribed": "{address} is not subscribed to {site}.",
    "invalid_title": "Invalid link",
    "invalid": "This link is not valid. Use the whole link from the email.",
    "expired_title": "Expired link",
    "expired": "This link has expired. Subscribe again and we will send a new confirmation email.",
    "stale_form": "The form has expired; reload the page and try again.",
    "error_title": "Something went wrong",
    "mail_subject": "Confirm your subscription to {site}",
    "mail_intro": "On {requested}, someone asked to subscribe {address} to {site}.",
    "mail_topics": "Topics chosen",
    "mail_confirm": "If it was you, open this link and press Confirm (it works for 7 days):",
    "mail_ignore": "If it was not you, ignore this mail: nothing is subscribed without confirmation, "
    "and we will not write again.",
    "all": "all topics",
}
CONTEXT = "subscriber pages"
LANGUAGE_NAMES = {"zh-CN": "中文", "en": "English"}


@dataclass(frozen=True)
class WebSettings:
    public_url: str  # where the reverse proxy exposes the app, ending in "/"
    site_title: str
    sender: str  # the From of the confirmation mail ([digest] from)
    language: str = "zh-CN"  # of pages and mails when the subscriber's is not known
    proxy_hops: int = 0  # reverse proxies in front whose X-Forwarded-For is trusted
    min_form_age: dt.timedelta = dt.timedelta(seconds=2)
    form_version: str = "subscribe-page-1"  # logged with each request from the page's form


@functools.lru_cache(maxsize=8)
def words(language: str) -> dict[str, str]:
    """`MESSAGES` in `language`, from the gettext catalogue."""
    loc = localisation(language)
    return {key: loc.pgettext(CONTEXT, english) for key, english in MESSAGES.items()}


# ---------------------------------------------------------------- the confirmation mail


def confirmation_message(
    *,
    render: Callable[[str, Mapping[str, Any]], str],
    strings: Mapping[str, str],
    settings: WebSettings,
    address: str,
    name: str,
    topics: Sequence[str],
    requested: dt.datetime,
    confirm_url: str,
) -> EmailMessage:
    """The confirmation mail (RFC 5322, every header one line): topics, request time, link. Pure."""
    message = EmailMessage()
    message["From"] = one_line(settings.sender)
    message["To"] = Address(display_name=one_line(name), addr_spec=address)
    message["Subject"] = one_line(strings["mail_subject"].format(site=settings.site_title))
    message["Date"] = format_datetime(requested)
    domain = settings.sender.rpartition("@")[2].strip(" >") or "localhost"
    digest = hashlib.sha256(confirm_url.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<confirm.{digest}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    body = render(
        "web_confirm_mail.txt.j2",
        {
            "t": strings,
            "site": settings.site_title,
            "address": address,
            "topics": list(topics),
            "requested": requested.strftime("%Y-%m-%d %H:%M %Z").strip(),
            "confirm_url": confirm_url,
        },
    )
    message.set_content(body, charset="utf-8", cte="quoted-printable")
    return message


class Mailer:
    """Hands messages to `send` from one background thread, in order; `flush` waits for it."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: queue.Queue[EmailMessage | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, message: EmailMessage) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="digest-mailer", daemon=True)
                self._thread.start()
        self._queue.put(message)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every message queued so far was handed over (or failed); False on timeout."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: not self._queue.unfinished_tasks, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Send what is queued, then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                self._queue.task_done()
                return
            try:
                self._send(message)
            except (DigestError, OSError) as exc:  # smtplib's errors are OSErrors
                log.error("the confirmation mail to %s was not sent: %s", message["To"], exc)
            finally:
                self._queue.task_done()


# ---------------------------------------------------------------- the app


def create_app(
    service: SubscriberService,
    *,
    send: Send,
    templates: Environment,
    settings: WebSettings,
    now: Now,
) -> Flask:
    if not settings.public_url.endswith("/"):
        raise ValueError("public_url must end with /")
    app = Flask("digest.web", static_folder=None, template_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, MAX_FORM_PARTS=200)
    env = templates
    mailer = Mailer(send)
    app.extensions["digest_mailer"] = mailer
    base = settings.public_url

    def render(name: str, context: Mapping[str, Any]) -> str:
        return env.get_template(name).render(context)

    def shown(language: str) -> str:
        """The language a page or mail is written in: the one asked for, else the site's, else English."""
        return language if language in LANGUAGES else normalise_language(settings.language) or "en"

    def strings(language: str) -> dict[str, str]:
        return words(shown(language))

    def page(template: str, language: str, status: int = 200, **context: Any) -> Response:
        language = shown(language)
        t = strings(language)
        html = render(
            template,
            {"t": t, "lang": language, "site": settings.site_title, "base": base, **context},
        )
        response = Response(html, status=status, mimetype="text/html")
        response.headers["Content-Language"] = language
        return response

    def message_page(language: str, key: str, status: int = 200, **fields: Any) -> Response:
        t = strings(language)
        values = {"site": settings.site_title, **fields}
        return page(
            "web_message.html.j2",
            language,
            status,
            title=t[f"{key}_title"] if f"{key}_title" in t else t["error_title"],
            text=t.get(key, "").format(**values),
            links=fields.get("links", []),
        )

    def bad_link(link: Link, language: str) -> Response:
        if link.status == "expired":
            return message_page(
                language, "expired", 410, links=[(base + "subscribe", strings(language)["resubscribe"])]
            )
        return message_page(language, "invalid", 400)

    def client_ip() -> str:
        return request.remote_addr or ""

    def page_language() -> str:
        asked = normalise_language(request.args.get("lang", ""))
        if asked:
            return asked
        best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
        return normalise_language(best or "") or settings.language

    def chosen_topics(form: Mapping[str, Any], names: Sequence[str]) -> frozenset[str]:
        known = {topic_key(name) for name in names}
        if form.get("scope") == "all":
            return frozenset()
        picked = frozenset(topic_key(value) for value in request.form.getlist("topics")[: len(known)])
        return picked & known

    def topic_names(keys: frozenset[str], names: Sequence[str]) -> list[str]:
        return [name for name in names if topic_key(name) in keys]

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = page(
            "web_message.html.j2",
            page_language(),
            error.code or 500,
            title=f"{error.code} {error.name}",
            text="",
            links=[],
        )
        if error.code == 405:
            response.headers["Allow"] = ", ".join(getattr(error, "valid_methods", None) or [])
        return response

    @app.get("/web.css")
    def stylesheet() -> Response:
        assert env.loader is not None
        source, _, _ = env.loader.get_source(env, "web.css")
        return Response(source, mimetype="text/css")

    @app.get("/subscribe")
    def subscribe_form() -> Response:
        language = page_language()
        return page(
            "web_subscribe.html.j2",
            language,
            topics=service.topics(),
            languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
            stamp=service.form_stamp(now()),
            form_version=settings.form_version,
            honeypot=HONEYPOT,
        )

    @app.post("/subscribe")
    def subscribe() -> Response:
        form = request.form
        moment = now()
        language = normalise_language(form.get("language", "")) or page_language()
        answer = message_page(language, "check_inbox")
        if form.get(HONEYPOT, ""):
            return answer
        stamp = form.get("stamp")
        if stamp is not None:
            age = service.form_age(stamp, moment)
            if age is None or age < settings.min_form_age:
                return answer
        names = service.topics()
        signup_request = SignupRequest(
            address=form.get("email", ""),
            name=form.get("name", ""),
            language=language,
            topics=chosen_topics(form, names),
            ip=client_ip(),
            user_agent=request.headers.get("User-Agent", ""),
            source="subscribe-page" if stamp is not None else "embedded-form",
            form_version=form.get("form_version", ""),
        )
        result = service.subscribe(signup_request, moment)
        if result.confirm_token:
            signup = result.signup
            t = strings(signup.language or language)
            mailer.put(
                confirmation_message(
                    render=render,
                    strings=t,
                    settings=settings,
                    address=signup.address,
                    name=signup.name,
                    topics=topic_names(signup.topics, names) or [t["all"]],
                    requested=moment,
                    confirm_url=base + "confirm/" + result.confirm_token,
                )
            )
        return answer

    @app.get("/confirm/<token>")
    def confirm_page(token: str) -> Response:
        link = service.confirm_link(token, now())
        language = link.language or page_language()
        if link.status != "valid":
            return bad_link(link, language)
        if link.subscriber is not None and link.subscriber.status == "active":
            return confirmed_page(link, language)
        return page("web_confirm.html.j2", language, address=link.address)

    def confirmed_page(link: Link, language: str) -> Response:
        _, preferences = service.list_tokens(link.address)
        t = strings(language)
        return message_page(
            language,
            "confirmed",
            address=link.address,
            links=[(base + "preferences/" + preferences, t["manage"])],
        )

    @app.post("/confirm/<token>")
    def confirm(token: str) -> Response:
        link, status = service.confirm(token, client_ip(), now())
        language = link.language or page_language()
        if link.status != "valid":
            return bad_link(link, language)
        if status == "unknown":
            return message_page(language, "invalid", 400)
        return confirmed_page(link, language)

    @app.get("/unsubscribe/<token>")
    def unsubscribe_page(token: str) -> Response:
        link = service.unsubscribe_link(token, now())
        language = link.language or page_language()
        if link.status != "valid":
            return bad_link(link, language)
        _, preferences = service.list_tokens(link.address)
        return page(
            "web_unsubscribe.html.j2",
            language,
            address=link.address,
            preferences_url=base + "preferences/" + preferences,
        )

    @app.post("/unsubscribe/<token>")
    def unsubscribe(token: str) -> Response:
        one_click = request.form.get("List-Unsubscribe", "") == "One-Click"
        link = service.unsubscribe(token, "one-click" if one_click else "page", client_ip(), now())
        language = link.language or page_language()
        if link.status != "valid":
            return bad_link(link, language)
        return unsubscribed_page(link, language)

    def unsubscribed_page(link: Link, language: str) -> Response:
        t = strings(language)
        return message_page(
            language, "unsubscribed", address=link.address, links=[(base + "subscribe", t["resubscribe"])]
        )

    def preferences_page(link: Link, notice: str = "", status: int = 200) -> Response:
        language = link.language or page_language()
        current = link.subscriber
        if current is None or current.status != "active":
            t = strings(language)
            return message_page(
                language,
                "not_subscribed",
                address=link.address,
                links=[(base + "subscribe", t["resubscribe"])],
            )
        return page(
            "web_preferences.html.j2",
            language,
            status,
            address=link.address,
            name=current.name,
            current_language=current.language or settings.language,
            languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
            topics=[(name, topic_key(name) in current.topics) for name in service.topics()],
            all_topics=not current.topics,
            csrf=service.csrf_token(link.address, now()),
            notice=notice,
        )

    @app.get("/preferences/<token>")
    def preferences(token: str) -> Response:
        link = service.preferences_link(token, now())
        if link.status != "valid":
            return bad_link(link, page_language())
        return preferences_page(link)

    @app.post("/preferences/<token>")
    def save_preferences(token: str) -> Response:
        form = request.form
        link, status = service.save_preferences(
            token,
            form.get("csrf", ""),
            name=form.get("name", ""),  # cleaned where it is stored
            language=form.get("language", ""),
            topics=chosen_topics(form, service.topics()),
            unsubscribe=bool(form.get("unsubscribe")),
            ip=client_ip(),
            now=now(),
        )
        if link.status != "valid":
            return bad_link(link, page_language())
        language = link.language or page_language()
        if status == "unsubscribed":
            return unsubscribed_page(link, language)
        t = strings(language)
        if status == "csrf":
            return preferences_page(link, t["stale_form"], 400)
        return preferences_page(link, t["saved"] if status == "saved" else t["unchanged"])

    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)  # type: ignore[method-assign]
    return app


# ---------------------------------------------------------------- the editors' preview

PreviewPage = Callable[[], tuple[bytes, int, str]]  # (the page, its version, its script nonce)


def preview_csp(nonce: str) -> str:
    """The preview page's policy: its one script by nonce, the email in a same-origin frame."""
    return (
        "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
        f"script-src 'nonce-{nonce}'; connect-src 'self'; frame-src 'self'; base-uri 'none'; "
        "form-action 'none'"
    )


def create_preview_app(current: PreviewPage, allowed_hosts: Callable[[], set[str]]) -> Flask:
    """The editors' preview: `/` (the page `current` gives) and `/version` (for the page's reload
    script), nothing else, and only to a Host header naming this machine (a rebinding DNS name must not
    reach drafts). The page itself is rendered by `preview.py` from its templates."""
    app = Flask("digest.preview", static_folder=None, template_folder=None)

    def plain(text: str, status: int) -> Response:
        return Response(text, status=status, mimetype="text/plain")

    @app.before_request
    def known_host() -> Response | None:
        host = request.environ.get("HTTP_HOST")
        if host is not None and host.lower() not in allowed_hosts():
            return plain("unknown host\n", 421)
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if error.code == 404:
            return plain("not found\n", 404)
        return plain(f"{error.code} {error.name}\n", error.code or 500)

    @app.get("/")
    def page() -> Response:
        body, _, nonce = current()
        response = Response(body, mimetype="text/html")
        response.headers["Content-Security-Policy"] = preview_csp(nonce)
        return response

    @app.get("/version")
    def version() -> Response:
        return plain(f"{current()[1]}\n", 200)

    return app


# ---------------------------------------------------------------- serving

# waitress' limits for both apps: an idle or stalled connection (slowloris) is closed after
# `channel_timeout` seconds and costs no worker thread meanwhile (the pool is bounded: `threads`);
# poll() rather than select(), so more than 1,024 sockets are no error.
SERVER_LIMITS: dict[str, Any] = {
    "channel_timeout": 30,
    "cleanup_interval": 5,
    "connection_limit": 1000,
    "asyncore_use_poll": True,
    "ident": "digest",
}


def serve(app: Flask, host: str, port: int, threads: int = 4) -> None:
    """Run the app on waitress until SIGTERM or Ctrl-C (what `digest serve` calls), then send the
    confirmation mails still queued and return: `systemctl stop` ends it cleanly."""
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        waitress.serve(app, host=host, port=port, threads=threads, **SERVER_LIMITS)
    finally:
        signal.signal(signal.SIGTERM, previous)
        mailer = app.extensions.get("digest_mailer")
        if isinstance(mailer, Mailer):
            mailer.close()


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)  # waitress' loop catches it and shuts its workers down


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket (port 0: a free one), so the app can be told its URL before it serves."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


class Server:
    """waitress serving `app` on `sock`: `run` in the calling thread until `stop` (from any thread)."""

    def __init__(self, app: Flask, sock: socket.socket, threads: int = 4) -> None:
        self._server: Any = waitress.server.create_server(
            app, sockets=[sock], threads=threads, **SERVER_LIMITS
        )
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self.port = int(self.address[1])

    def run(self) -> None:
        self._server.run()

    def stop(self) -> None:
        """Make `run` return (the sockets close from the loop's own thread), then end the workers."""
        server = self._server
        try:
            server.trigger.pull_trigger(lambda: server.asyncore.close_all(server._map))
        except OSError:
            # A worker's pull woke the loop between queueing the thunk and writing to the pipe: the
            # thunk already ran and closed the pipe. Anything else is a real error.
            if not server.trigger._closed:
                raise

    def close(self) -> None:
        self._server.task_dispatcher.shutdown()


class BackgroundServer:
    """waitress serving `app` on `sock` from a thread of this process; `stop` ends it and its threads."""

    def __init__(self, app: Flask, sock: socket.socket, threads: int = 4) -> None:
        self._server = Server(app, sock, threads)
        self.port = self._server.port
        self._thread = threading.Thread(target=self._server.run, name="digest-web", daemon=True)

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.stop()
        self._thread.join(timeout)
        self._server.close()
