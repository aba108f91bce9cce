"""The editors' preview: a file, and a local server that re-renders when something changes."""

from __future__ import annotations

import datetime as dt
import http.client
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from markupsafe import escape

from digest import jobs
from digest.config import load_config
from digest.message import fill_recipient
from digest.preview import PreviewServer, build_preview, render_page, serve, write_preview
from digest.selection import select_digest
from digest.templating import render_digest
from test_compose import SEED, SEED_TITLE, articles, at

from conftest import BASE_CONFIG, NOW, PROJECT, Site, article_text
from smtp_server import write_run_config, write_subscribers


def test_preview_is_the_next_digest_with_editor_warnings(site: Site) -> None:
    shutil.copy(SEED, site.content)
    site.add("bare.md", article_text("没有摘要也没有图片的文章", at(28), body="正文第一句。第二句。"))
    site.add("long.md", article_text("标" * 70, at(27), summary="有摘要", featured_image="/a.png"))
    config = site.config()
    preview = build_preview(config, NOW)
    # With no state yet, the next digest is the first one.
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    assert preview.html == fill_recipient(render_digest(digest, config).html, "subscriber@example.com")
    assert SEED_TITLE in preview.html
    assert preview.period == "2025-W27" and preview.notice == ""
    assert preview.notes[0] == (
        "previewing the digest of 2025-W27, as `digest run` would send it at 2025-06-30T08:00+08:00"
    )
    warnings = preview.warnings
    assert "bare.md: no summary in the front matter (one is cut from the body)" in warnings
    assert "bare.md: no featured image" in warnings
    assert "long.md: title is 70 characters, over 60 ([digest] title_max_chars)" in warnings
    assert not [w for w in warnings if w.startswith("000_040d16bb7ab5a125.txt")]


def test_the_size_is_information_until_it_nears_the_budget(site: Site, tmp_path: Path) -> None:
    shutil.copy(SEED, site.content)
    preview = write_preview(site.config(), NOW, tmp_path / "preview.html")
    [size] = [n for n in preview.notes if n.startswith("size: HTML ")]
    assert " of 90.0 KB ([digest] max_bytes, encoded; Gmail clips at about 102.0 KB)" in size
    assert not [w for w in preview.warnings if "size" in w]
    # Over 90% of [digest] max_bytes (and still within it: nothing moves), it is a warning.
    digest = select_digest(articles(site.config()), site.config(), NOW)
    assert digest is not None
    site.set("digest", max_bytes=int(render_digest(digest, site.config()).encoded_html_bytes / 0.95))
    near = build_preview(site.config(), NOW)
    assert not [n for n in near.notes if n.startswith("size:")]
    [size] = [w for w in near.warnings if w.startswith("size: HTML ")]
    assert "95% of " in size and size.endswith(": over 90% of the budget")
    assert not [w for w in near.warnings if "moved" in w]  # within the budget: nothing moved


def test_write_preview_writes_the_file(site: Site, tmp_path: Path) -> None:
    shutil.copy(SEED, site.content)
    out = tmp_path / "out" / "preview.html"
    preview = write_preview(site.config(), NOW, out)
    assert out.read_text(encoding="utf-8") == preview.html
    assert SEED_TITLE in preview.html
    assert not (site.root / "state").exists()  # recording nothing


def test_preview_when_nothing_is_new(site: Site, tmp_path: Path) -> None:
    site.add("old.md", article_text("Old", "2025-01-01T09:00:00+08:00"))
    preview = build_preview(site.config(), NOW)
    assert preview.notes[-1] == "nothing new: no digest would go out"
    assert preview.warnings == ()
    assert "no digest would go out" in preview.html and "2025-W27" in preview.html


