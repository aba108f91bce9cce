"""Which articles a digest holds, grouped and ordered (selection.py), and how it reads (present.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
from typing import Any

import pytest

from digest.config import Config
from digest.content import Article, collect
from digest.feeds import topic_slug
from digest.present import build_context, format_date, with_utm
from digest.selection import Digest, for_topics, move_oldest_to_overflow, period_of, select_digest

from conftest import NOW, SEEDS, Site, article_text

SEED = SEEDS / "000_040d16bb7ab5a125.txt"
SEED_TITLE = "Kimi能否穿越“月之暗面”：AI创业浪潮中的战略迷思与重塑之路"
CST = dt.timezone(dt.timedelta(hours=8))


def configured(site: Site, site_fields: dict[str, Any] | None = None, **digest_fields: Any) -> Config:
    """The site's config with some [digest] (and [site]) values replaced."""
    config: Config = site.config()
    return dataclasses.replace(
        config,
        site=dataclasses.replace(config.site, **(site_fields or {})),
        digest=dataclasses.replace(config.digest, **digest_fields),
    )


def articles(config: Config) -> list[Article]:
    collection = collect(config)
    assert collection.problems == []
    return collection.articles


def at(day: int, hour: int = 9) -> str:
    return f"2025-06-{day:02d}T{hour:02d}:00:00+08:00"


def titles(digest: Digest) -> list[str]:
    return [item.article.title for item in digest.items]


def test_the_seed_article_is_in_the_first_digest(site: Site) -> None:
    shutil.copy(SEED, site.content)
    config = configured(site)
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    assert digest.period == "2025-W27"
    assert digest.now == NOW
    assert digest.since == NOW - dt.timedelta(days=7)
    [group] = digest.groups
    assert group.topic.name == "产业生态与商业版图"
    assert re.fullmatch(r"[a-z0-9-]+", group.anchor)
    [item] = group.items
    assert item.article.title == SEED_TITLE
    assert item.labels == ("投融资与市场洞察", "前沿模型与算法")
    assert item.summary.startswith("曾几何时被寄予厚望的Kimi")
    assert item.image.startswith("https://example.com/newsimages/selected_image_YYYY-06-Jun%2025")
    assert " " not in item.image
    assert digest.article_ids == (item.article.entry_id,)


def test_period_is_the_iso_week_in_the_site_timezone(site: Site) -> None:
    config = configured(site)
    # Sunday 20:00 UTC is already Monday morning in Shanghai: the next ISO week there.
    sunday_utc = dt.datetime(2025, 6, 29, 20, 0, tzinfo=dt.UTC)
    assert sunday_utc.strftime("%G-W%V") == "2025-W26"
    assert period_of(sunday_utc, config) == "2025-W27"
    # ISO years differ from calendar years around New Year.
    assert period_of(dt.datetime(2024, 12, 30, 12, 0, tzinfo=CST), config) == "2025-W01"


def test_first_digest_covers_first_lookback_days_only(site: Site) -> None:
    site.add("old.md", article_text("Old", at(22, 7)))  # 8 days + 1 h before NOW
    site.add("edge.md", article_text("Edge", at(23, 8)))  # exactly 7 days before: not after the bound
    site.add("new.md", article_text("New", at(23, 9)))
    config = configured(site)
    assert titles(select_digest(articles(config), config, NOW) or pytest.fail("no digest")) == ["New"]
    wider = configured(site, first_lookback=10)
    assert set(titles(select_digest(articles(wider), wider, NOW) or pytest.fail())) == {"Old", "Edge", "New"}


def test_first_digest_starts_at_since_when_set(site: Site) -> None:
    site.add("may.md", article_text("May", "2025-05-31T23:00:00+08:00"))
    site.add("june.md", article_text("June", "2025-06-01T09:00:00+08:00"))
    # A TOML date without a time is naive: it means midnight in the site timezone.
    config = configured(site, since=dt.datetime(2025, 6, 1))
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    assert titles(digest) == ["June"]
    assert digest.since == dt.datetime(2025, 6, 1, tzinfo=config.site.tz)


