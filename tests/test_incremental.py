"""Incremental builds: after any change to the content folder (or the clock), a build that reuses the
article index writes the bytes a build without any cache writes, and parses only what changed."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from digest.content import collect, is_published
from digest.feeds import plan_feeds, render_files
from digest.jobs import build, peek_stable_ids, render_entries
from digest.reports import BuildReport
from digest.state import peek_feed_owners

from conftest import SHARED, Site, article_text

GENERATOR_NOW = dt.datetime.fromisoformat("2026-12-01T00:00:00+08:00")


class Pair:
    """A site built incrementally, each build checked against the whole pipeline run from scratch on
    every article (no index, no cache): the feeds' bytes, the counts and the problems."""

    def __init__(self, tmp_path: Path) -> None:
        self.site = Site(tmp_path / "site")
        self.site.set("feeds", max_entries=4)  # short feeds: which articles make the cut matters
        self.now = GENERATOR_NOW

    def generate(self, articles: int, seed: int) -> None:
        """Generated articles in the content folder (../shared/corpus/gen.py, 8 topics)."""
        subprocess.run(
            [sys.executable, str(SHARED / "corpus" / "gen.py"), "--n", str(articles),
             "--out", str(self.site.content), "--seed", str(seed), "--topics", "8",
             "--now", GENERATOR_NOW.isoformat()],
            check=True, capture_output=True,
        )  # fmt: skip

    def build(self, workers: int = 1) -> BuildReport:
        config = self.site.config()
        report = build(config, self.now, workers=workers)
        collection = collect(config, cache=None, bodies=False)
        articles = peek_stable_ids(collection.articles, config.state.path)  # the ids the build recorded
        published = [a for a in articles if is_published(a, self.now)]
        owners = peek_feed_owners(config.state.path, str(config.feeds.dir))  # files keep their topics
        plan = plan_feeds(published, config, None, owners)
        expected = render_files(plan, render_entries(plan.articles, config, None), config)
        assert {name: (self.site.feeds / name).read_bytes() for name in expected} == expected
        assert (report.articles, report.published) == (len(collection.articles), len(published))
        assert report.problems == collection.problems
        return report


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    pair = Pair(tmp_path)
    pair.generate(80, seed=11)
    first = pair.build()
    assert first.parsed == 80 and first.published > 40
    return pair


def _newest_in_feed(site: Site) -> Path:
    import feedparser

    link = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries[0].link
    return site.content / (link.rstrip("/").rsplit("/", 1)[1] + ".md")


