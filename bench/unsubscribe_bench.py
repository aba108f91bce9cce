"""One-click unsubscribes (RFC 8058 POSTs) per second on one core, and their latency under that load.

The server is the real app on waitress in its own process, pinned to one CPU; the state database is a
file in WAL mode, as `digest serve` would use it, holding `SUBSCRIBERS` active subscribers. The load
comes from another process (pinned to another CPU when there is one): `CLIENTS` keep-alive connections,
each POSTing `List-Unsubscribe=One-Click` for a different subscriber's token, so every request is a
real unsubscribe (one transaction: suppression, status, consent log), none a repeat.

    .venv/bin/python bench/unsubscribe_bench.py [--requests N] [--clients C]

Not part of `make bench` yet.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import logging
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

KEY = "bench-key-" + "b" * 40


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def prepare(path: Path, subscribers: int) -> None:
    from digest import subscriptions as store

    db = connect(path)
    store.migrate(db)
    rows = "\n".join(f"reader{n:06d}@example.org,读者{n}," for n in range(subscribers))
    now = dt.datetime.now(dt.UTC)
    report = store.import_csv(db, "email,name,topics\n" + rows + "\n", "bench.csv", now)
    assert report.added == subscribers, report
    db.close()


def serve(path: Path, port_file: Path, threads: int) -> None:
    """The server process: one CPU, the real app, waitress."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth" under full load
    from digest.jinja import sandboxed_environment
    from digest.service import SubscriberService
    from digest.tokens import Tokens
    from digest.web import BackgroundServer, WebSettings, bind, create_app

    service = SubscriberService(lambda: connect(path), Tokens([KEY]), lambda: ["AI"])
    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    settings = WebSettings(f"http://127.0.0.1:{port}/", "Bench", "Bench <digest@example.org>", language="en")
    app = create_app(
        service,
        send=lambda message: None,
        templates=sandboxed_environment(None),
        settings=settings,
        now=lambda: dt.datetime.now(dt.UTC),
    )
    server = BackgroundServer(app, sock, threads=threads).start()
    port_file.write_text(str(port))
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()


def load(port: int, paths: list[str], clients: int) -> tuple[float, list[float]]:
    """POST every path once over `clients` keep-alive connections; (seconds, latencies in seconds)."""
    latencies: list[float] = []
    lock = threading.Lock()
    chunks = [paths[i::clients] for i in range(clients)]
    failures: list[str] = []

    def client(chunk: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        for path in chunk:
            start = time.perf_counter()
            connection.request("POST", path, b"List-Unsubscribe=One-Click", headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 200:
                failures.append(f"{path}: {response.status}")
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(chunk,)) for chunk in chunks]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, the first: {failures[0]}")
    return elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4, help="waitress worker threads")
    parser.add_argument("--serve", nargs=2, metavar=("DB", "PORT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), args.threads)
        return

    from digest.tokens import Tokens

    with tempfile.TemporaryDirectory() as work:
        db_path, port_file = Path(work) / "state.sqlite3", Path(work) / "port"
        prepare(db_path, args.requests)
        tokens = Tokens([KEY])
        paths = [
            "/unsubscribe/" + tokens.make("unsubscribe", f"reader{n:06d}@example.org")
            for n in range(args.requests)
        ]
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--threads",
                str(args.threads),
                "--serve",
                str(db_path),
                str(port_file),
            ],
            stdin=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.05)
            cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
            if len(cpus) > 1:
                os.sched_setaffinity(0, set(cpus[1:]))
            port = int(port_file.read_text())
            load(port, paths[: min(200, len(paths) // 10)], args.clients)  # warm-up: imports, caches
            elapsed, latencies = load(port, paths[min(200, len(paths) // 10) :], args.clients)
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(timeout=30)
        db = connect(db_path)
        suppressed = db.execute("SELECT count(*) FROM suppressions").fetchone()[0]
        db.close()
    measured = len(latencies)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"one-click unsubscribe, server on 1 CPU ({args.threads} waitress threads), {args.clients} clients: "
        f"{measured} in {elapsed:.2f} s = {measured / elapsed:,.0f}/s; "
        f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
        f"{suppressed} addresses suppressed"
    )
    assert suppressed == args.requests, "every request must have unsubscribed someone"


if __name__ == "__main__":
    main()