def test_after_this_weeks_digest_went_out_the_preview_is_next_weeks(site: Site) -> None:
    """`run` sends one digest per period: what is new after it goes out next period, labelled so."""
    write_run_config(site.root)
    write_subscribers(site.root, [("all@example.com", "All", "")])
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00", main_topics=["AI"]))
    config = load_config(site.root / "config.toml")
    assert jobs.run(config, NOW).period == "2025-W27"
    site.add("late.md", article_text("写在周报之后", "2025-06-30T09:00:00+08:00", main_topics=["AI"]))
    later = NOW + dt.timedelta(hours=2)
    preview = build_preview(config, later)
    assert preview.period == "2025-W28"
    assert preview.notice == (
        "this week's digest (2025-W27) was sent; this is what next week's (2025-W28) holds so far"
    )
    assert preview.notes[:2] == ("previewing the digest of 2025-W28, as it stands at 2025-06-30T10:00+08:00",
                                 preview.notice)  # fmt: skip
    assert "写在周报之后" in preview.html and "Alpha" not in preview.html
    assert "2025-W28" in preview.html and "2025-W27" not in preview.html  # subject, links, heading
    page = render_page("t", preview.html, list(preview.warnings), 1, "nonce", preview=preview)
    assert f'<li class="notice">{escape(preview.notice)}</li>' in page
    assert "<h2>Digest 2025-W28</h2>" in page
    # Nothing new since: the notice still says which digest went out.
    (site.content / "late.md").unlink()
    empty = build_preview(config, later)
    assert empty.period == "2025-W28" and empty.notice in empty.notes
    assert empty.notes[-1] == "nothing new: no digest would go out"


# ---------------------------------------------------------------- the server


@pytest.fixture
def server(site: Site) -> Iterator[PreviewServer]:
    """`serve` in a thread on a free port with its own copy of the templates; stopped after the test."""
    shutil.copytree(PROJECT / "templates", site.root / "tpl")
    site.write_config(base=BASE_CONFIG.replace("[digest]\n", '[digest]\ntemplates = "tpl"\n'))
    shutil.copy(SEED, site.content)
    ready: queue.Queue[PreviewServer] = queue.Queue()
    thread = threading.Thread(
        target=serve,
        args=(site.config_path, 0, NOW),
        daemon=True,
        kwargs={"on_ready": ready.put, "poll_interval": 0.05},
    )
    thread.start()
    running = ready.get(timeout=30)
    try:
        yield running
    finally:
        running.shutdown()
        thread.join(timeout=10)
        assert not thread.is_alive()


def get(server: PreviewServer, path: str, host: str | None = None) -> tuple[int, str]:
    address, port = server.server_address[:2]
    connection = http.client.HTTPConnection(str(address), port, timeout=10)
    try:
        # http.client sends the path as given: no client-side normalisation of "/../".
        connection.request("GET", path, headers={"Host": host} if host else {})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()