def test_only_published_articles(site: Site) -> None:
    site.add("draft.md", article_text("Draft", at(27), draft=True))
    site.add("future.md", article_text("Future", "2025-07-01T09:00:00+08:00"))
    site.add("scheduled.md", article_text("Scheduled", at(20), publishDate="2025-07-02T09:00:00+08:00"))
    site.add("expired.md", article_text("Expired", at(27), expiryDate="2025-06-29T00:00:00+08:00"))
    site.add("ok.md", article_text("OK", at(27)))
    config = configured(site)
    assert titles(select_digest(articles(config), config, NOW) or pytest.fail()) == ["OK"]


def test_nothing_new_means_no_digest(site: Site) -> None:
    site.add("old.md", article_text("Old", "2025-05-01T09:00:00+08:00"))
    config = configured(site)
    assert select_digest(articles(config), config, NOW) is None
    assert select_digest([], config, NOW) is None


def test_later_digests_skip_what_was_sent_and_catch_backdated_articles(site: Site) -> None:
    site.add("sent.md", article_text("Sent", at(25)))
    # Dated before the previous digest went out, but it was not in it (added late): it goes out now.
    site.add("backdated.md", article_text("Backdated", at(21)))
    site.add("new.md", article_text("New", at(29)))
    site.add("ancient.md", article_text("Ancient", "2025-04-01T09:00:00+08:00"))  # older than max_age
    config = configured(site)
    found = articles(config)
    sent = frozenset(a.entry_id for a in found if a.title == "Sent")
    previous = dt.datetime(2025, 6, 23, 8, 0, tzinfo=CST)
    digest = select_digest(found, config, NOW, previous_cutoff=previous, sent_ids=sent)
    assert digest is not None
    assert titles(digest) == ["New", "Backdated"]
    assert digest.since == NOW - dt.timedelta(days=config.digest.max_age)
    # `since` still bounds later digests.
    bounded = configured(site, since=dt.datetime(2025, 6, 22, tzinfo=CST))
    digest = select_digest(found, bounded, NOW, previous_cutoff=previous, sent_ids=sent)
    assert digest is not None and titles(digest) == ["New"]
    # Everything sent: nothing to send.
    everything = frozenset(a.entry_id for a in found)
    assert select_digest(found, config, NOW, previous_cutoff=previous, sent_ids=everything) is None


def test_each_article_once_under_its_first_topic_with_the_others_as_labels(site: Site) -> None:
    site.add("a.md", article_text("A", at(26), main_topics=["Models", "Policy", "Chips"]))
    site.add("b.md", article_text("B", at(27), main_topics=["Policy"]))
    config = configured(site)
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    assert [(g.topic.name, [i.article.title for i in g.items]) for g in digest.groups] == [
        ("Models", ["A"]),
        ("Policy", ["B"]),
    ]
    assert digest.groups[0].items[0].labels == ("Policy", "Chips")
    assert digest.count == 2


def test_topics_by_size_then_name_articles_newest_first_untopiced_last(site: Site) -> None:
    site.add("loose.md", article_text("Loose", at(29)))
    site.add("b1.md", article_text("B1", at(24), main_topics=["Beta"]))
    site.add("b2.md", article_text("B2", at(28), main_topics=["beta "]))  # the same topic as "Beta"
    site.add("a1.md", article_text("A1", at(25), main_topics=["Alpha"]))
    site.add("z1.md", article_text("Z1", at(26), main_topics=["Zeta"]))
    site.add("z2.md", article_text("Z2", at(26), main_topics=["Zeta"], id="urn:z2"))
    site.add("z3.md", article_text("Z3", at(26), main_topics=["Zeta"], id="urn:z0"))
    config = configured(site)
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    order = [(g.topic.name, [i.article.title for i in g.items]) for g in digest.groups]
    assert order == [
        (
            "Zeta",
            [*sorted(["Z1", "Z2", "Z3"], key=lambda t: {"Z3": "urn:z0", "Z2": "urn:z2"}.get(t, "tag:"))],
        ),
        ("Beta", ["B2", "B1"]),
        ("Alpha", ["A1"]),
        ("其他", ["Loose"]),
    ]
    english = configured(site, site_fields={"language": "en"})
    digest = select_digest(articles(english), english, NOW)
    assert digest is not None and digest.groups[-1].topic.name == "Other"


