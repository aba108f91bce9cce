"""A body Python-Markdown takes minutes over (issue 10: 50,000 `[` took 252 s) is stopped at its budget,
`[content] render_timeout`: reported on one line naming the file and the budget, absent from the feeds
and the digest, and the other articles publish as if it were not there. Every command finishes."""

from __future__ import annotations

import email
import os
import select
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import load_config
from digest.errors import ConfigError
from digest.jobs import build

from conftest import NOW, NOW_ISO, Site, article_text
from smtp_server import write_run_config, write_subscribers

BUDGET = 2  # seconds; each slow body below takes minutes
DIGEST = str(Path(sys.executable).with_name("digest"))
# Each is quadratic or worse in Python-Markdown 3's inline patterns (`LinkInlineProcessor` and
# `ImageInlineProcessor` scan to the end of the block for every unmatched bracket; footnote references
# and inline links start the same scan): 2,000 of each take 4 to 8 s, and the cost grows with the square.
SLOW_BODIES = {
    "brackets": "[" * 50_000,
    "images": "![" * 25_000,
    "footnotes": "[^" * 25_000,
    "links": "[a](" * 12_500,
}
SLOW_LINE = (
    f"skipped: content/slow.md: Markdown took longer than {BUDGET} s to render, so the article is not "
    "published (raise [content] render_timeout, or simplify the body: long runs of unmatched '[' are slow)"
)


def digest_cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `digest` command, in its own process: a hang fails the test at the timeout."""
    return subprocess.run(
        [DIGEST, "--config", str(site.config_path), *args],
        capture_output=True,
        text=True,
        cwd=site.root,
        timeout=120,
        check=False,
    )


def feed_bytes(site: Site) -> dict[str, bytes]:
    return {str(p.relative_to(site.feeds)): p.read_bytes() for p in sorted(site.feeds.rglob("*.xml"))}


def good_articles(site: Site) -> None:
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00", main_topics=["AI"]))
    site.add("b.md", article_text("Beta", "2025-06-26T10:00:00+08:00", main_topics=["AI"]))
    site.add("c.md", article_text("Gamma", "2025-06-27T10:00:00+08:00", main_topics=["AI"]))


def slow_article(site: Site, body: str = SLOW_BODIES["brackets"]) -> None:
    # The newest of all: were it only dropped after planning, the feeds would be one entry short.
    site.add("slow.md", article_text("Slow", "2025-06-28T10:00:00+08:00", body=body, main_topics=["AI"]))


def test_50000_brackets_are_one_problem_line_and_the_other_articles_publish(site: Site) -> None:
    site.set("content", render_timeout=BUDGET)
    good_articles(site)
    slow_article(site)
    result = digest_cli(site, "build", "--now", NOW_ISO)
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines() == [SLOW_LINE]
    assert result.stdout == "3 of 4 articles published in 2 feeds; 4 files changed; 1 problem\n"
    feeds = feed_bytes(site)
    assert feeds and all(b"Slow" not in data for data in feeds.values())
    assert all(b"Gamma" in data for data in feeds.values())

    # The verdict is the render cache's: the next build reports it again, the same way, and makes the
    # same bytes (the fast path: nothing changed), also after another article changed.
    again = digest_cli(site, "build", "--now", NOW_ISO)
    assert (again.returncode, again.stderr.splitlines()) == (3, [SLOW_LINE])
    site.add("d.md", article_text("Delta", "2025-06-24T10:00:00+08:00", main_topics=["AI"]))
    changed = digest_cli(site, "build", "--now", NOW_ISO)
    assert (changed.returncode, changed.stderr.splitlines()) == (3, [SLOW_LINE])
    assert all(b"Slow" not in data for data in feed_bytes(site).values())


@pytest.mark.parametrize("kind", sorted(SLOW_BODIES))
def test_feeds_are_those_of_the_site_without_the_slow_article(tmp_path: Path, kind: str) -> None:
    """Another article takes the slow one's place: the feeds are byte for byte those built without it."""
    without, with_slow = Site(tmp_path / "without"), Site(tmp_path / "with")
    for site in (without, with_slow):
        site.set("content", render_timeout=BUDGET)
        site.set("feeds", max_entries=2)
        good_articles(site)
    slow_article(with_slow, SLOW_BODIES[kind])
    expected = build(without.config(), NOW)
    report = build(with_slow.config(), NOW)
    assert [(Path(p.path).name, f"{p.path}: {p.message} ({p.hint})") for p in report.problems] == [
        ("slow.md", SLOW_LINE.replace("skipped: content/slow.md", str(with_slow.content / "slow.md")))
    ]
    assert expected.problems == []
    assert feed_bytes(with_slow) == feed_bytes(without)
    assert b"Beta" in feed_bytes(without)["index.xml"]


