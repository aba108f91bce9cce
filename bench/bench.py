"""digest's benchmarks: `make bench` prints one table. Not a test: numbers, measured on this machine.

  feeds    cold and no-change `digest build` on corpora from ../shared/corpus/gen.py (--topics 14),
           wall time and the peak memory of the whole process tree (workers included)
  digest   render + inline + build the message of a 30-article digest
  smtp     deliver one digest to 10,000 recipients through a local aiosmtpd, over one connection

Sizes: BENCH_SIZES=1000,10000,100000 make bench (default 1000,10000; 100k takes several minutes to generate).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
GENERATOR = PROJECT.parent / "shared" / "corpus" / "gen.py"
NOW = "2026-12-01T00:00:00+08:00"
DIGEST = [str(Path(sys.executable).parent / "digest")]

TARGETS = {
    ("feeds", "cold", 10_000): ("≤ 3.0 s", "≤ 250 MiB"),
    ("feeds", "no-change", 10_000): ("≤ 0.3 s", "≤ 250 MiB"),
}


def _tree_pss_kib(root_pid: int) -> int:
    """Memory of a process and all its descendants, from /proc: the proportional set size, so pages a
    forked worker shares with its parent are counted once, not once per process as RSS would."""
    total = 0
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    pending += [int(child) for child in children.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def measure(command: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak MiB of the process tree, exit status) of one command."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_pss_kib(process.pid))
            done.wait(0.1)  # smaps_rollup walks page tables: sampling more often slows what it measures

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode not in (0, 3):
        sys.stderr.write(stderr.decode(errors="replace"))
    return elapsed, peak / 1024, process.returncode


def write_config(folder: Path, corpus: Path) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f"""
[site]
title = "Bench"
base_url = "https://example.com/"
language = "zh-CN"
timezone = "Asia/Shanghai"
[content]
dir = "{corpus}"
[feeds]
dir = "feeds"
max_entries = 50
[state]
path = "state/state.sqlite3"
""",
        encoding="utf-8",
    )
    return config


def bench_feeds(size: int, work: Path, rows: list[list[str]]) -> None:
    corpus = work / f"corpus-{size}"
    if not corpus.exists():
        print(f"  generating {size} articles …", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                str(GENERATOR),
                "--n",
                str(size),
                "--out",
                str(corpus),
                "--seed",
                "1",
                "--topics",
                "14",
                "--now",
                NOW,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    site = work / f"site-{size}"
    site.mkdir(exist_ok=True)
    config = write_config(site, corpus)
    build = [*DIGEST, "--config", str(config), "build", "--now", NOW]
    for label in ("cold", "no-change"):
        if label == "cold":
            subprocess.run(["rm", "-rf", str(site / "state"), str(site / "feeds")], check=True)
            subprocess.run(["sync"], check=False)
        seconds, mib, status = measure(build)
        target = TARGETS.get(("feeds", label, size), ("", ""))
        rows.append(
            [
                f"build {label}",
                f"{size:,}",
                f"{seconds:.2f} s",
                target[0],
                f"{mib:.0f} MiB",
                target[1],
                "" if status in (0, 3) else f"exit {status}",
            ]
        )


def timed(function: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def bench_digest(work: Path, rows: list[list[str]]) -> None:
    sys.path.insert(0, str(PROJECT / "bench"))
    from digest_bench import thirty_article_digest

    seconds, detail = thirty_article_digest(work, timed)
    rows.append(
        [
            "digest render+inline+message",
            "30 articles",
            f"{seconds * 1000:.0f} ms",
            "≤ 300 ms",
            "",
            "",
            detail,
        ]
    )


def bench_smtp(work: Path, rows: list[list[str]]) -> None:
    sys.path.insert(0, str(PROJECT / "bench"))
    from smtp_bench import deliver_to_many

    count, seconds, detail = deliver_to_many(work, 10_000)
    rows.append(
        [
            "smtp delivery",
            f"{count:,} recipients",
            f"{count / seconds:.0f} msg/s",
            "≥ 300 msg/s",
            "",
            "",
            detail,
        ]
    )


def print_table(rows: list[list[str]]) -> None:
    header = ["what", "size", "time", "target", "peak memory", "target", "note"]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "1000,10000"))
    parser.add_argument("--only", choices=["feeds", "digest", "smtp"], default=None)
    parser.add_argument("--keep", type=Path, default=None, help="reuse this folder for corpora (kept)")
    args = parser.parse_args()
    rows: list[list[str]] = []
    # An installed package has its bytecode compiled; an editable checkout may not (PYTHONDONTWRITEBYTECODE),
    # and compiling digest's modules at every start would be measured as start-up time.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PROJECT / "src" / "digest")], check=True)
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as temporary:
        work = args.keep or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        print(f"digest benchmarks, {dt.date.today()}, {os.cpu_count()} cores", file=sys.stderr)
        if args.only in (None, "feeds"):
            for size in (int(s) for s in args.sizes.split(",")):
                bench_feeds(size, work, rows)
        if args.only in (None, "digest"):
            bench_digest(work, rows)
        if args.only in (None, "smtp"):
            bench_smtp(work, rows)
    print_table(rows)


if __name__ == "__main__":
    main()