def test_topic_order_from_config_comes_first(site: Site) -> None:
    site.add("a.md", article_text("A", at(25), main_topics=["Alpha"]))
    site.add("b1.md", article_text("B1", at(26), main_topics=["Beta"]))
    site.add("b2.md", article_text("B2", at(27), main_topics=["Beta"]))
    site.add("c.md", article_text("C", at(27), main_topics=["Gamma"]))
    site.add("loose.md", article_text("Loose", at(27)))
    config = configured(site, topic_order=("gamma", "Nonexistent", "ALPHA"))
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    assert [g.topic.name for g in digest.groups] == ["Gamma", "Alpha", "Beta", "其他"]


def test_anchors_are_ascii_unique_and_stable(site: Site) -> None:
    site.add("a.md", article_text("A", at(25), main_topics=["产业生态与商业版图"]))
    site.add("b.md", article_text("B", at(26), main_topics=["AI & Society"]))
    site.add("c.md", article_text("C", at(27), main_topics=["ai-society"]))
    config = configured(site)
    first = select_digest(articles(config), config, NOW)
    second = select_digest(articles(config), config, NOW)
    assert first is not None and second is not None
    anchors = [g.anchor for g in first.groups]
    assert anchors == [g.anchor for g in second.groups]
    assert len(set(anchors)) == len(anchors)
    assert all(re.fullmatch(r"topic-[a-z0-9_-]+", a) for a in anchors)
    assert "topic-ai-society" in anchors and "topic-ai-society-2" in anchors


def test_anchors_are_the_feed_slugs(site: Site) -> None:
    """One rule for a topic's ASCII name (feeds.topic_slug); a slug two topics share is suffixed."""
    site.add("a.md", article_text("A", at(25), main_topics=["产业生态与商业版图"]))
    site.add("b.md", article_text("B", at(26), main_topics=["Policy"]))
    site.add("c.md", article_text("C", at(27), main_topics=["Models"]))
    site.add("d.md", article_text("D", at(28)))
    config = configured(site)
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    anchors = {g.topic.name: g.anchor for g in digest.groups}
    chinese = next(g.topic for g in digest.groups if g.topic.name == "产业生态与商业版图")
    assert anchors["产业生态与商业版图"] == topic_slug(chinese, config)  # already "topic-<hash>"
    assert anchors["Policy"] == "topic-policy" and anchors["其他"] == "topic-other"
    slugs = {"Policy": "rules", "Models": "rules"}  # a clash the feeds refuse; the digest just suffixes
    mapped = dataclasses.replace(config, feeds=dataclasses.replace(config.feeds, topic_slugs=slugs))
    digest = select_digest(articles(mapped), mapped, NOW)
    assert digest is not None
    anchors = {g.topic.name: g.anchor for g in digest.groups}
    assert sorted([anchors["Policy"], anchors["Models"]]) == ["topic-rules", "topic-rules-2"]


def test_for_topics_keeps_articles_with_any_wanted_topic(site: Site) -> None:
    site.add("a.md", article_text("A", at(25), main_topics=["Models", "Policy"]))
    site.add("b.md", article_text("B", at(26), main_topics=["Chips"]))
    site.add("c.md", article_text("C", at(27)))
    config = configured(site)
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    policy = for_topics(digest, frozenset({"policy"}))
    assert policy is not None
    assert [(g.topic.name, titles(dataclasses.replace(digest, groups=(g,)))) for g in policy.groups] == [
        ("Models", ["A"])
    ]
    both = for_topics(digest, frozenset({"Chips", "POLICY"}))
    assert both is not None and set(titles(both)) == {"A", "B"}
    assert for_topics(digest, frozenset({"cooking"})) is None
    assert for_topics(digest, frozenset()) is None


def test_overflow_takes_the_oldest_and_article_ids_keep_them(site: Site) -> None:
    for day in range(24, 30):
        site.add(f"{day}.md", article_text(f"Day {day}", at(day), main_topics=["T" + str(day % 2)]))
    config = configured(site)
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    smaller = move_oldest_to_overflow(digest, 4)
    assert [i.article.title for i in smaller.overflow] == ["Day 27", "Day 26", "Day 25", "Day 24"]
    assert sorted(titles(smaller)) == ["Day 28", "Day 29"]
    assert smaller.article_ids == digest.article_ids == tuple(sorted(digest.article_ids))
    assert len(smaller.article_ids) == 6
    # A topic whose articles all moved disappears from the groups.
    assert len(move_oldest_to_overflow(digest, 5).groups) == 1
    assert move_oldest_to_overflow(digest, 0) is digest


