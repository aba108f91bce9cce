"""The editors' preview: the digest that would go out next, recording nothing.

`write_preview` writes its HTML to a file. `serve` shows it on a local web server: the editor's warnings
in a panel above the email (outside it, so the email itself is exactly what subscribers get), the email
in a sandboxed frame, and a poll thread that re-renders whenever an article, a template or the config
changes; the page asks `/version` every second and reloads itself when it moved. The server (Flask on
waitress, like the subscriber pages: `web.create_preview_app`) answers two fixed paths (`/` and
`/version`) and nothing else: it never serves a file from disk.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from . import jobs
from .config import Config, load_config
from .errors import DigestError
from .jinja import render_template, template_folders
from .message import fill_recipient
from .output import write_atomic
from .selection import Digest, period_of
from .templating import RenderedDigest, kb, render_digest
from .web import Server, bind, create_preview_app

log = logging.getLogger(__name__)

# Whose address fills the per-recipient links in the preview.
PREVIEW_RECIPIENT = "subscriber@example.com"
# …and the subscriber service's links ([server]): a token that is none, so the links stay visibly samples.
PREVIEW_TOKENS = ("preview", "preview")
GMAIL_CLIP_BYTES = 102_000
# The size line is a warning past this share of `[digest] max_bytes` (below it, information).
NEAR_BUDGET = 0.9


@dataclass(frozen=True)
class Preview:
    """The next digest as an editor sees it: the email, and outside it what to know and what to fix."""

    html: str  # the email, a sample recipient's links filled in (or a page saying nothing goes out)
    period: str  # the period whose digest this is
    notes: tuple[str, ...]  # information: which digest this is, the size budget used
    warnings: tuple[str, ...]  # worth fixing before it goes out; nothing here stops the digest
    notice: str = ""  # this period's digest was already sent (also in `notes`): shown prominently


# ---------------------------------------------------------------- what the preview shows


def editor_warnings(digest: Digest, rendered: RenderedDigest, config: Config) -> list[str]:
    """What an editor should look at before it goes out; nothing here stops the digest."""
    found = []
    limit = config.digest.title_max_chars
    for item in (*digest.items, *digest.overflow):
        article = item.article
        if not article.summary:
            found.append(f"{article.source}: no summary in the front matter (one is cut from the body)")
        if not item.image:
            found.append(f"{article.source}: no featured image")
        if len(article.title) > limit:
            found.append(
                f"{article.source}: title is {len(article.title)} characters, over {limit} "
                "([digest] title_max_chars)"
            )
    found.extend(rendered.warnings)
    return found


def size_note(rendered: RenderedDigest, config: Config) -> tuple[str, bool]:
    """The size budget used, and whether that is a warning: over NEAR_BUDGET of `[digest] max_bytes`."""
    size, budget = rendered.encoded_html_bytes, config.digest.max_bytes
    share = f"{size / budget:.0%} of " if budget else ""
    line = (
        f"size: HTML {kb(size)}, {share}{kb(budget)} ([digest] max_bytes, encoded; "
        f"Gmail clips at about {kb(GMAIL_CLIP_BYTES)})"
    )
    return line, bool(budget) and size > NEAR_BUDGET * budget


def which_digest(config: Config, now: dt.datetime, periods: tuple[str, ...]) -> tuple[str, list[str], str]:
    """The period the next digest is for, the lines that say so, and the notice when this period's
    digest was already sent (`periods`: of the digests recorded so far).

    `digest run` sends one digest per period: once this period's is recorded, what the preview shows
    goes out next period, and is labelled so.
    """
    now = config.site.localize(now)
    when = now.astimezone(config.site.tz).isoformat(timespec="minutes")
    current = period_of(now, config)
    if current not in periods:
        return current, [f"previewing the digest of {current}, as `digest run` would send it at {when}"], ""
    upcoming = period_of(now + dt.timedelta(days=7), config)
    notice = f"this week's digest ({current}) was sent; this is what next week's ({upcoming}) holds so far"
    return upcoming, [f"previewing the digest of {upcoming}, as it stands at {when}", notice], notice


def build_preview(config: Config, now: dt.datetime) -> Preview:
    """The next digest's email HTML, which period it is for, and the editor's notes; records nothing."""
    upcoming = jobs.upcoming(config, now)  # reads the state once, never writes it
    period, notes, notice = which_digest(config, now, upcoming.periods)
    digest = upcoming.digest
    if digest is None:
        notes.append("nothing new: no digest would go out")
        return Preview(message_page("digest preview", notes, config), period, tuple(notes), (), notice)
    digest = replace(digest, period=period)
    rendered = render_digest(digest, config)
    warnings = editor_warnings(digest, rendered, config)
    size, near = size_note(rendered, config)
    if near:
        warnings.insert(0, f"{size}: over {NEAR_BUDGET:.0%} of the budget")
    else:
        notes.append(size)
    html = fill_recipient(rendered.html, PREVIEW_RECIPIENT, PREVIEW_TOKENS)
    return Preview(html, period, tuple(notes), tuple(dict.fromkeys(warnings)), notice)


def write_preview(config: Config, now: dt.datetime, out: Path) -> Preview:
    """Write the preview HTML to `out` atomically; the notes and warnings are for the caller to show."""
    result = build_preview(config, now)
    write_atomic(out, result.html.encode("utf-8"))
    return result


def message_page(title: str, lines: list[str], config: Config | None) -> str:
    """A page of plain lines (templates/preview_message.html.j2), shown instead of an email."""
    return render_template(config, "preview_message.html.j2", {"title": title, "lines": lines})


# ---------------------------------------------------------------- the preview page


def render_page(
    title: str,
    email_html: str,
    warnings: list[str] | tuple[str, ...],
    version: int,
    nonce: str,
    error: bool = False,
    *,
    preview: Preview | None = None,
    config: Config | None = None,
) -> str:
    """The preview page (templates/preview.html.j2): which digest it is (with the size used) and the
    warnings above, the email in a sandboxed frame (its HTML as `srcdoc`)."""
    notes = None
    if preview is not None:
        notes = {"period": preview.period, "lines": preview.notes, "notice": preview.notice}
    # Links in the email open in a new tab rather than inside the frame.
    framed = email_html.replace("<head>", '<head><base target="_blank">', 1)
    context = {
        "title": title,
        "notes": notes,
        "error": error,
        "warnings": list(warnings),
        "srcdoc": framed,
        "version": version,
        "nonce": nonce,
    }
    return render_template(config, "preview.html.j2", context)


# ---------------------------------------------------------------- the server


def _now() -> dt.datetime:
    # A long-running preview follows the clock like the scheduler does (unless --now pinned it).
    return dt.datetime.now(dt.UTC)


class LivePreview:
    """The current page and its version; re-rendered by the watcher, read by request threads."""

    def __init__(self, config_path: Path, now: dt.datetime | None) -> None:
        self.config_path = config_path
        self.now = now
        self.lock = threading.Lock()
        self.page = b""
        self.version = 0
        self.nonce = ""
        self.config: Config | None = None

    def refresh(self) -> None:
        nonce = secrets.token_urlsafe(16)
        now = self.now or _now()
        preview: Preview | None = None
        config: Config | None = None
        try:
            config = load_config(self.config_path)
            self.config = config
            preview = build_preview(config, now)
            email, warnings, error = preview.html, list(preview.warnings), False
            when = config.site.localize(now).astimezone(config.site.tz).isoformat(timespec="minutes")
            title = f"{config.site.title} · digest {preview.period} · {when}"
        except DigestError as exc:
            email, warnings, title, error = str(exc), [str(exc)], "error", True
        except Exception as exc:  # a broken template or article must not take the preview down
            log.exception("preview render failed")
            message = f"{type(exc).__name__}: {exc}"
            email, warnings, title, error = message, [message], "error", True
        with self.lock:
            self.version += 1
            self.nonce = nonce
            page = self._page(title, email, warnings, nonce, error, preview, config)
            self.page = page.encode("utf-8")

    def _page(
        self,
        title: str,
        email: str,
        warnings: list[str],
        nonce: str,
        error: bool,
        preview: Preview | None,
        config: Config | None,
    ) -> str:
        """The page; an error shows as a page of its one line. A broken preview template (an editor's
        override) falls back to the shipped templates, so the page always says what is wrong."""
        try:
            if error:
                email = message_page("error", [email], config)
            return render_page(
                title, email, warnings, self.version, nonce, error, preview=preview, config=config
            )
        except DigestError as exc:
            lines = [*warnings, str(exc)] if error else [str(exc)]
            email = message_page("error", lines, None)
            return render_page("error", email, lines, self.version, nonce, True, config=None)

    def watched(self) -> list[Path]:
        """The config file, the template folders and the content folder (those of the last good config)."""
        paths = [self.config_path]
        if self.config is not None:
            with contextlib.suppress(DigestError):  # a missing templates folder shows on the page
                paths += template_folders(self.config)
            paths.append(self.config.content.dir)
        return paths


def _signature(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every file below `paths`: any edit, addition or removal changes it."""
    return tuple(sorted(entry for path in paths for entry in _stats(path)))


