"""The weekly job end to end with the outbox: what is new, once per period, resumed exactly (jobs.run)."""

from __future__ import annotations

import datetime as dt
import email
import threading
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner

from digest import jobs
from digest.cli import main
from digest.config import Config, load_config
from digest.errors import DigestError, Problem, StateError
from digest.exits import CONTENT_ERRORS as EXIT_CONTENT_ERRORS
from digest.exits import DELIVERY_FAILED as EXIT_DELIVERY_FAILED
from digest.exits import NOTHING_NEW as EXIT_NOTHING_NEW
from digest.exits import OK as EXIT_OK
from digest.exits import run_status
from digest.reports import BuildReport, RunReport, count
from digest.state import State, StoppedWaiting, run_lock

from conftest import NOW, Site, article_text
from smtp_server import write_run_config, write_subscribers

WEEK = dt.timedelta(days=7)


def config_of(site: Site) -> Config:
    return load_config(site.root / "config.toml")


def outbox(site: Site) -> dict[str, EmailMessage]:
    """The outbox's messages by file name."""
    found: dict[str, EmailMessage] = {}
    for path in sorted((site.root / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found[path.name] = message
    return found


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def cli(site: Site, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(site.root / "config.toml"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_first_run_sends_each_subscriber_their_topics_and_the_second_sends_nothing(
    run_site: Site,
) -> None:
    code, out, err = cli(run_site, "run", "--now", NOW.isoformat())
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "feeds: 2 of 2 articles published in 3 feeds; 5 files changed",
        "digest 2025-W27: 2 articles for 2 recipients (2 renderings)",
        f"delivered via outbox {run_site.root / 'outbox'}: 2 sent, 0 failed, 0 deferred",
    ]
    messages = outbox(run_site)
    assert sorted(messages) == ["2025-W27--ai@example.com.eml", "2025-W27--all@example.com.eml"]
    everything = messages["2025-W27--all@example.com.eml"]
    assert everything["To"] == "All <all@example.com>"
    assert "2025-W27" in everything["Subject"]
    assert "Alpha" in text_of(everything) and "Beta" in text_of(everything)
    only_ai = messages["2025-W27--ai@example.com.eml"]
    assert "Alpha" in text_of(only_ai) and "Beta" not in text_of(only_ai)
    assert everything["Message-ID"] != only_ai["Message-ID"]
    assert sorted(p.name for p in (run_site.root / "archive").iterdir()) == ["2025-W27.html", "index.html"]

    files = {p: p.stat().st_mtime_ns for p in (run_site.root / "outbox").iterdir()}
    code, out, err = cli(run_site, "run", "--now", (NOW + dt.timedelta(hours=3)).isoformat())
    assert code == 5
    assert out.splitlines()[1:] == ["digest 2025-W27 was already sent; nothing more until the next period"]
    assert {p: p.stat().st_mtime_ns for p in (run_site.root / "outbox").iterdir()} == files


def test_next_week_only_what_is_new_goes_out_including_a_late_arrival(run_site: Site) -> None:
    assert run_status(jobs.run(config_of(run_site), NOW)) == 0
    # After the W27 digest went out: a new article, and one dated in W26 that only appeared now.
    run_site.add("c.md", article_text("Gamma", "2025-07-03T10:00:00+08:00", main_topics=["AI"]))
    run_site.add("late.md", article_text("Late", "2025-06-28T10:00:00+08:00", main_topics=["AI"]))
    # A re-imported archive article is older than [digest] max_age (30 days): it does not flood anyone.
    run_site.add("old.md", article_text("Ancient", "2025-04-01T10:00:00+08:00", main_topics=["AI"]))
    report = jobs.run(config_of(run_site), NOW + WEEK)
    assert (report.period, report.articles, run_status(report)) == ("2025-W28", 2, 0)
    text = text_of(outbox(run_site)["2025-W28--all@example.com.eml"])
    assert "Gamma" in text and "Late" in text
    assert "Alpha" not in text and "Beta" not in text and "Ancient" not in text
    index = (run_site.root / "archive" / "index.html").read_text(encoding="utf-8")
    assert "2025-W27" in index and "2025-W28" in index


def test_nothing_published_means_nothing_sent_and_exit_5(site: Site) -> None:
    write_run_config(site.root)
    write_subscribers(site.root, 2)
    code, out, _ = cli(site, "run", "--now", NOW.isoformat())
    assert code == 5
    assert out.splitlines()[1:] == ["nothing new since the last digest; nothing sent"]
    assert not (site.root / "outbox").exists()


def test_next_digest_is_what_run_sends_and_records_nothing(run_site: Site) -> None:
    config = config_of(run_site)
    preview = jobs.upcoming(config, NOW).digest
    assert preview is not None
    assert not config.state.path.parent.exists()  # not even the folder of the database
    report = jobs.run(config, NOW)
    state = State.open(config.state.path)
    recorded = state.digest_for_period("2025-W27")
    state.close()
    assert recorded is not None and recorded.article_ids == preview.article_ids
    assert report.articles == len(preview.article_ids)
    assert jobs.upcoming(config, NOW + dt.timedelta(hours=1)).digest is None  # everything was sent


def test_one_rendering_per_distinct_topic_set_not_per_subscriber(run_site: Site) -> None:
    rows = [(f"all{i}@example.com", "", "") for i in range(10)]
    rows += [
        (f"ai{i}@example.com", "", "AI" if i % 2 else " ai") for i in range(10)
    ]  # one topic, two spellings
    rows += [(f"both{i}@example.com", "", "ai;policy") for i in range(10)]  # same articles as "all"
    rows += [("none@example.com", "", "Cooking")]
    write_subscribers(run_site.root, rows)
    report = jobs.run(config_of(run_site), NOW)
    assert (report.recipients, report.renders, report.no_match, report.sent) == (30, 2, 1, 30)
    assert report.summary_lines()[1] == (
        "digest 2025-W27: 2 articles for 30 recipients (2 renderings); "
        "1 subscriber has nothing in their topics"
    )


def test_skipped_articles_and_subscribers_are_reported_and_the_rest_goes_out(run_site: Site) -> None:
    run_site.add("broken.md", "---\ntitle: [unclosed\n---\nbody\n")
    write_subscribers(run_site.root, [("ok@example.com", "", ""), ("not an address", "", "")])
    code, out, err = cli(run_site, "run", "--now", NOW.isoformat())
    assert code == 3
    assert "broken.md" in err and "'not an address' is not a valid email address" in err
    assert sorted(outbox(run_site)) == ["2025-W27--ok@example.com.eml"]
    assert out.splitlines()[-1] == "2 problems (articles or subscribers skipped)"


def test_an_interrupted_digest_is_finished_with_the_content_it_was_recorded_with(run_site: Site) -> None:
    write_subscribers(
        run_site.root, [("a@example.com", "", ""), ("b@example.com", "", ""), ("leaving@example.com", "", "")]
    )
    stop = threading.Event()
    stop.set()  # as SIGTERM does to the scheduler: the digest is recorded, nothing more is sent
    first = jobs.run(config_of(run_site), NOW, stop=stop)
    assert (first.sent, first.left, run_status(first)) == (0, 3, 4)
    assert first.summary_lines()[-1] == "stopped: asked to stop; 3 recipients are left for the next run"

    # Between the interruption and the resume an article is edited and a subscriber leaves.
    run_site.add("a.md", article_text("Alpha, edited", "2025-06-25T10:00:00+08:00", main_topics=["AI"]))
    write_subscribers(run_site.root, [("a@example.com", "", ""), ("b@example.com", "", "")])
    second = jobs.run(config_of(run_site), NOW + dt.timedelta(hours=1))
    assert (second.resumed, second.period, second.sent, second.cancelled) == (["2025-W27"], None, 2, 1)
    assert run_status(second) == 0
    messages = outbox(run_site)
    assert sorted(messages) == ["2025-W27--a@example.com.eml", "2025-W27--b@example.com.eml"]
    for message in messages.values():
        assert "Alpha" in text_of(message) and "edited" not in text_of(message)
        assert message["Date"] == "Mon, 30 Jun 2025 08:00:00 +0800"  # the digest's time, not the resume's
    # The edited article was in a digest: it is not "new" next week.
    third = jobs.run(config_of(run_site), NOW + WEEK)
    assert run_status(third) == 5


def test_a_second_run_waits_for_the_lock_then_says_why_it_gave_up(run_site: Site) -> None:
    config = config_of(run_site)
    with (
        run_lock(config.state.path, timeout=1),
        pytest.raises(StateError, match=r"another digest run .* held the run lock for over 0\.2 s"),
    ):
        jobs.run(config, NOW, lock_timeout=0.2)
    assert not (run_site.root / "outbox").exists()


def test_run_takes_a_naive_now_in_the_site_timezone(run_site: Site) -> None:
    report = jobs.run(config_of(run_site), dt.datetime(2025, 6, 30, 8, 0))
    assert report.now == NOW
    assert report.period == "2025-W27"


def test_the_sample_subscribers_file_is_valid(tmp_path: Path) -> None:
    from conftest import PROJECT

    config = load_config(PROJECT / "config.toml")
    from digest.subscribers import load_subscribers

    result = load_subscribers(config)
    assert result.problems == []
    assert len(result.subscribers) == 3
    assert all(s.email.endswith(("@example.com", "@example.org")) for s in result.subscribers)
    assert any(s.topics for s in result.subscribers)


def nothing_recorded(site: Site) -> bool:
    state = State.open(config_of(site).state.path)
    try:
        return state.history().periods == () and state.history().sent_ids == frozenset()
    finally:
        state.close()


def test_a_subscribers_file_with_only_its_header_is_an_error_not_a_digest_sent_to_nobody(
    run_site: Site,
) -> None:
    write_subscribers(run_site.root, [])
    code, out, err = cli(run_site, "run", "--now", NOW.isoformat())
    assert (code, out) == (1, "")
    assert err == (
        f"Error: {run_site.root / 'subscribers.csv'}: no subscriber: the subscribers file lists nobody "
        "(add a row below the header email,name,topics)\n"
    )
    assert nothing_recorded(run_site)  # the articles are still new for the first real digest
    assert not (run_site.root / "outbox").exists() and not (run_site.root / "archive").exists()
    # The feeds come first, as the README promises: an empty list does not keep them stale.
    site_feed = feedparser.parse((run_site.root / "feeds" / "index.xml").read_bytes())
    assert sorted(entry.title for entry in site_feed.entries) == ["Alpha", "Beta"]
    # And once someone subscribes, the first digest still holds both articles.
    write_subscribers(run_site.root, [("all@example.com", "All", "")])
    report = jobs.run(config_of(run_site), NOW)
    assert (report.period, report.articles, report.sent) == ("2025-W27", 2, 1)


def test_when_every_subscriber_is_invalid_the_run_stops_naming_the_file(run_site: Site) -> None:
    write_subscribers(run_site.root, [("not an address", "", ""), ("x@localhost", "", "")])
    with pytest.raises(DigestError) as caught:
        jobs.run(config_of(run_site), NOW)
    assert str(caught.value).startswith(
        f"{run_site.root / 'subscribers.csv'}: no usable subscriber: every one in the subscribers file "
        "was skipped (2 problems); the first: "
    )
    assert "'not an address' is not a valid email address" in str(caught.value)
    assert nothing_recorded(run_site)


# ---------------------------------------------------------------- what `run` says, and its status


def test_the_run_summary_says_one_thing_in_the_singular() -> None:
    build = BuildReport(articles=1, published=1, feeds=1, written=["index.xml"])
    report = RunReport(
        now=NOW, build=build, period="2025-W27", articles=1, recipients=1, no_match=1, renders=1
    )
    report.transport, report.sent = "outbox", 0
    report.deferred = [("a@example.com", "452 full")]
    report.stopped, report.left = "asked to stop", 1
    report.problems = [Problem("x.md", "unreadable")]
    assert report.summary_lines() == [
        "feeds: 1 of 1 article published in 1 feed; 1 file changed",
        "digest 2025-W27: 1 article for 1 recipient (1 rendering); 1 subscriber has nothing in their topics",
        "delivered via outbox: 0 sent, 0 failed, 1 deferred",
        "deferred: a@example.com: 452 full",
        "1 deferred recipient is retried by the next run",
        "stopped: asked to stop; 1 recipient is left for the next run",
        "1 problem (articles or subscribers skipped)",
    ]
    assert [count(n, "feed") for n in (0, 1, 2)] == ["0 feeds", "1 feed", "2 feeds"]


def test_exit_statuses_are_the_constants_the_cli_uses() -> None:
    assert (EXIT_OK, EXIT_CONTENT_ERRORS, EXIT_DELIVERY_FAILED, EXIT_NOTHING_NEW) == (0, 3, 4, 5)
    report = RunReport(now=NOW)
    assert run_status(report) == EXIT_NOTHING_NEW
    report.period = "2025-W27"
    assert run_status(report) == EXIT_OK
    report.problems = [Problem("x.md", "unreadable")]
    assert run_status(report) == EXIT_CONTENT_ERRORS
    report.left = 1
    assert run_status(report) == EXIT_DELIVERY_FAILED


def test_a_run_told_to_stop_while_waiting_for_the_lock_gives_up_at_once(run_site: Site) -> None:
    config = config_of(run_site)
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    with run_lock(config.state.path, timeout=1), pytest.raises(StoppedWaiting, match="stopped while waiting"):
        jobs.run(config, NOW, stop=stop, lock_timeout=5)
    assert time.monotonic() - started < 1  # at once, not after the lock timeout
    assert not (run_site.root / "outbox").exists()


def test_correcting_the_date_of_a_sent_article_does_not_send_it_again(run_site: Site) -> None:
    assert run_status(jobs.run(config_of(run_site), NOW)) == EXIT_OK
    # The editor corrects Alpha's date after it went out; nothing else is new next week.
    run_site.add("a.md", article_text("Alpha", "2025-06-24T10:00:00+08:00", main_topics=["AI"]))
    report = jobs.run(config_of(run_site), NOW + WEEK)
    assert run_status(report) == EXIT_NOTHING_NEW
    assert jobs.upcoming(config_of(run_site), NOW + WEEK).digest is None


# ---------------------------------------------------------------- one summary, in the feed and the email

AWKWARD_BODIES = {
    # A setext heading is a heading, not the first sentence.
    "Setext": "A Heading Underlined\n====================\n\nThe setext article starts here. It goes on.",
    # An indented code block is code.
    "Indented": "    result = compute(42)\n    print(result)\n\nThe indented article explains the code.",
    # An iframe's fallback text is never shown: the sanitiser drops the frame with its content.
    "Iframe": '<iframe src="https://video.example.com/1">Your browser shows no frames.</iframe>\n\n'
    "The iframe article talks about the video.",
}


def test_the_feed_and_the_email_show_one_summary_of_an_article(site: Site) -> None:
    write_run_config(site.root)
    write_subscribers(site.root, [("all@example.com", "All", "")])
    for n, (title, body) in enumerate(AWKWARD_BODIES.items()):
        site.add(f"{title.lower()}.md", article_text(title, f"2025-06-2{5 + n}T10:00:00+08:00", body=body))
    report = jobs.run(config_of(site), NOW)
    assert (report.articles, report.sent) == (3, 1)
    in_feed = {e.title: e.summary for e in feedparser.parse((site.feeds / "index.xml").read_bytes()).entries}
    assert in_feed == {
        "Setext": "The setext article starts here. It goes on.",
        "Indented": "The indented article explains the code.",
        "Iframe": "The iframe article talks about the video.",
    }
    text = text_of(outbox(site)["2025-W27--all@example.com.eml"])
    for title, summary in in_feed.items():
        # The text part shows each item as its title, a date line, then the summary.
        lines = text.splitlines()
        at = lines.index(title)
        assert lines[at + 2] == summary, (title, lines[at : at + 4])
