"""`make bench`'s SMTP row: one digest to many recipients through a local aiosmtpd, one connection.

The server runs in its own process (`python -m aiosmtpd … Sink`), as a real mail server would, so the
measured rate is the SMTP round trip plus our per-message work. Beside it the note gives the server's
ceiling: plain `smtplib.SMTP.sendmail` of the same message bytes over one connection to the same Sink,
with nothing else around it. Our cost per message is then 1/ours - 1/ceiling (building its bytes,
recording its delivery, the SQLite commit); the note also says how much of that is building the bytes.
"""

from __future__ import annotations

import datetime as dt
import shutil
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

from digest.config import Config, load_config
from digest.jobs import run, upcoming
from digest.message import build_message, make_message_id
from digest.selection import Digest
from digest.templating import render_digest

PROJECT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2025, 6, 30, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
CEILING_MESSAGES = 2_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("aiosmtpd did not start")


def _site(work: Path, recipients: int, port: int) -> Path:
    site = work / "smtp-bench"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(PROJECT / "seeds", site / "seeds")
    lines = ["email,name,topics"] + [f"reader{n:05d}@example.org,读者{n}," for n in range(recipients)]
    (site / "subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = (PROJECT / "config.toml").read_text(encoding="utf-8")
    config = config.replace(
        'method = "outbox"', f'method = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}'
    )
    (site / "config.toml").write_text(config, encoding="utf-8")
    return site / "config.toml"


def deliver_to_many(work: Path, recipients: int) -> tuple[int, float, str]:
    """(messages sent, seconds, note): a whole `digest run` to `recipients` subscribers by SMTP."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, time.monotonic() + 10)
        config = load_config(_site(work, recipients, port))
        digest = upcoming(config, NOW).digest
        started = time.perf_counter()
        report = run(config, NOW)
        seconds = time.perf_counter() - started
        if report.sent != recipients:
            raise RuntimeError(f"sent {report.sent} of {recipients}: {report.summary_lines()}")
        build_seconds, data = _our_share(config, digest)
        ceiling = _ceiling(port, data, CEILING_MESSAGES)
    finally:
        server.terminate()
        server.wait(timeout=10)
    ours = recipients / seconds
    overhead_ms = (1 / ours - 1 / ceiling) * 1000
    note = (
        f"{len(data) / 1024:.0f} KB messages; server ceiling {ceiling:.0f} msg/s "
        f"(plain smtplib.sendmail, {CEILING_MESSAGES:,} messages, one connection); "
        f"ours costs {overhead_ms:.2f} ms/message over it, of which building it {build_seconds * 1000:.2f} ms"
    )
    return recipients, seconds, note


def _ceiling(port: int, data: bytes, messages: int) -> float:
    """Messages per second of bare smtplib.sendmail of `data` over one connection: the server's limit."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as connection:
        connection.ehlo()
        started = time.perf_counter()
        for n in range(messages):
            connection.sendmail("digest@example.com", [f"reader{n:05d}@example.org"], data)
        seconds = time.perf_counter() - started
    return messages / seconds


def _our_share(config: Config, digest: Digest | None) -> tuple[float, bytes]:
    """Seconds to build one message, and one message, for the note."""
    if digest is None:
        return 0.0, b""
    rendered = render_digest(digest, config)
    started = time.perf_counter()
    data = b""
    for n in range(200):
        to = f"reader{n:05d}@example.org"
        data = build_message(
            rendered, config, to=to, message_id=make_message_id(digest.period, to, config), date=NOW
        )
    return (time.perf_counter() - started) / 200, data
