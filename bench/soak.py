"""Fault soak (`make soak`; CI does not run it): random SIGKILLs and SIGTERMs during a 1,000-recipient
SMTP send, against servers that are slow to answer DATA, drop the connection after DATA, or answer
452/421, then one run that finishes. It prints, per server: recipients reached, duplicates, and whether
every duplicate carries its original Message-ID (what the README's "at most one duplicate per kill, with
its Message-ID" promises).

Real parts only: aiosmtpd on 127.0.0.1 (tests/smtp_server.py) and `digest run` as a subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from smtp_server import (  # noqa: E402
    Handler,
    smtp_delivery,
    smtp_server,
    write_run_config,
    write_subscribers,
)

NOW = "2025-06-30T09:00:00+08:00"
ARTICLE = """---
title: 本周新闻
date: 2025-06-27T09:00:00+08:00
main_topics: [AI]
summary: 一周的新闻。
---
正文。
"""


class DropAfterData(Handler):
    """Takes the message, then drops the connection instead of answering (1 in `every`): the client
    cannot know whether it was accepted."""

    def __init__(self, every: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.every = every
        self.seen = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        self.seen += 1
        if self.seen % self.every == 0:
            server.transport.close()
        return reply


class Busy(Handler):
    """452 to some recipients for their first attempts, and 421 (closing) now and then."""

    def __init__(self, rng: random.Random, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rng = rng

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        roll = self.rng.random()
        if roll < 0.02:
            return "452 4.2.2 mailbox full, try later"
        if roll < 0.025:
            server.transport.close()
            return "421 4.3.2 closing"
        return await super().handle_RCPT(server, session, envelope, address, options)


def digest(site: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digest.cli",
            "--config",
            str(site / "config.toml"),
            "run",
            "--now",
            NOW,
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def soak(
    name: str, handler: Handler, kills: int, rng: random.Random, recipients: int, extra: dict[str, Any]
) -> list[str]:
    with tempfile.TemporaryDirectory() as folder, smtp_server(handler) as server:
        site = Path(folder)
        (site / "content").mkdir()
        (site / "content" / "news.md").write_text(ARTICLE, encoding="utf-8")
        write_run_config(site, delivery=smtp_delivery(server, **extra))
        addresses = write_subscribers(site, recipients)
        signals = {"SIGKILL": 0, "SIGTERM": 0}
        started = time.monotonic()
        for _ in range(kills):
            if server.count >= recipients:
                break
            process = digest(site)
            target = min(recipients - 1, server.count + rng.randint(1, max(2, recipients // kills)))
            deadline = time.monotonic() + 30
            while server.count < target and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.0005)
            chosen = rng.choice([signal.SIGKILL, signal.SIGTERM])
            signals[chosen.name] += 1
            if process.poll() is None:
                process.send_signal(chosen)
            process.communicate(timeout=60)
        # Then runs without a kill until everyone is reached (a 452 or 421 leaves some for the next run).
        for _ in range(10):
            process = digest(site)
            process.communicate(timeout=900)
            if len(server.handler.by_recipient()) >= recipients and process.returncode in (0, 5):
                break
        copies = server.handler.by_recipient()
        reached = sum(1 for a in addresses if a in copies)
        twice = {a: c for a, c in copies.items() if len(c) > 1}
        same_id = all(len({item.message["Message-ID"] for item in c}) == 1 for c in twice.values())
        spent = time.monotonic() - started
        return [
            name,
            f"{signals['SIGKILL']}+{signals['SIGTERM']}",
            f"{reached}/{recipients}",
            str(len(twice)),
            str(max((len(c) for c in copies.values()), default=0)),
            "yes" if same_id else "NO",
            f"{spent:.0f} s",
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    asyncio.set_event_loop_policy(None)
    rows = [
        soak("slow answers (3 ms)", Handler(data_delay=0.003), args.kills, rng, args.recipients, {}),
        soak(
            "DATA answered after the timeout",
            Handler(data_delay=1.5),
            max(1, args.kills // 10),
            rng,
            min(args.recipients, 40),
            {"smtp_timeout": 1},
        ),
        soak(
            "drop after DATA (1 in 97)",
            DropAfterData(97, data_delay=0.002),
            args.kills // 5,
            rng,
            args.recipients,
            {},
        ),
        soak(
            "452 / 421 now and then", Busy(rng, data_delay=0.002), args.kills // 5, rng, args.recipients, {}
        ),
    ]
    header = ["server", "kills (KILL+TERM)", "reached", "duplicated", "max copies", "same Message-ID", "time"]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
