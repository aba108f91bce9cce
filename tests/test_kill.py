"""Kill -9 in the middle of delivery: the next run finishes the same digest, and nobody gets it twice
except, at most, the one message in flight on each connection at the instant of death (with the same
Message-ID). With one connection and with four (`[delivery] connections`)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from conftest import NOW, Site, article_text
from smtp_server import Handler, SmtpServer, smtp_delivery, smtp_server, write_run_config, write_subscribers

RECIPIENTS = 200


@pytest.fixture(params=[1, 4], ids=["1 connection", "4 connections"])
def connections(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def server(connections: int) -> Iterator[SmtpServer]:
    # A slow DATA answer (10 ms a connection) spreads the 200 messages over two seconds or more (even on
    # a loaded machine), so a kill lands mid-way.
    with smtp_server(Handler(data_delay=0.01 * connections)) as running:
        yield running


def digest_run(site: Site) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digest.cli",
            "--config",
            str(site.root / "config.toml"),
            "run",
            "--now",
            NOW.isoformat(),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"digest run ended before the kill: {process.communicate()}"
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.001)


def digest_recorded(site: Site) -> Callable[[], bool]:
    path = site.root / "state" / "state.sqlite3"

    def check() -> bool:
        if not path.exists():
            return False
        try:
            db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1)
            try:
                return db.execute("SELECT count(*) FROM digests").fetchone()[0] > 0
            finally:
                db.close()
        except sqlite3.Error:  # the tables are not there yet
            return False

    return check


def make_site(site: Site, server: SmtpServer, connections: int) -> list[str]:
    write_run_config(site.root, delivery=smtp_delivery(server, connections=connections))
    site.add("news.md", article_text("本周新闻", "2025-06-27T09:00:00+08:00", main_topics=["AI"]))
    return write_subscribers(site.root, RECIPIENTS)


def kill_at(site: Site, server: SmtpServer, point: int | str) -> None:
    """Start `digest run`, SIGKILL it once `point` messages were accepted (or once the digest is recorded)."""
    process = digest_run(site)
    try:
        if point == "recorded":
            wait_until(digest_recorded(site), process)
        else:
            assert isinstance(point, int)
            wait_until(lambda: server.count >= point, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL
    finally:
        process.kill()
        process.communicate()


def finish(site: Site) -> None:
    process = digest_run(site)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, (out, err)
    assert "resumed its unfinished delivery" in out


def check_exactly_once(server: SmtpServer, recipients: list[str], kills: int, connections: int) -> None:
    copies = server.handler.by_recipient()
    assert sorted(copies) == sorted(recipients), "someone got nothing"
    twice = {address: items for address, items in copies.items() if len(items) > 1}
    # At most one message in flight on each connection at each kill.
    assert len(twice) <= kills * connections, f"{len(twice)} recipients got two copies after {kills} kills"
    for address, items in twice.items():
        assert len(items) == 2, address
        ids = {item.message["Message-ID"] for item in items}
        assert len(ids) == 1, f"{address} got two different Message-IDs: {ids}"
        # The same message, not a re-render: same subject, date and text.
        first, second = (item.message for item in items)
        assert (first["Subject"], first["Date"]) == (second["Subject"], second["Date"])
        assert first.get_body(("plain",)).get_content() == second.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert len({items[0].message["Message-ID"] for items in copies.values()}) == len(recipients)


def test_killed_after_the_digest_was_recorded_before_anything_was_sent(
    site: Site, server: SmtpServer, connections: int
) -> None:
    recipients = make_site(site, server, connections)
    kill_at(site, server, "recorded")
    finish(site)
    check_exactly_once(server, recipients, kills=1, connections=connections)


def test_killed_mid_delivery_then_finished(site: Site, server: SmtpServer, connections: int) -> None:
    recipients = make_site(site, server, connections)
    kill_at(site, server, 90)
    assert server.count < RECIPIENTS
    # The killed run used all its connections at once.
    assert server.connections == connections
    finish(site)
    check_exactly_once(server, recipients, kills=1, connections=connections)
    db = sqlite3.connect(site.root / "state" / "state.sqlite3")
    assert db.execute("SELECT status FROM digests").fetchall() == [("sent",)]
    assert db.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall() == [
        ("sent", RECIPIENTS)
    ]
    db.close()


def test_killed_at_several_points_of_one_digest_then_finished(
    site: Site, server: SmtpServer, connections: int
) -> None:
    """Each run resumes the last one's digest and is killed further on; the last one completes."""
    recipients = make_site(site, server, connections)
    points = [1, 50, 120, 185]
    for point in points:
        kill_at(site, server, point)
    assert server.count < RECIPIENTS
    finish(site)
    check_exactly_once(server, recipients, kills=len(points), connections=connections)
