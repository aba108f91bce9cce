"""digest's benchmarks: `make bench` prints one table. Not a test: numbers, measured on this machine.

  feeds    `digest build` of corpora from ../shared/corpus/gen.py (--seed 1 --topics 14), beside Hugo
           (/usr/bin/hugo) building the same corpus as a site that writes RSS for the home page and each
           topic (50 items, full content), runs alternating so both see the same load: cold; nothing
           changed; one file touched (same bytes, new mtime); one article in the feeds edited.
           Medians of several runs: wall time, CPU time (user + system of the process tree) and the
           peak memory of the whole process tree (PSS, workers included).
  digest   render + inline + build the message of a 30-article digest
  smtp     deliver one digest to 10,000 recipients through a local aiosmtpd, over 1 and 8 connections;
           digest's own work a message with the transport stubbed out (bench/smtp_bench.py)

Sizes: BENCH_SIZES=10000,100000 make bench (default 10000; the 100k corpus takes minutes to generate).
Runs per row: BENCH_RUNS (default 5 at 10k, 3 above). BENCH_HUGO=0 leaves Hugo out; BENCH_DIGEST=path runs
another digest executable (an older checkout's, for a before/after table from one machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
GENERATOR = PROJECT.parent / "shared" / "corpus" / "gen.py"
NOW = "2026-12-01T00:00:00+08:00"
# BENCH_DIGEST: another digest executable (an older checkout's, to compare before and after in one run)
DIGEST = [os.environ.get("BENCH_DIGEST") or str(Path(sys.executable).parent / "digest")]
HUGO = "/usr/bin/hugo"

# Issue 11's targets: cold time as a fraction of Hugo's, memory as a fraction of Hugo's, seconds.
COLD_TIME_OF_HUGO = {10_000: 1.0, 100_000: 0.6}
COLD_MEMORY_OF_HUGO = 0.25
INCREMENTAL_TARGETS = {
    ("nothing changed", 10_000): 0.1,
    ("nothing changed", 100_000): 0.3,
    ("one file touched", 10_000): 0.3,
    ("one file touched", 100_000): 0.6,
    ("one article edited", 10_000): 0.3,
    ("one article edited", 100_000): 0.6,
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


@dataclass(frozen=True)
class Run:
    seconds: float  # wall
    cpu: float  # user + system of the process and every child it waited for
    mib: float  # peak PSS of the process tree
    status: int


def measure(command: list[str], cwd: Path | None = None) -> Run:
    """One command: wall seconds, CPU seconds, peak MiB of the process tree, exit status."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_pss_kib(process.pid))
            done.wait(0.05)  # smaps_rollup walks page tables: sampling more often slows what it measures

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode not in (0, 3):
        sys.stderr.write(stderr.decode(errors="replace"))
    return Run(elapsed, cpu, peak / 1024, process.returncode)


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


# Hugo builds the same corpus: RSS for the home page and for each main_topics term, 50 items with the
# full content, and nothing else (no HTML pages, no sitemap, no taxonomy list pages).
HUGO_CONFIG = """\
baseURL = "https://example.com/"
languageCode = "zh-CN"
title = "Bench"
contentDir = "{corpus}"
publishDir = "public"
rssLimit = 50
disableKinds = ["sitemap", "robotsTXT", "404", "taxonomy", "section"]
ignoreErrors = ["error-disable-taxonomy"]
[taxonomies]
main_topic = "main_topics"
[outputs]
home = ["RSS"]
term = ["RSS"]
[[cascade]]
[cascade._build]
render = "never"
[cascade._target]
kind = "page"
"""
HUGO_RSS = """\
{{- $pages := .RegularPages -}}
{{- $limit := .Site.Config.Services.RSS.Limit -}}
{{- if ge $limit 1 }}{{ $pages = $pages | first $limit }}{{ end -}}
{{- printf "<?xml version=\\"1.0\\" encoding=\\"utf-8\\" standalone=\\"yes\\"?>" | safeHTML }}
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title>{{ .Title }}</title>
    <link>{{ .Permalink }}</link>
    <language>{{ site.LanguageCode }}</language>
    {{- range $pages }}
    <item>
      <title>{{ .Title }}</title>
      <link>{{ .Permalink }}</link>
      <pubDate>{{ .Date.Format "Mon, 02 Jan 2006 15:04:05 -0700" | safeHTML }}</pubDate>
      <guid>{{ .Permalink }}</guid>
      <description>{{ .Content | html }}</description>
    </item>
    {{- end }}
  </channel>
</rss>
"""


def hugo_site(folder: Path, corpus: Path) -> Path:
    (folder / "layouts" / "_default").mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(HUGO_CONFIG.format(corpus=corpus), encoding="utf-8")
    (folder / "layouts" / "_default" / "rss.xml").write_text(HUGO_RSS, encoding="utf-8")
    return folder