def test_touch_edit_delete_and_add_each_give_the_cold_bytes_parsing_only_what_changed(pair: Pair) -> None:
    newest = _newest_in_feed(pair.site)
    stat = newest.stat()
    os.utime(newest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = pair.build()
    assert touched.parsed == 1 and touched.written == []
    assert touched.up_to_date and touched.rendered == 0  # read again, found the same: nothing else redone

    newest.write_text(newest.read_text(encoding="utf-8") + "\n\nA paragraph added later.\n", encoding="utf-8")
    edited = pair.build()
    assert edited.parsed == 1 and "index.xml" in edited.written

    newest.unlink()
    deleted = pair.build()
    assert deleted.parsed == 0 and "index.xml" in deleted.written

    pair.site.add(
        "fresh.md", article_text("Fresh", date="2026-11-30T23:00:00+08:00", main_topics=["前沿模型与算法"])
    )
    added = pair.build()
    assert added.parsed == 1 and "index.xml" in added.written


def test_a_clash_added_and_resolved_gives_the_cold_bytes_and_problems(pair: Pair) -> None:
    owner = _newest_in_feed(pair.site)
    pair.site.add(f"sub/{owner.name}", article_text("Same slug", date="2026-11-30T23:30:00+08:00"))
    clash = pair.build()
    assert [p.message for p in clash.problems if "already used" in p.message]
    owner.unlink()  # the one that kept the slug is gone: the other one publishes
    resolved = pair.build()
    assert not [p for p in resolved.problems if "already used" in p.message]


def test_a_draft_an_unreadable_file_and_the_clock_give_the_cold_bytes(pair: Pair) -> None:
    newest = _newest_in_feed(pair.site)
    text = newest.read_text(encoding="utf-8")
    newest.write_text(text.replace("\ndraft: false", "\ndraft: true", 1), encoding="utf-8")
    assert "draft: true" in newest.read_text(encoding="utf-8")
    pair.build()
    pair.site.add("broken.md", "---\ntitle: [unclosed\n---\nbody\n")
    broken = pair.build()
    assert any(p.path.endswith("broken.md") for p in broken.problems)
    # Scheduled articles come out as the clock passes them, with no file changed.
    pair.site.add("later.md", article_text("Later", date="2026-12-03T08:00:00+08:00"))
    pair.build()
    pair.now = dt.datetime.fromisoformat("2026-12-04T00:00:00+08:00")
    later = pair.build()
    assert later.parsed == 0 and "index.xml" in later.written


def test_articles_tied_at_the_last_place_of_a_feed_are_ordered_as_cold(pair: Pair) -> None:
    import feedparser

    entries = feedparser.parse((pair.site.feeds / "index.xml").read_bytes()).entries
    last = entries[-1].published  # the fourth newest, as written: add two more at exactly its time
    # Ties are broken by entry id, whatever the order of the files' names.
    for name, entry_id in (("aa-tie.md", "a:tie"), ("zz-tie.md", "zz:tie")):
        pair.site.add(name, article_text(name, date=last, id=entry_id))
    tied = pair.build()
    assert tied.parsed == 2


def test_a_parallel_incremental_build_gives_the_cold_bytes(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest import content

    monkeypatch.setattr(content, "_PARALLEL_THRESHOLD", 5)
    for n, path in enumerate(sorted(pair.site.content.glob("*.md"))[:20]):
        path.write_text(path.read_text(encoding="utf-8") + f"\n\nEdit {n}.\n", encoding="utf-8")
    report = pair.build(workers=2)
    assert report.parsed == 20


def test_the_oldest_article_of_a_topic_names_its_feed_though_it_is_in_no_feed(pair: Pair) -> None:
    pair.site.add(
        "old.md", article_text("Old", date="2020-01-01T08:00:00+08:00", main_topics=["ai应用与产品创新"])
    )
    named = pair.build()
    assert named.parsed == 1
    assert "Test Site · ai应用与产品创新" in (pair.site.feeds / "feeds.opml").read_text(encoding="utf-8")


def test_a_clash_among_many_changed_files_is_found_as_among_few(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest import content

    monkeypatch.setattr(content, "_BATCHED_CHANGES", 3)
    owner = _newest_in_feed(pair.site)
    pair.site.add(f"sub/{owner.name}", article_text("Same slug", date="2026-11-30T23:30:00+08:00"))
    for path in sorted(pair.site.content.glob("*.md"))[:10]:
        path.write_text(path.read_text(encoding="utf-8") + "\n\nEdited.\n", encoding="utf-8")
    report = pair.build()
    assert report.parsed == 11
    assert [p.message for p in report.problems if "already used" in p.message]


def test_after_a_cold_build_in_bulk_every_change_gives_the_cold_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold build of many files adds them in bulk (the index's own indexes made once, at the end):
    the builds after it must find what they ask for as after any other."""
    from digest import content

    monkeypatch.setattr(content, "_BATCHED_CHANGES", 3)
    pair = Pair(tmp_path)
    pair.generate(60, seed=12)
    assert pair.build().parsed == 60
    edited = _newest_in_feed(pair.site)
    edited.write_text(edited.read_text(encoding="utf-8") + "\n\nEdited.\n", encoding="utf-8")
    assert pair.build().parsed == 1
    pair.site.add("late.md", article_text("Late", date="2026-11-30T23:59:00+08:00", main_topics=["新话题"]))
    assert pair.build().parsed == 1


def test_a_file_read_again_with_the_same_result_leaves_the_index_as_it_was(pair: Pair) -> None:
    """A touched file is parsed again; when the parse is the one stored, the index is unchanged (its
    generation stands), so the build takes the last build's feeds as they are."""
    from digest.cache import Cache
    from digest.state import State

    def generation() -> int:
        state = State.open(pair.site.config().state.path)
        try:
            return Cache(state.db).generation()
        finally:
            state.close()

    newest = _newest_in_feed(pair.site)
    before = generation()
    stat = newest.stat()
    os.utime(newest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert pair.build().parsed == 1
    assert generation() == before
    newest.write_text(newest.read_text(encoding="utf-8") + "\n\nEdited.\n", encoding="utf-8")
    assert "index.xml" in pair.build().written
    assert generation() != before


def test_a_rendering_setting_changed_gives_the_cold_bytes(pair: Pair) -> None:
    """The feeds' summaries follow `[content] summary_chars`: a feed kept from the last build must not
    keep the old ones."""
    pair.site.set("content", summary_chars=40)
    assert pair.build().written  # the feeds with a derived summary (Pair compares every byte with cold)