def test_a_killed_worker_costs_no_other_article_in_a_parallel_build(tmp_path: Path) -> None:
    """Enough articles for the render pool on two workers: three slow bodies are three killed workers,
    and the 70 others render all the same, in the same feeds as a site that never had the slow ones."""
    without, with_slow = Site(tmp_path / "without"), Site(tmp_path / "with")
    for site in (without, with_slow):
        site.set("content", render_timeout=BUDGET)
        for n in range(70):
            site.add(f"p{n:02d}.md", article_text(f"Post {n}", f"2025-06-{1 + n % 28:02d}T10:00:00+08:00"))
    for n, body in enumerate(["[" * 50_000, "![" * 25_000, "[^" * 25_000]):
        with_slow.add(f"slow{n}.md", article_text(f"Slow {n}", "2025-06-29T10:00:00+08:00", body=body))
    expected = build(without.config(), NOW, workers=2)
    report = build(with_slow.config(), NOW, workers=2)
    assert [Path(p.path).name for p in report.problems] == [f"slow{n}.md" for n in range(3)]
    assert (report.published, expected.published) == (70, 70)
    assert feed_bytes(with_slow) == feed_bytes(without)


def test_markdown_that_raises_is_one_problem_line(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A list nested 300 deep exhausts Python-Markdown's recursion: the article is reported, not a
    traceback (within the default budget: it raises after about 3 s)."""
    monkeypatch.chdir(site.root)
    site.add("deep.md", article_text("Deep", body="".join(" " * 4 * i + "- a\n" for i in range(300))))
    site.add("good.md", article_text("Good"))
    result = CliRunner().invoke(main, ["--config", str(site.config_path), "build", "--now", NOW_ISO])
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines() == [
        "skipped: content/deep.md: Markdown could not be rendered (RecursionError: nested too deeply), "
        "so the article is not published (simplify the body)"
    ]
    assert b"Good" in (site.feeds / "index.xml").read_bytes()


def test_run_check_and_preview_finish_and_leave_the_slow_article_out(site: Site) -> None:
    write_run_config(site.root)
    site.set("content", render_timeout=BUDGET)
    write_subscribers(site.root, [("all@example.com", "All", "")])
    good_articles(site)
    slow_article(site)

    checked = digest_cli(site, "check")
    assert checked.returncode == 0, checked.stderr

    preview = digest_cli(site, "preview", "--now", NOW_ISO, "--out", str(site.root / "preview.html"))
    assert preview.returncode == 0, preview.stderr
    page = (site.root / "preview.html").read_text(encoding="utf-8")
    assert "Gamma" in page and "Slow" not in page

    ran = digest_cli(site, "run", "--now", NOW_ISO)
    assert ran.returncode == 3, ran.stderr
    assert [line for line in ran.stderr.splitlines() if "slow.md" in line] == [SLOW_LINE]
    [path] = (site.root / "outbox").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Gamma" in text.get_content() and "Slow" not in text.get_content()


@pytest.mark.parametrize("value", ["0", "-1", "3601", '"2"', "nan", "inf"])
def test_render_timeout_out_of_range_is_a_config_error_naming_the_key(site: Site, value: str) -> None:
    text = site.config_path.read_text(encoding="utf-8")
    site.config_path.write_text(text.replace('dir = "content"', f'dir = "content"\nrender_timeout = {value}'))
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    assert caught.value.key == "content.render_timeout"


def test_a_worker_dies_with_its_command(site: Site) -> None:
    """`digest build` killed outright (SIGKILL, the OOM killer) while a worker is minutes into a slow
    body: the kernel stops the worker too, rather than leave it running for minutes."""
    site.set("content", render_timeout=600)
    good_articles(site)
    slow_article(site)
    command = subprocess.Popen(
        [DIGEST, "--config", str(site.config_path), "build", "--now", NOW_ISO],
        cwd=site.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children = Path(f"/proc/{command.pid}/task/{command.pid}/children")
    deadline = time.monotonic() + 60
    while not (workers := children.read_text().split()) and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the command to start its worker, not for a result
    assert workers, "no render worker started"
    command.kill()
    command.wait()
    try:
        exited = os.pidfd_open(int(workers[0]))
    except ProcessLookupError:
        return  # already gone
    try:
        readable, _, _ = select.select([exited], [], [], 10)  # readable once the process has ended
    finally:
        os.close(exited)
    assert readable, "the worker outlived its command"
