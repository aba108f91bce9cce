"""`make bench`'s mail rows: one digest to 10,000 recipients through a local aiosmtpd over 1 and over 8
connections (`digest run` resuming a digest recorded by a first, stopped run: the delivery itself), and
digest's own work per message with the transport stubbed out.

The server runs in its own process (`python -m aiosmtpd … Sink`), as a real mail server would, so the
measured rate is the SMTP round trips plus our per-message work. Beside each, the note gives the
server's ceiling: plain `smtplib.SMTP.sendmail` of the same message bytes over as many connections (one
thread each) to the same Sink, with nothing else around it.

The stubbed row is a whole `Courier.deliver` of a recorded digest with a transport that accepts at once:
what digest does per message (ask the store, sign the links, build the message, record the delivery in
its own transaction). `python bench/smtp_bench.py --profile` prints where that time goes (cProfile).

Run alone: `python bench/smtp_bench.py` (prints the rows and the load average).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from digest import audience, weekly
from digest.config import Config, load_config
from digest.delivery import Outcome, Transport, envelope_sender
from digest.jobs import run, upcoming
from digest.message import build_message, make_message_id
from digest.reports import RunReport
from digest.state import State
from digest.templating import render_digest

PROJECT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2025, 6, 30, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
RECIPIENTS = 10_000
CEILING_MESSAGES = 4_000


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


def _site(work: Path, recipients: int, port: int, connections: int) -> Path:
    site = work / f"smtp-bench-{connections}"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(PROJECT / "seeds", site / "seeds")
    lines = ["email,name,topics"] + [f"reader{n:05d}@example.org,读者{n}," for n in range(recipients)]
    (site / "subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = (PROJECT / "config.toml").read_text(encoding="utf-8")
    config = config.replace(
        'method = "outbox"',
        f'method = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nconnections = {connections}',
    )
    (site / "config.toml").write_text(config, encoding="utf-8")
    return site / "config.toml"


def deliver_to_many(work: Path, recipients: int, connections: int) -> tuple[int, float, str]:
    """(messages sent, seconds, note): a whole `digest run` to `recipients` subscribers by SMTP."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, time.monotonic() + 10)
        config = load_config(_site(work, recipients, port, connections))
        data = _one_message(config)
        asked_to_stop = threading.Event()
        asked_to_stop.set()
        run(config, NOW, stop=asked_to_stop)  # feeds built, the digest recorded, nothing sent
        started = time.perf_counter()
        report = run(config, NOW)  # the delivery, resumed: what is measured (the feeds are unchanged)
        seconds = time.perf_counter() - started
        if report.sent != recipients:
            raise RuntimeError(f"sent {report.sent} of {recipients}: {report.summary_lines()}")
        ceiling = _ceiling(port, data, CEILING_MESSAGES, connections)
    finally:
        server.terminate()
        server.wait(timeout=10)
    note = (
        f"{len(data) / 1024:.0f} KB messages, `digest run` resuming the recorded digest; server ceiling "
        f"{ceiling:.0f} msg/s (plain smtplib.sendmail, {CEILING_MESSAGES:,} messages, {connections} "
        f"connection{'s' if connections > 1 else ''})"
    )
    return recipients, seconds, note


def _ceiling(port: int, data: bytes, messages: int, connections: int) -> float:
    """Messages per second of bare smtplib.sendmail of `data`, over `connections` connections (a thread
    each): the server's limit, and Python's, with nothing of ours around it."""
    share = messages // connections

    def send(offset: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as connection:
            connection.ehlo()
            for n in range(offset, offset + share):
                connection.sendmail("digest@example.com", [f"reader{n:05d}@example.org"], data)

    threads = [threading.Thread(target=send, args=(k * share,)) for k in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return share * connections / (time.perf_counter() - started)


def _one_message(config: Config) -> bytes:
    digest = upcoming(config, NOW).digest
    if digest is None:
        raise RuntimeError("the bench site has nothing to send")
    to = "reader00000@example.org"
    return build_message(
        render_digest(digest, config),
        config,
        to=to,
        to_name="读者0",
        message_id=make_message_id(digest.period, to, config),
        date=NOW,
    )


class Accepting:
    """A transport that takes every message at once: what is left is digest's own work."""

    description = "stub"

    def send(self, sender: str, recipient: str, data: bytes, *, key: str) -> Outcome:
        return Outcome("sent", 1)

    def close(self) -> None:
        pass


def own_work(work: Path, recipients: int, profile: bool = False) -> tuple[int, float, str]:
    """(messages, seconds, note): `Courier.deliver` of a recorded digest to `recipients`, stubbed."""
    config = load_config(_site(work, recipients, 25, 1))
    asked_to_stop = threading.Event()
    asked_to_stop.set()
    run(config, NOW, stop=asked_to_stop)  # records the digest and its deliveries, sends nothing
    state = State.open(config.state.path)
    try:
        report = RunReport(now=NOW)
        subscribers = audience.recipients(config, state, report, NOW)

        def connect(halt: threading.Event) -> Transport:
            return Accepting()

        courier = weekly.Courier(
            config,
            state,
            report,
            NOW,
            connect,
            envelope_sender(config),
            threading.Event(),
            audience.audience(config, state, NOW),
        )
        [record] = state.unfinished()
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.runcall(courier.deliver, record, subscribers)
        else:
            courier.deliver(record, subscribers)
        seconds = time.perf_counter() - started
    finally:
        state.close()
    if report.sent != recipients:
        raise RuntimeError(f"sent {report.sent} of {recipients}: {report.summary_lines()}")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    note = (
        f"ask the store, build the message, record the delivery: {seconds / recipients * 1000:.3f} ms "
        "a message (one connection, transport stubbed)"
    )
    return recipients, seconds, note


def rows(work: Path) -> list[tuple[str, str, str, str, str]]:
    """(what, size, rate, target, note) for each row of `make bench`'s table."""
    table = []
    for connections, target in ((1, "≥ 300 msg/s"), (8, "≥ 1,000 msg/s")):
        count, seconds, note = deliver_to_many(work, RECIPIENTS, connections)
        what = f"smtp delivery, {connections} connection{'s' if connections > 1 else ''}"
        table.append((what, f"{count:,} recipients", f"{count / seconds:.0f} msg/s", target, note))
    count, seconds, note = own_work(work, RECIPIENTS)
    what = "digest's own work a message"
    table.append((what, f"{count:,} recipients", f"{count / seconds:.0f} msg/s", "≥ 2,000 msg/s", note))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the stubbed delivery only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="digest-smtp-bench-") as temporary:
        work = Path(temporary)
        if args.profile:
            own_work(work, RECIPIENTS, profile=True)
            return
        before = os.getloadavg()
        table = rows(work)
        after = os.getloadavg()
    for row in table:
        print(" | ".join(row))
    print(f"load average (1 min) {before[0]:.2f} before, {after[0]:.2f} after, on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