def wait_for_version(server: PreviewServer, after: int, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        version = int(get(server, "/version")[1])
        if version > after:
            return version
        time.sleep(0.05)
    pytest.fail(f"the preview did not re-render within {timeout} s")


def test_server_answers_on_loopback_with_warnings_above_the_email(server: PreviewServer) -> None:
    assert server.server_address[0] == "127.0.0.1"
    status, page = get(server, "/")
    assert status == 200
    assert page.index('id="warnings"') < page.index('<iframe class="frame" id="email"')
    assert page.index('id="notes"') < page.index('id="warnings"')
    assert "Digest 2025-W27" in page and "size: HTML " in page  # information, above the warnings
    assert "Kimi能否穿越" in page  # in the frame's srcdoc, escaped into an attribute
    assert "&lt;table" in page and 'sandbox="allow-same-origin' in page
    assert get(server, "/version") == (200, "1\n")


@pytest.mark.parametrize(
    "path",
    [
        "/../config.toml",
        "/../../../etc/passwd",
        "/%2e%2e/config.toml",
        "/%252e%252e/x",
        "/..%2fconfig.toml",
        "/config.toml",
        "/content/000_040d16bb7ab5a125.txt",
        "/tpl/digest.css",
        "//etc/passwd",
        "/index.html",
    ],
)
def test_server_serves_nothing_but_its_pages(server: PreviewServer, path: str) -> None:
    status, body = get(server, path)
    assert status == 404
    assert body == "not found\n"


def test_server_refuses_other_host_names(server: PreviewServer) -> None:
    assert get(server, "/", host="attacker.example")[0] == 421
    port = server.server_address[1]
    assert get(server, "/version", host=f"localhost:{port}")[0] == 200


def test_800_stalled_connections_cost_no_thread_and_200_clients_at_once_are_all_answered(
    server: PreviewServer,
) -> None:
    """Slowloris (issue 10): each connection sends half a request line and stalls. On waitress they hold
    no worker thread (the pool stays 4), and 200 clients at once, beside them, all get the page."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    address, port = server.server_address[:2]
    before = threading.active_count()
    stalled = []
    try:
        for _ in range(800):
            sock = socket.create_connection((str(address), port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            stalled.append(sock)
        assert get(server, "/version") == (200, "1\n")
        assert threading.active_count() - before <= 4  # the bounded pool, not a thread per connection

        def client(_: int) -> int:
            return get(server, "/")[0]

        with ThreadPoolExecutor(max_workers=200) as pool:
            answers = list(pool.map(client, range(200)))
        assert answers == [200] * 200
    finally:
        for sock in stalled:
            sock.close()


def test_server_re_renders_after_a_template_or_article_change(server: PreviewServer, site: Site) -> None:
    template = site.root / "tpl" / "digest.html.j2"
    template.write_text(
        template.read_text(encoding="utf-8").replace('<body class="body">', '<body class="body">EDITED-MARK'),
        encoding="utf-8",
    )
    version = wait_for_version(server, 1)
    assert "EDITED-MARK" in get(server, "/")[1]
    site.add("new.md", article_text("刚刚写好的新文章", at(29)))
    wait_for_version(server, version)
    assert "刚刚写好的新文章" in get(server, "/")[1]


def test_a_broken_template_shows_the_error_and_keeps_serving(server: PreviewServer, site: Site) -> None:
    (site.root / "tpl" / "digest.txt.j2").write_text("{{ unclosed\n", encoding="utf-8")
    wait_for_version(server, 1)
    status, page = get(server, "/")
    assert status == 200
    assert 'class="warnings error"' in page and "template error" in page
    assert 'id="notes"' not in page  # no digest to describe


def test_the_preview_page_is_a_template_an_editor_may_override(server: PreviewServer, site: Site) -> None:
    shipped = (PROJECT / "templates" / "preview.html.j2").read_text(encoding="utf-8")
    assert "<strong>digest preview</strong>" in shipped
    (site.root / "tpl" / "preview.html.j2").write_text(
        shipped.replace("<strong>digest preview</strong>", "<strong>OUR PREVIEW</strong>"), encoding="utf-8"
    )
    version = wait_for_version(server, 1)
    assert "<strong>OUR PREVIEW</strong>" in get(server, "/")[1]
    # A broken override still gives a page that says what is wrong (from the shipped template).
    (site.root / "tpl" / "preview.html.j2").write_text("{% if %}\n", encoding="utf-8")
    wait_for_version(server, version)
    status, page = get(server, "/")
    assert status == 200 and 'class="warnings error"' in page
    assert "preview.html.j2:1: template error" in page


def test_a_template_cannot_reach_the_process_in_the_served_preview(server: PreviewServer, site: Site) -> None:
    template = site.root / "tpl" / "digest.txt.j2"
    template.write_text(
        template.read_text(encoding="utf-8") + "{{ cycler.__init__.__globals__.os.popen('id').read() }}\n",
        encoding="utf-8",
    )
    wait_for_version(server, 1)
    page = get(server, "/")[1]
    assert "is unsafe" in page and "uid=" not in page