def _stats(path: Path) -> Iterator[tuple[str, int, int]]:
    try:
        stat = path.stat()
    except OSError:
        return
    if not path.is_dir():
        yield (str(path), stat.st_mtime_ns, stat.st_size)
        return
    for folder, dirs, files in os.walk(path):  # os.walk does not follow symlinked folders: no loops
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            try:
                stat = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            yield (os.path.join(folder, name), stat.st_mtime_ns, stat.st_size)


class PreviewServer:
    """The preview on `host:port` (port 0 picks a free one), on the subscriber pages' stack (Flask on
    waitress: a bounded pool, idle connections timed out); `url` says where. `serve_forever` serves
    until `shutdown` (from any thread); `server_close` then ends the watcher and the workers."""

    def __init__(
        self,
        config_path: Path,
        port: int,
        now: dt.datetime | None = None,
        host: str = "127.0.0.1",
        poll_interval: float = 0.5,
    ) -> None:
        self.preview = LivePreview(Path(config_path), now)
        self.preview.config = load_config(config_path)  # a wrong --config is an error now, not a page later
        # Taken before the first render, so that an edit made while it renders shows at the next poll.
        self._seen = _signature(self.preview.watched())
        self.preview.refresh()
        self.poll_interval = poll_interval
        self._stopping = threading.Event()
        app = create_preview_app(self._current, self.allowed_hosts)
        self._server = Server(app, bind(host, port))
        self.server_address = self._server.address
        self._watcher = threading.Thread(target=self._watch, name="digest-preview-watch", daemon=True)
        self._watcher.start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def _current(self) -> tuple[bytes, int, str]:
        preview = self.preview
        with preview.lock:
            return preview.page, preview.version, preview.nonce

    def allowed_hosts(self) -> set[str]:
        """Host headers we answer: our own address only (a rebinding DNS name must not reach drafts)."""
        host, port = str(self.server_address[0]), self.server_address[1]
        names = {host, "localhost", "127.0.0.1", "[::1]"}
        return names | {f"{name}:{port}" for name in names}

    def _watch(self) -> None:
        seen = self._seen
        while not self._stopping.wait(self.poll_interval):
            # When the config now points elsewhere, the new folders differ from `seen`: one more render.
            current = _signature(self.preview.watched())
            if current != seen:
                seen = current
                self.preview.refresh()

    def serve_forever(self) -> None:
        self._server.run()

    def shutdown(self) -> None:
        self._server.stop()

    def server_close(self) -> None:
        self._stopping.set()
        self._server.close()
        if self._watcher.is_alive() and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)


def serve(
    config_path: Path,
    port: int,
    now: dt.datetime | None = None,
    host: str = "127.0.0.1",
    *,
    on_ready: Callable[[PreviewServer], None] | None = None,
    poll_interval: float = 0.5,
) -> None:
    """Serve the preview until interrupted (or until `server.shutdown()` from `on_ready`'s receiver)."""
    try:
        server = PreviewServer(config_path, port, now, host, poll_interval)
    except OSError as exc:
        raise DigestError(
            f"cannot listen on {host}:{port}: {exc.strerror}", hint="try another --port"
        ) from None
    try:
        if on_ready is not None:
            on_ready(server)
        else:
            print(f"Previewing the next digest at {server.url} (Ctrl-C to stop)", file=sys.stderr)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
