"""`digest schedule`: cron in the site timezone, missed runs, and a clean stop (scheduler.py)."""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest import jobs
from digest.config import Config, load_config
from digest.cron import make_trigger, next_firings, run_trigger
from digest.scheduler import missed_run
from digest.state import State, run_lock

from conftest import NOW, Site, article_text
from smtp_server import Handler, smtp_delivery, smtp_server, write_run_config, write_subscribers

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


# ---------------------------------------------------------------- cron in the site timezone


def first_run(config: Config, after: dt.datetime) -> dt.datetime:
    """The scheduler's first digest run strictly after `after`: its trigger, as `digest check` reads it."""
    return next_firings(run_trigger(config), after, 1)[0]


def test_next_run_is_in_the_site_timezone(site: Site) -> None:
    write_run_config(site.root, schedule='cron = "0 8 * * mon"')
    config = load_config(site.root / "config.toml")
    # NOW is Monday 2025-06-30 08:00 in Shanghai: the next run is a week later, 08:00 Shanghai time.
    assert first_run(config, NOW) == dt.datetime(2025, 7, 7, 8, 0, tzinfo=SHANGHAI)
    assert first_run(config, NOW - dt.timedelta(seconds=1)) == NOW


def test_next_run_keeps_its_local_time_across_a_dst_change(site: Site) -> None:
    write_run_config(site.root, schedule='cron = "0 8 * * sun"', timezone="America/New_York")
    config = load_config(site.root / "config.toml")
    before = first_run(config, dt.datetime(2025, 3, 2, 7, 0, tzinfo=NEW_YORK))
    after = first_run(config, before)
    assert before == dt.datetime(2025, 3, 2, 8, 0, tzinfo=NEW_YORK)
    assert after == dt.datetime(2025, 3, 9, 8, 0, tzinfo=NEW_YORK)
    # Still 08:00 on the wall, so one hour earlier in UTC once daylight saving time began.
    assert before.astimezone(dt.UTC).hour == 13
    assert after.astimezone(dt.UTC).hour == 12
    autumn = first_run(config, dt.datetime(2025, 10, 30, tzinfo=NEW_YORK))
    assert autumn.astimezone(dt.UTC) == dt.datetime(2025, 11, 2, 13, 0, tzinfo=dt.UTC)


def test_a_time_the_clocks_pass_twice_fires_once() -> None:
    trigger = make_trigger("30 1 * * *", NEW_YORK)  # 01:30 happens twice on 2025-11-02
    first = trigger.get_next_fire_time(None, dt.datetime(2025, 11, 1, 12, 0, tzinfo=NEW_YORK))
    second = trigger.get_next_fire_time(first, first)
    assert first is not None and second is not None
    assert first.astimezone(dt.UTC) == dt.datetime(2025, 11, 2, 5, 30, tzinfo=dt.UTC)
    assert second.astimezone(dt.UTC) == dt.datetime(2025, 11, 3, 6, 30, tzinfo=dt.UTC)


def test_a_missed_run_is_owed_only_within_the_grace_time_and_only_once() -> None:
    trigger = make_trigger("0 8 * * mon", SHANGHAI)
    fire = NOW  # Monday 08:00
    last_week = fire - dt.timedelta(days=7)
    # Off at 08:00, back at 08:30, grace one hour: the 08:00 run is owed.
    assert missed_run(trigger, fire + dt.timedelta(minutes=30), last_week, 3600) == fire
    # Back at 09:30: too late, it waits for next week.
    assert missed_run(trigger, fire + dt.timedelta(minutes=90), last_week, 3600) is None
    # The 08:00 run happened (it started at 08:00:01): nothing is owed.
    assert missed_run(trigger, fire + dt.timedelta(minutes=30), fire + dt.timedelta(seconds=1), 3600) is None
    # Never ran and never started before: nothing is owed.
    assert missed_run(trigger, fire + dt.timedelta(minutes=30), None, 3600) is None


# ---------------------------------------------------------------- a real `digest schedule`


