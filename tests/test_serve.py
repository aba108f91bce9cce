"""`digest serve` as a user runs it: the command in its own process, on [server] host and port, a real
HTTP client, the confirmation mail in the configured delivery (the outbox), and SIGTERM ending it."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlencode

from click.testing import CliRunner

from digest.cli import main

from conftest import NOW, Site, article_text

KEY = "serve-key-" + "s" * 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request(port: int, method: str, path: str, body: str = "") -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        connection.request(method, path, body or None, headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()


def test_digest_serve_answers_mails_the_confirmation_through_the_outbox_and_stops_on_sigterm(
    site: Site,
) -> None:
    port = free_port()
    site.write_config(
        f'[server]\npublic_url = "http://127.0.0.1:{port}/"\nport = {port}\n'
        'secret_env = "DIGEST_SERVE_KEYS"\n'
    )
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00", main_topics=["AI", "芯片"]))
    process = subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "--config", str(site.config_path), "serve"],
        env={**os.environ, "DIGEST_SERVE_KEYS": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, page = request(port, "GET", "/subscribe")
                break
            except OSError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "digest serve did not start"
                time.sleep(0.1)
        assert status == 200
        assert 'value="AI"' in page and 'value="芯片"' in page  # the site's topics
        status, _ = request(port, "POST", "/subscribe", urlencode({"email": "reader@example.com"}))
        assert status == 200
        outbox = site.root / "outbox"
        while not list(outbox.glob("confirm--*.eml")):
            assert time.monotonic() < deadline, "no confirmation mail in the outbox"
            time.sleep(0.05)
        [mail] = outbox.glob("confirm--*.eml")
        data = mail.read_bytes()
        assert b"To: reader@example.com\r\n" in data and f"http://127.0.0.1:{port}/confirm/".encode() in data
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    assert process.returncode == 0
    assert err.decode().splitlines()[0] == (
        f"Serving the subscriber pages of http://127.0.0.1:{port}/ on 127.0.0.1:{port} "
        "(Ctrl-C or SIGTERM to stop)"
    )


def test_digest_serve_without_a_server_table_or_a_key_is_one_error_line(site: Site) -> None:
    result = CliRunner().invoke(main, ["--config", str(site.config_path), "serve"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: {site.config_path}: the subscriber service is off: [server] public_url "
        'is not set (e.g. public_url = "https://example.com/newsletter/")\n'
    )
    site.write_config('[server]\npublic_url = "https://example.com/n/"\nsecret_env = "DIGEST_NO_SUCH_KEYS"\n')
    result = CliRunner().invoke(
        main, ["--config", str(site.config_path), "serve"], env={"DIGEST_NO_SUCH_KEYS": ""}
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: {site.config_path}: the environment variable DIGEST_NO_SUCH_KEYS holding the signing key"
    )


def test_check_says_when_run_and_serve_would_lack_the_signing_key(site: Site) -> None:
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00"))
    site.write_config('[server]\npublic_url = "https://example.com/n/"\nsecret_env = "DIGEST_NO_SUCH_KEYS"\n')
    result = CliRunner().invoke(
        main, ["--config", str(site.config_path), "check"], env={"DIGEST_NO_SUCH_KEYS": ""}
    )
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{site.config_path}: the environment variable DIGEST_NO_SUCH_KEYS holding the signing key "
        "is not set (export DIGEST_NO_SUCH_KEYS="
        "$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'))"
    ]
    result = CliRunner().invoke(
        main, ["--config", str(site.config_path), "check"], env={"DIGEST_NO_SUCH_KEYS": KEY}
    )
    assert (result.exit_code, result.stdout.splitlines()[0]) == (0, "config and articles OK")


def test_the_configured_limits_reach_the_pages(site: Site) -> None:
    """`[subscribers] requests_per_ip = 2`: the third signup from one address gets the same page, no mail."""
    from digest import jobs
    from digest.web import BackgroundServer, bind

    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    site.write_config(
        f'[server]\npublic_url = "http://127.0.0.1:{port}/"\nsecret_env = "DIGEST_SERVE_KEYS"\n'
        "[subscribers]\nrequests_per_ip = 2\n"
    )
    app = jobs.subscriber_app(site.config(), lambda: NOW, environ={"DIGEST_SERVE_KEYS": KEY})
    server = BackgroundServer(app, sock).start()
    try:
        answers = {
            request(port, "POST", "/subscribe", urlencode({"email": f"r{n}@example.com"})) for n in range(3)
        }
        assert len(answers) == 1 and answers.pop()[0] == 200
        assert app.extensions["digest_mailer"].flush(timeout=10)
    finally:
        server.stop()
        app.extensions["digest_mailer"].close()
    mails = sorted((site.root / "outbox").glob("confirm--*.eml"))
    assert [b"r0@example.com" in m.read_bytes() or b"r1@example.com" in m.read_bytes() for m in mails] == [
        True,
        True,
    ]
