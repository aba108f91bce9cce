"""Hugo's publishing decisions in digest.hugo_pages and digest.hugo_dates, rule by rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from digest.hugo_config import hugo_config_from_maps
from digest.hugo_dates import HugoYAMLLoader, parse_hugo_date
from digest.hugo_pages import ContentFile, HugoPage, Skipped, SourceFile, classify, decide_pages

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def _site(**cfg: Any):
    base = {"baseURL": "https://x.org/", "languages": {"en": {"weight": 1}, "fr": {"weight": 2}}}
    return hugo_config_from_maps(Path("/site"), ("/site/hugo.toml", base | cfg), [])


def _decide(files: dict[str, dict[str, Any]], fmt: str = "yaml", **cfg: Any) -> dict[str, HugoPage]:
    site = _site(**cfg)
    sources = []
    for path, front in files.items():
        found = classify(path, site)
        assert isinstance(found, ContentFile), path
        sources.append(SourceFile(found, front, datetime(2015, 1, 1, tzinfo=UTC), fmt))
    result = decide_pages(sources, site, NOW)
    return {p.path: p for p in result.pages}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-01-02", datetime(2020, 1, 2, tzinfo=PARIS)),
        ("2020-01-02T10:00:00", datetime(2020, 1, 2, 10, tzinfo=PARIS)),
        ("2020-01-02T10:00:00.5Z", datetime(2020, 1, 2, 10, 0, 0, 500000, tzinfo=UTC)),
        (
            "2020-01-02T10:00:00+05:30",
            datetime(2020, 1, 2, 10, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        ("2020-01-02 10:00:00", datetime(2020, 1, 2, 10, tzinfo=PARIS)),
        ("2020-01-02 10:00:00 -0700", datetime(2020, 1, 2, 10, tzinfo=timezone(timedelta(hours=-7)))),
        ("2020-01-02 10:00:00 +01:00", datetime(2020, 1, 2, 10, tzinfo=timezone(timedelta(hours=1)))),
        ("Mon, 02 Jan 2006 15:04:05 MST", datetime(2006, 1, 2, 15, 4, 5, tzinfo=PARIS)),
        (
            "Mon, 02 Jan 2006 15:04:05 -0700",
            datetime(2006, 1, 2, 15, 4, 5, tzinfo=timezone(timedelta(hours=-7))),
        ),
        ("02 Jan 06 15:04 MST", datetime(2006, 1, 2, 15, 4, tzinfo=PARIS)),
        ("Mon Jan  2 15:04:05 2006", datetime(2006, 1, 2, 15, 4, 5, tzinfo=PARIS)),
        ("02 Jan 2006", datetime(2006, 1, 2, tzinfo=PARIS)),
        (date(2020, 1, 2), datetime(2020, 1, 2, tzinfo=PARIS)),
        (1262304000, datetime(2010, 1, 1, tzinfo=UTC)),
        ("2020-1-2 10:00:00", None),
        ("2020-02-30", None),
        ("next tuesday", None),
        ("3:04PM", None),
        (True, None),
    ],
)
def test_dates_hugo_reads(text: object, expected: datetime | None) -> None:
    assert parse_hugo_date(text, PARIS) == expected


def test_yaml_timestamps_stay_strings_as_in_hugos_yaml() -> None:
    text = "date: 2020-1-2 10:00:00\nlast: 2020-01-02\ndraft: yes\na: y\nb: N\nc: Off\nd: yEs\n"
    front = yaml.load(text, Loader=HugoYAMLLoader)
    assert front == {
        "date": "2020-1-2 10:00:00",
        "last": "2020-01-02",
        "draft": True,
        "a": True,
        "b": False,
        "c": False,
        "d": "yEs",
    }
    assert yaml.safe_load("a: y\n") == {"a": "y"}  # the loader changed nothing for others


def test_future_and_expired_to_the_second() -> None:
    second = timedelta(seconds=1)
    pages = _decide(
        {
            "content/now.md": {"date": NOW.isoformat()},
            "content/later.md": {"date": (NOW + second).isoformat()},
            "content/expires-now.md": {"date": "2001-01-01", "expiryDate": NOW.isoformat()},
            "content/expired.md": {"date": "2001-01-01", "expiryDate": (NOW - second).isoformat()},
        }
    )
    assert pages["content/now.md"].published
    assert pages["content/later.md"].reason == "future"
    assert pages["content/expires-now.md"].published
    assert pages["content/expired.md"].reason == "expired"
    assert _decide({"content/later.md": {"date": (NOW + second).isoformat()}}, buildFuture=True)[
        "content/later.md"
    ].published


@pytest.mark.parametrize(
    ("fmt", "value", "draft"),
    [
        ("yaml", True, True),
        ("yaml", "true", True),
        ("yaml", "yes", False),
        ("yaml", 1, True),
        ("toml", 1, False),
        ("json", 1, False),
        ("yaml", "T", True),
    ],
)
def test_draft_as_hugo_casts_it(fmt: str, value: object, draft: bool) -> None:
    page = _decide({"content/p.md": {"date": "2001-01-01", "draft": value}}, fmt)["content/p.md"]
    assert (page.draft, page.published) == (draft, not draft)


def test_published_false_is_a_draft_unless_draft_says_otherwise() -> None:
    pages = _decide(
        {
            "content/a.md": {"date": "2001-01-01", "published": False},
            "content/b.md": {"date": "2001-01-01", "published": False, "draft": False},
        }
    )
    assert pages["content/a.md"].draft
    assert not pages["content/b.md"].draft


def test_filename_date_and_slug() -> None:
    pages = _decide(
        {"content/posts/2020-05-01-Hello World.md": {}, "content/posts/2020-05-02-x.md": {"slug": "own"}},
        frontmatter={"date": [":filename", ":default"]},
        permalinks={"posts": "/:year/:slug/"},
    )
    first = pages["content/posts/2020-05-01-Hello World.md"]
    assert (first.date, first.slug, first.permalink) == (
        datetime(2020, 5, 1, tzinfo=UTC),
        "Hello World",
        "https://x.org/2020/hello-world/",
    )
    assert pages["content/posts/2020-05-02-x.md"].slug == "own"
    assert first.publish_date is None  # the publishDate chain reads front matter, not .Date


def test_build_options_and_headless_bundles() -> None:
    pages = _decide(
        {
            "content/a.md": {"date": "2001-01-01", "_build": {"list": "local"}},
            "content/b.md": {"date": "2001-01-01", "_build": {"List": False, "render": "never"}},
            "content/c.md": {"date": "2001-01-01", "_build": {"list": "sometimes"}},
            "content/d/index.md": {"date": "2001-01-01", "headless": True},
            "content/e.md": {"date": "2001-01-01", "headless": True},  # only bundles can be headless
        }
    )
    assert (pages["content/a.md"].list, pages["content/a.md"].listed) == ("local", False)
    assert (pages["content/b.md"].list, pages["content/b.md"].permalink) == ("never", "")
    assert pages["content/c.md"].list == "always"
    assert (pages["content/d/index.md"].list, pages["content/d/index.md"].render) == ("never", "never")
    assert pages["content/e.md"].listed


def test_cascade_targets_and_removed_sections() -> None:
    pages = _decide(
        {
            "content/docs/_index.md": {
                "cascade": [
                    {"_target": {"path": "/docs/api/**", "kind": "page"}, "draft": True},
                    {"_target": {"lang": "fr"}, "title": "Never: fr has no docs/_index.fr.md"},
                    {"_target": {"lang": "e?"}, "title": "Cascaded"},
                ]
            },
            "content/docs/api/x.md": {"date": "2001-01-01"},
            "content/docs/guide.md": {"date": "2001-01-01"},
            "content/docs/guide.fr.md": {"date": "2001-01-01"},
            "content/old/_index.md": {"expiryDate": "2002-01-01"},
            "content/old/deep/page.md": {"date": "2001-01-01"},
        }
    )
    assert pages["content/docs/api/x.md"].reason == "draft"
    assert pages["content/docs/guide.md"].published
    assert pages["content/docs/guide.md"].title == "Cascaded"
    assert pages["content/docs/guide.fr.md"].title == ""  # each language has its own tree
    assert pages["content/old/deep/page.md"].reason == "its section content/old/_index.md is expired"


def test_a_url_with_a_protocol_is_skipped_with_a_note() -> None:
    site = _site()
    found = classify("content/p.md", site)
    assert isinstance(found, ContentFile)
    result = decide_pages(
        [SourceFile(found, {"url": "https://elsewhere.org/p/", "date": "2001-01-01"})], site, NOW
    )
    assert not result.pages[0].published
    assert "with a protocol" in str(result.notes[0])


def test_unreadable_dates_are_dropped_with_a_note() -> None:
    site = _site()
    found = classify("content/p.md", site)
    assert isinstance(found, ContentFile)
    result = decide_pages([SourceFile(found, {"date": "next tuesday", "lastmod": "2001-01-01"})], site, NOW)
    page = result.pages[0]
    assert page.date == datetime(2001, 1, 1, tzinfo=UTC)  # the date chain goes on to lastmod
    assert [str(n) for n in result.notes] == [
        "content/p.md: 'date' is not a date Hugo reads ('next tuesday'): ignored, as Hugo ignores it"
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("content/a.md", ("en", "a", "page")),
        ("content/a.fr.md", ("fr", "a", "page")),
        ("content/a.de.md", ("en", "a.de", "page")),
        ("content/x/index.fr.md", ("fr", "index", "leaf")),
        ("content/x/_index.markdown", ("en", "_index", "branch")),
        ("content/x/a.mdown", ("en", "a", "page")),
        ("content/x/a.htm", ("en", "a", "page")),
    ],
)
def test_classify_content_files(path: str, expected: tuple[str, str, str]) -> None:
    found = classify(path, _site())
    assert isinstance(found, ContentFile)
    assert (found.lang, found.translation_base_name, found.kind) == expected


@pytest.mark.parametrize(
    ("path", "note"),
    [
        ("content/doc.adoc", "skipped: .adoc content needs an external converter, which digest does not run"),
        ("content/doc.rst", "skipped: .rst content needs an external converter, which digest does not run"),
        ("content/doc.org", "skipped: .org content needs an external converter, which digest does not run"),
        ("content/image.png", None),
        ("content/.hidden.md", None),
        ("content/#x.md", None),
        ("content/x.md~", None),
        ("content/.git/x.md", None),
        ("static/x.md", None),
        ("content/drafts/x.md", None),
    ],
)
def test_files_that_are_not_pages(path: str, note: str | None) -> None:
    found = classify(path, _site(ignoreFiles=["/drafts/"]))
    assert found == Skipped(path, note)


def test_a_full_html_document_is_not_content() -> None:
    site = _site()
    assert isinstance(classify("content/a.html", site, "  \n<!DOCTYPE html><html>"), Skipped)
    assert isinstance(classify("content/a.html", site, "<!--\n---\ntitle: x\n---\n-->"), ContentFile)
    assert isinstance(classify("content/a.html", site, "---\ntitle: x\n---\n<p>"), ContentFile)