def test_utm_only_on_the_site_and_never_twice(site: Site) -> None:
    config = configured(site, utm={"utm_source": "digest", "utm_campaign": "{period}"})
    tag = "utm_source=digest&utm_campaign=2025-W27"
    assert (
        with_utm("https://example.com/posts/a/", config, "2025-W27") == f"https://example.com/posts/a/?{tag}"
    )
    assert (
        with_utm("https://example.com/p?x=1#top", config, "2025-W27")
        == f"https://example.com/p?x=1&{tag}#top"
    )
    assert with_utm("https://other.org/posts/a/", config, "2025-W27") == "https://other.org/posts/a/"
    assert with_utm("https://example.com.evil.org/", config, "2025-W27") == "https://example.com.evil.org/"
    tagged = "https://example.com/posts/a/?utm_source=twitter"
    assert with_utm(tagged, config, "2025-W27") == tagged
    once = with_utm("https://example.com/x", config, "2025-W27")
    assert with_utm(once, config, "2025-W27") == once
    assert with_utm("mailto:a@example.com", config, "2025-W27") == "mailto:a@example.com"
    assert with_utm("https://example.com/x", configured(site), "2025-W27") == "https://example.com/x"


def test_dates_in_the_site_language(site: Site) -> None:
    # 2025-06-24 20:00 UTC is already the 25th in Shanghai.
    moment = dt.datetime(2025, 6, 24, 20, 0, tzinfo=dt.UTC)
    assert format_date(moment, configured(site)) == "2025年6月25日"
    assert format_date(moment, configured(site, site_fields={"language": "en-US"})) == "June 25, 2025"
    # Every language Babel knows gets its own dates, shipped catalogue or not.
    assert format_date(moment, configured(site, site_fields={"language": "fr"})) == "25 juin 2025"
    assert format_date(moment, configured(site, site_fields={"language": "ja"})) == "2025年6月25日"
    assert format_date(moment, configured(site, site_fields={"language": "de-AT"})) == "25. Juni 2025"
    # A tag it does not know: ISO 8601.
    assert format_date(moment, configured(site, site_fields={"language": "xx-nowhere"})) == "2025-06-25"


@pytest.mark.parametrize(
    ("language", "toc", "other", "one", "date"),
    [
        ("zh-CN", "本期目录", "其他", "本期 1 篇", "2025年6月30日"),
        ("zh", "本期目录", "其他", "本期 1 篇", "2025年6月30日"),
        ("zh-Hans-SG", "本期目录", "其他", "本期 1 篇", "2025年6月30日"),
        # No Traditional Chinese catalogue is shipped: English words, Chinese dates.
        ("zh-TW", "In this issue", "Other", "1 article", "2025年6月30日"),
        ("ja", "In this issue", "Other", "1 article", "2025年6月30日"),
        ("en", "In this issue", "Other", "1 article", "June 30, 2025"),
        ("en-GB", "In this issue", "Other", "1 article", "30 June 2025"),
        ("de", "In this issue", "Other", "1 article", "30. Juni 2025"),
        # The longest prefix Babel knows (RFC 4647 lookup); none at all: ISO 8601.
        ("en-US-x-twain", "In this issue", "Other", "1 article", "June 30, 2025"),
        ("tlh", "In this issue", "Other", "1 article", "2025-06-30"),
    ],
)
def test_the_words_come_from_one_catalogue_and_the_dates_from_the_locale(
    site: Site, language: str, toc: str, other: str, one: str, date: str
) -> None:
    site.add("loose.md", article_text("Loose", at(29)))
    config = configured(site, site_fields={"language": language})
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    context = build_context(digest, config, web=False, subject="s")
    assert (context["t"]["toc"], digest.groups[0].topic.name) == (toc, other)
    assert (context["articles_text"], context["date"]) == (one, date)
