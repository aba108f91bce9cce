"""Scale and oracle test: a generated corpus, built, agrees with the generator's own manifest."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import feedparser
import pytest

from digest.content import topic_key
from digest.jobs import build

from conftest import SHARED, Site

GENERATOR_NOW = "2026-12-01T00:00:00+08:00"


def test_feeds_hold_exactly_the_published_articles_the_manifest_predicts(site: Site, tmp_path: Path) -> None:
    corpus = site.content
    subprocess.run(
        [
            sys.executable,
            str(SHARED / "corpus" / "gen.py"),
            "--n",
            "300",
            "--out",
            str(corpus),
            "--seed",
            "3",
            "--topics",
            "14",
            "--now",
            GENERATOR_NOW,
            "--manifest",
            str(tmp_path / "manifest.jsonl"),
        ],
        check=True,
        capture_output=True,
    )
    manifest = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    site.set("feeds", max_entries=1000)
    report = build(site.config(), dt.datetime.fromisoformat(GENERATOR_NOW))
    assert report.articles == len(manifest)
    assert report.problems == []
    now = dt.datetime.fromisoformat(GENERATOR_NOW)

    def date_of(m: dict[str, object]) -> dt.datetime:
        # A date without an offset is in the site timezone (Asia/Shanghai), as the README says.
        date = dt.datetime.fromisoformat(str(m["date"]))
        return date if date.tzinfo else date.replace(tzinfo=now.tzinfo)

    with_offset = [m for m in manifest if dt.datetime.fromisoformat(m["date"]).tzinfo is not None]
    assert with_offset  # the generator's own "future" agrees with our reading of these dates
    for m in with_offset:
        assert m["future"] == (date_of(m) > now)
    published = [m for m in manifest if not m["draft"] and date_of(m) <= now]
    assert report.published == len(published)
    assert 0 < len(published) < len(manifest)  # the corpus has drafts and future articles to leave out

    def slug(entry_link: str) -> str:
        return entry_link.rstrip("/").rsplit("/", 1)[1]

    site_feed = feedparser.parse((site.feeds / "index.xml").read_bytes())
    expected = sorted(published, key=date_of, reverse=True)
    assert [slug(e.link) for e in site_feed.entries] == [m["file"].removesuffix(".md") for m in expected]

    by_topic: dict[str, set[str]] = {}
    for m in published:
        for topic in m["topics"]:
            by_topic.setdefault(topic_key(topic), set()).add(m["file"].removesuffix(".md"))
    seen_topics = 0
    for path in site.feeds.glob("*.xml"):
        if path.name == "index.xml":
            continue
        parsed = feedparser.parse(path.read_bytes())
        topic = parsed.feed.title.split(" · ", 1)[1]
        assert {slug(e.link) for e in parsed.entries} == by_topic[topic_key(topic)], topic
        seen_topics += 1
    assert seen_topics == len(by_topic)


def test_a_parallel_cold_build_writes_the_same_bytes_as_a_serial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import digest.workers
    from digest import content, jobs
    from digest.config import load_config
    from digest.workers import bounded_map

    from conftest import BASE_CONFIG

    corpus = tmp_path / "corpus"
    subprocess.run(
        [sys.executable, str(SHARED / "corpus" / "gen.py"), "--n", "120", "--out", str(corpus), "--seed", "5",
         "--topics", "8", "--now", GENERATOR_NOW],
        check=True, capture_output=True,
    )  # fmt: skip
    # Small enough to be quick, so lower the thresholds above which a build uses worker processes.
    monkeypatch.setattr(content, "_PARALLEL_THRESHOLD", 10)
    monkeypatch.setattr(jobs, "_PARALLEL_RENDER_THRESHOLD", 10)
    pools: list[tuple[str, int | None]] = []  # the real pools, counted: the two-worker build must use them

    class CountedPool(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, max_workers: int | None = None, **options: Any) -> None:
            pools.append(("parse", max_workers))
            super().__init__(max_workers, **options)

    def counted_render_pool(func: Any, items: Any, *, budget: float, workers: int) -> Any:
        pools.append(("render", workers))
        return bounded_map(func, items, budget=budget, workers=workers)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", CountedPool)
    monkeypatch.setattr(digest.workers, "bounded_map", counted_render_pool)
    outputs = {}
    for workers in (1, 2):
        site = Site(tmp_path / f"site{workers}")
        shutil.rmtree(site.content)
        shutil.copytree(corpus, site.content)
        site.write_config(base=BASE_CONFIG)
        config = load_config(site.config_path)
        report = build(config, dt.datetime.fromisoformat(GENERATOR_NOW), workers=workers)
        assert report.parsed == 120 and report.rendered > 10
        # Parsing, then rendering, on two processes; one worker renders alone (in its own process, which
        # can be stopped: a render has a time budget), and parses in this one.
        two = [("parse", 2), ("render", 2)]
        assert pools == ([("render", 1)] if workers == 1 else [("render", 1), *two])
        outputs[workers] = {p.name: p.read_bytes() for p in site.feeds.iterdir()}
        again = build(
            config, dt.datetime.fromisoformat(GENERATOR_NOW) + dt.timedelta(seconds=1), workers=workers
        )
        assert again.parsed == 0  # what the workers parsed was cached
    assert outputs[1] == outputs[2]