def generate(size: int, work: Path) -> Path:
    corpus = work / f"corpus-{size}"
    if not (work / f"corpus-{size}.done").exists():
        print(f"  generating {size} articles …", file=sys.stderr)
        shutil.rmtree(corpus, ignore_errors=True)
        subprocess.run(
            [sys.executable, str(GENERATOR), "--n", str(size), "--out", str(corpus), "--seed", "1",
             "--topics", "14", "--now", NOW],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        (work / f"corpus-{size}.done").touch()
    return corpus


def _newest_published(corpus: Path) -> Path:
    """The article the site feed shows first: an edit of it changes every feed it is in."""
    now = dt.datetime.fromisoformat(NOW)
    best: tuple[dt.datetime, Path] | None = None
    for path in corpus.iterdir():
        head = path.read_text(encoding="utf-8")[:600]
        if "\ndraft: true" in head:
            continue
        date = dt.datetime.fromisoformat(head.split("\ndate: ", 1)[1].split("\n", 1)[0].strip().strip("'\""))
        if date.tzinfo is None:
            date = date.replace(tzinfo=now.tzinfo)
        if date <= now and (best is None or date > best[0]):
            best = (date, path)
    assert best is not None
    return best[1]


def _median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.cpu for r in runs),
        statistics.median(r.mib for r in runs),
        max(r.status for r in runs),
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def bench_feeds(size: int, work: Path, rows: list[list[str]], runs: int) -> None:
    corpus = generate(size, work)
    site = work / f"site-{size}"
    site.mkdir(exist_ok=True)
    config = write_config(site, corpus)
    build = [*DIGEST, "--config", str(config), "build", "--now", NOW]
    hugo = Path(HUGO).exists() and os.environ.get("BENCH_HUGO", "1") != "0"
    hugo_folder = hugo_site(work / f"hugo-{size}", corpus) if hugo else None

    def cold_digest() -> Run:
        shutil.rmtree(site / "state", ignore_errors=True)
        shutil.rmtree(site / "feeds", ignore_errors=True)
        return measure(build)

    def cold_hugo() -> Run:
        assert hugo_folder is not None
        shutil.rmtree(hugo_folder / "public", ignore_errors=True)
        shutil.rmtree(hugo_folder / "resources", ignore_errors=True)
        return measure([HUGO, "--quiet", "--source", str(hugo_folder)])

    digest_runs: list[Run] = []
    hugo_runs: list[Run] = []
    for _ in range(runs):  # alternating, so a busy moment on a shared machine hits both
        digest_runs.append(cold_digest())
        if hugo:
            hugo_runs.append(cold_hugo())
    ours = _median(digest_runs)
    theirs = _median(hugo_runs) if hugo_runs else None
    note = f"{runs} runs; " + ("" if ours.status in (0, 3) else f"exit {ours.status}; ")
    if theirs is None:
        skipped = "Hugo left out (BENCH_HUGO=0)" if Path(HUGO).exists() else "Hugo not installed: skipped"
        rows.append(_row("cold build", size, ours, None, "", note + skipped))
    else:
        time_target = COLD_TIME_OF_HUGO.get(size, 1.0) * theirs.seconds
        memory_target = COLD_MEMORY_OF_HUGO * theirs.mib
        target = f"≤ {time_target:.2f} s, ≤ {memory_target:.0f} MiB"
        verdict = (
            f"time {_verdict(ours.seconds <= time_target)}, memory {_verdict(ours.mib <= memory_target)}"
        )
        rows.append(_row("cold build", size, ours, theirs, target, note + verdict))

    # Incremental builds start from the state a cold build left.
    cold_digest()
    edited = _newest_published(corpus)
    original = edited.read_bytes()
    stat = edited.stat()
    try:
        for label in ("nothing changed", "one file touched", "one article edited"):
            measured = []
            for n in range(runs):
                if label == "one file touched":
                    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + (n + 1) * 10**9))
                elif label == "one article edited":
                    edited.write_bytes(original + f"\n\nEdited paragraph {n} of the benchmark.\n".encode())
                measured.append(measure(build))
            median = _median(measured)
            target = INCREMENTAL_TARGETS.get((label, size))
            rows.append(
                _row(
                    label,
                    size,
                    median,
                    None,
                    f"≤ {target:.1f} s" if target else "",
                    f"{runs} runs; " + (_verdict(median.seconds <= target) if target else ""),
                )
            )
    finally:
        edited.write_bytes(original)
        os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _row(what: str, size: int, ours: Run, hugo: Run | None, target: str, note: str) -> list[str]:
    return [
        what,
        f"{size:,}",
        f"{ours.seconds:.2f} s",
        f"{ours.cpu:.2f} s",
        f"{ours.mib:.0f} MiB",
        f"{hugo.seconds:.2f} s" if hugo else "—",
        f"{hugo.cpu:.2f} s" if hugo else "—",
        f"{hugo.mib:.0f} MiB" if hugo else "—",
        target,
        note,
    ]


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
            "",
            "",
            "",
            "",
            "",
            "≤ 300 ms",
            detail,
        ]
    )


def bench_smtp(work: Path, rows: list[list[str]]) -> None:
    sys.path.insert(0, str(PROJECT / "bench"))
    from smtp_bench import rows as mail_rows

    for what, size, rate, target, note in mail_rows(work):
        rows.append([what, size, rate, "", "", "", "", "", target, note])


def print_table(rows: list[list[str]]) -> None:
    header = [
        "what",
        "size",
        "time",
        "CPU",
        "peak memory",
        "Hugo time",
        "Hugo CPU",
        "Hugo memory",
        "target",
        "note",
    ]
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
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "10000"))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "0")) or None)
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
        if not Path(HUGO).exists():
            print(f"  {HUGO} not found: Hugo's columns are skipped (apt-get install hugo)", file=sys.stderr)
        if args.only in (None, "feeds"):
            for size in (int(s) for s in args.sizes.split(",")):
                bench_feeds(size, work, rows, args.runs or (5 if size <= 10_000 else 3))
        if args.only in (None, "digest"):
            bench_digest(work, rows)
        if args.only in (None, "smtp"):
            bench_smtp(work, rows)
    print_table(rows)


if __name__ == "__main__":
    main()