class Service:
    """`digest schedule` in a subprocess, its log collected line by line."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "digest.cli", "--config", str(config), "schedule"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"digest schedule exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {text!r} in the log:\n{self.log()}"
            time.sleep(0.001)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout} s after {sig!r}:\n{self.log()}") from None
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.kill()


def seconds_ahead(seconds: int) -> str:
    """A six-field cron for one instant a few seconds from now (site timezone: Shanghai)."""
    at = dt.datetime.now(SHANGHAI) + dt.timedelta(seconds=seconds)
    return f"{at.second} {at.minute} {at.hour} * * *"


def fresh_article(site: Site) -> None:
    date = (dt.datetime.now(SHANGHAI) - dt.timedelta(days=1)).replace(microsecond=0).isoformat()
    site.add("news.md", article_text("This week", date, main_topics=["AI"]))


def ran_a_minute_ago(site: Site) -> None:
    """Record a scheduled run a minute ago: should the process start after its fire time (a slow
    machine), the run is then owed at start-up instead of silently waiting for tomorrow."""
    state = State.open(load_config(site.root / "config.toml").state.path)
    state.record_scheduled_run("digest-run", dt.datetime.now(SHANGHAI) - dt.timedelta(minutes=1))
    state.close()


def test_the_scheduled_run_happens_once_then_sigterm_stops_cleanly(
    site: Site, services: list[Service]
) -> None:
    write_run_config(site.root, schedule=f'cron = "{seconds_ahead(3)}"\nfeeds_cron = "*/2 * * * * *"')
    write_subscribers(site.root, 3)
    fresh_article(site)
    ran_a_minute_ago(site)
    service = Service(site.root / "config.toml")
    services.append(service)
    service.wait_for("digest run finished (exit status 0)")
    service.wait_for("feeds: 1 of 1 article published in 2 feeds")
    assert len(list((site.root / "outbox").glob("*.eml"))) == 3
    assert service.stop() == 0
    log = service.log()
    assert log.count("digest run finished") == 1
    assert "SIGTERM: stopping after the current delivery" in log
    assert log.splitlines()[-1].endswith("stopped")


def test_sigterm_mid_delivery_stops_after_the_message_in_hand_is_recorded(
    site: Site, services: list[Service]
) -> None:
    with smtp_server(Handler(data_delay=0.01)) as server:
        write_run_config(site.root, delivery=smtp_delivery(server), schedule=f'cron = "{seconds_ahead(2)}"')
        write_subscribers(site.root, 300)
        fresh_article(site)
        ran_a_minute_ago(site)
        service = Service(site.root / "config.toml")
        services.append(service)
        deadline = time.monotonic() + 20
        while server.count < 20:
            assert service.process.poll() is None and time.monotonic() < deadline, service.log()
            time.sleep(0.002)
        assert service.stop(signal.SIGINT) == 0
        accepted = server.count
    assert accepted < 300
    db = sqlite3.connect(site.root / "state" / "state.sqlite3")
    statuses = dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
    db.close()
    # Every message the server accepted is recorded, and nothing else is.
    assert statuses == {"sent": accepted, "pending": 300 - accepted}
    assert "stopped: asked to stop" in service.log()


def test_a_run_missed_while_off_happens_once_at_start_up(site: Site, services: list[Service]) -> None:
    # The schedule fired a few seconds ago; the last scheduled run was a day before: it is owed.
    write_run_config(site.root, schedule=f'cron = "{seconds_ahead(-5)}"\nmisfire_grace_time = 3600')
    write_subscribers(site.root, 2)
    fresh_article(site)
    config = load_config(site.root / "config.toml")
    state = State.open(config.state.path)
    state.record_scheduled_run("digest-run", dt.datetime.now(SHANGHAI) - dt.timedelta(days=1))
    state.close()
    first = Service(site.root / "config.toml")
    services.append(first)
    first.wait_for("digest run finished (exit status 0)")
    assert first.stop() == 0
    assert "running now: the run due at" in first.log()
    assert len(list((site.root / "outbox").glob("*.eml"))) == 2
    # Started again: that run is done, nothing is owed.
    second = Service(site.root / "config.toml")
    services.append(second)
    second.wait_for("next digest run:")
    assert second.stop() == 0
    assert "running now" not in second.log() and "digest run finished" not in second.log()


def test_an_interrupted_digest_is_finished_at_start_up(site: Site, services: list[Service]) -> None:
    write_run_config(site.root, schedule='cron = "0 8 1 1 *"')  # next run months away
    write_subscribers(site.root, 2)
    site.add("news.md", article_text("News", "2025-06-27T09:00:00+08:00", main_topics=["AI"]))
    stop = threading.Event()
    stop.set()
    assert jobs.run(load_config(site.root / "config.toml"), NOW, stop=stop).left == 2
    service = Service(site.root / "config.toml")
    services.append(service)
    service.wait_for("digest run finished (exit status 0)")
    assert service.stop() == 0
    assert "running now: the digest 2025-W27 was interrupted" in service.log()
    assert len(list((site.root / "outbox").glob("2025-W27--*.eml"))) == 2


# ---------------------------------------------------------------- SIGTERM at any moment


def statuses(site: Site) -> dict[str, int]:
    db = sqlite3.connect(site.root / "state" / "state.sqlite3")
    try:
        return dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
    finally:
        db.close()


DELAYS = [0.0, 0.0, 0.0, 0.0, 0.001, 0.002, 0.005, 0.01, 0.05, 0.2, 1.0]


@pytest.mark.parametrize("delay", DELAYS, ids=[f"{n}:{delay}s" for n, delay in enumerate(DELAYS)])
def test_sigterm_at_any_moment_after_start_exits_0_promptly(
    site: Site, services: list[Service], delay: float
) -> None:
    """From its first log line on, whether the state is being read, the scheduler is starting, or the
    owed run is delivering, SIGTERM stops `digest schedule` with status 0 after recording what the
    server accepted. (Before, a signal before the scheduler started killed it with 143, or the stop
    thread failed with SchedulerNotRunningError and the process ignored every later SIGTERM.)
    A signal before its first line (the interpreter starting, the config being read) finds nothing
    done yet and ends it with the default action."""
    with smtp_server(Handler(data_delay=0.01)) as server:
        write_run_config(site.root, delivery=smtp_delivery(server), schedule=f'cron = "{seconds_ahead(-5)}"')
        write_subscribers(site.root, 100)
        fresh_article(site)
        ran_a_minute_ago(site)  # the run a few seconds ago is owed: it starts at once
        service = Service(site.root / "config.toml")
        services.append(service)
        service.wait_for("")  # its first line: from here on it must handle SIGTERM
        time.sleep(delay)  # the moment of the signal is what this test varies
        started = time.monotonic()
        assert service.stop(timeout=10) == 0, service.log()
        assert time.monotonic() - started < 10
        accepted = server.count
    log = service.log()
    assert log.splitlines()[-1].endswith("stopped"), log
    assert "Traceback" not in log and "ERROR" not in log, log
    if delay >= 1.0:  # a second after its first line the owed run has started, so this case is tested
        assert "running now" in log, log
    if (site.root / "state" / "state.sqlite3").exists() and "running now" in log:
        # Whatever the moment, every message the server accepted is recorded as sent.
        assert statuses(site).get("sent", 0) == accepted


def test_sigterm_while_waiting_for_a_manual_runs_lock_exits_at_once(
    site: Site, services: list[Service]
) -> None:
    write_run_config(site.root, schedule=f'cron = "{seconds_ahead(-5)}"\nmisfire_grace_time = 3600')
    write_subscribers(site.root, 2)
    fresh_article(site)
    ran_a_minute_ago(site)
    config = load_config(site.root / "config.toml")
    with run_lock(config.state.path, timeout=1):  # a manual `digest run` is going on
        service = Service(site.root / "config.toml")
        services.append(service)
        service.wait_for("holds the run lock; waiting up to 3600 s")
        started = time.monotonic()
        assert service.stop(timeout=10) == 0
        assert time.monotonic() - started < 5  # not the hour the lock wait allows
    log = service.log()
    assert "digest run not started: stopped while waiting for another digest run" in log, log
    assert not (site.root / "outbox").exists()
    # Nothing ran, so the run is still owed: the next start-up does it.
    again = Service(site.root / "config.toml")
    services.append(again)
    again.wait_for("digest run finished (exit status 0)")
    assert again.stop() == 0
    assert "running now: the run due at" in again.log()
    assert len(list((site.root / "outbox").glob("*.eml"))) == 2


def test_sigterm_during_smtp_backoff_does_not_wait_it_out(site: Site, services: list[Service]) -> None:
    handler = Handler()
    with smtp_server(handler) as server:
        handler.reply_rcpt("reader00000@example.com", "451 4.3.0 try again later", times=99)
        write_run_config(
            site.root,
            # One connection: the other two wait behind the one in its backoff.
            delivery=smtp_delivery(server, retry_backoff=600.0, max_attempts=5, connections=1),
            schedule=f'cron = "{seconds_ahead(-5)}"',
        )
        write_subscribers(site.root, 3)
        fresh_article(site)
        ran_a_minute_ago(site)
        service = Service(site.root / "config.toml")
        services.append(service)
        deadline = time.monotonic() + 20
        while handler.attempts["reader00000@example.com"] < 1:  # now in its 600 s backoff
            assert service.process.poll() is None and time.monotonic() < deadline, service.log()
            time.sleep(0.002)
        started = time.monotonic()
        assert service.stop(timeout=10) == 0
        assert time.monotonic() - started < 5
        assert handler.attempts["reader00000@example.com"] == 1
    assert "stopped: asked to stop; 2 recipients are left for the next run" in service.log()
    # The one in hand is deferred with its one attempt; the next run retries it with the others.
    assert statuses(site) == {"deferred": 1, "pending": 2}
