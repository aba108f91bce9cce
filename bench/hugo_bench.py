"""A cold `digest build` of a generated Hugo site beside the real `hugo` on the same site, in one run.

Not a test: numbers, measured on this machine. The site is `tests/hugo_sites.sized_site` (10,000 content
files by default: a bilingual blog with sections, bundles, per-section permalinks, tags, refs). Each
command runs `--repeat` times (default 3) from cold: digest with a fresh state database and no feeds,
hugo with a fresh destination and cache folder. Printed: the median wall time, the slowest, the median
CPU time (user + system, workers included) and the peak memory of the whole process tree
(`bench.measure`: proportional set size), with the load average before and after (the machine is
shared). A command that does not exit 0 stops the benchmark.

  digest build   `digest build` on `[content] hugo_site` (every language's feeds, 50 entries a feed)
  one edited     then: one page's body changed, `digest build` again (the per-file parses cached)
  hugo list all  `hugo list all`: Hugo reading the site and deciding every page, nothing rendered
  hugo feeds     `hugo --config hugo.toml,feeds.toml`: Hugo's RSS only (no page HTML), 50 entries a feed

    .venv/bin/python bench/hugo_bench.py [--pages 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT / "tests"), str(PROJECT / "bench")]

from bench import DIGEST, NOW, measure  # noqa: E402

from hugo_sites import sized_site  # noqa: E402


def _config(folder: Path, site: Path) -> Path:
    path = folder / "digest.toml"
    path.write_text(
        f'[content]\nhugo_site = "{site}"\n[feeds]\ndir = "feeds"\n[state]\npath = "state.sqlite3"\n',
        encoding="utf-8",
    )
    return path


def _runs(
    name: str,
    command: list[str],
    fresh: list[Path],
    repeat: int,
    rows: list[tuple[str, ...]],
    before: Callable[[], None] | None = None,
) -> None:
    times, cpus, peaks = [], [], []
    for _ in range(repeat):
        if before is not None:
            before()
        for path in fresh:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        run = measure(command)
        if run.status != 0:
            raise SystemExit(f"{name}: exit status {run.status}")
        times.append(run.seconds)
        cpus.append(run.cpu)
        peaks.append(run.mib)
    median, slowest, cpu = statistics.median(times), max(times), statistics.median(cpus)
    rows.append((name, f"{median:.2f} s", f"{slowest:.2f} s", f"{cpu:.2f} s", f"{max(peaks):.0f} MiB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    hugo = shutil.which("hugo")
    if hugo is None:
        raise SystemExit("hugo is not installed (make hugo installs Debian's)")
    with tempfile.TemporaryDirectory(prefix="digest-hugo-bench-") as tmp:
        work = Path(tmp)
        site = sized_site(work / "site", args.pages, feeds_only=True)
        folder = work / "digest"
        folder.mkdir()
        config = _config(folder, site)
        env_home = work / "home"
        env_home.mkdir()
        os.environ["HOME"] = str(env_home)  # hugo writes nothing of its own outside the folders named
        before = os.getloadavg()
        rows: list[tuple[str, ...]] = []
        digest = [*DIGEST, "--config", str(config), "build", "--now", NOW]
        _runs("digest build, cold", digest, [folder / "feeds", folder / "state.sqlite3"], args.repeat, rows)
        # After the cold runs the state holds every parse: each run edits one page, then builds.
        page = site / "content" / "posts" / "p00004.md"
        edits = iter(range(args.repeat))

        def edit() -> None:
            text = page.read_text(encoding="utf-8")
            page.write_text(text + f"\nEdit {next(edits)}.\n", encoding="utf-8")

        _runs("digest build, one page edited", digest, [], args.repeat, rows, before=edit)
        listing = [hugo, "list", "all", "--source", str(site)]
        _runs("hugo list all", listing, [], args.repeat, rows)
        public, cache = work / "public", work / "hugo-cache"
        feeds = [hugo, "--quiet", "--source", str(site), "--config", "hugo.toml,feeds.toml"]
        feeds += ["--destination", str(public), "--cacheDir", str(cache)]
        _runs("hugo feeds only", feeds, [public, cache], args.repeat, rows)
        after = os.getloadavg()
    print(f"Hugo site: {args.pages:,} generated pages, {os.cpu_count()} cores, medians of {args.repeat}")
    print(f"load average before: {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}")
    print(f"load average after:  {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    print("| what | wall, median | wall, slowest | CPU, median | peak memory |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
