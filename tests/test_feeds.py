"""The Atom feeds as a feed reader sees them: valid RFC 4287, read back by feedparser."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from lxml import etree

from digest import __version__
from digest.cli import main
from digest.errors import DigestError, OutputError
from digest.jobs import build

from conftest import ATOM_SCHEMA, NOW, Site, article_text

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def relaxng() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(ATOM_SCHEMA)))


def _feeds(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.xml"))


def test_every_seed_feed_is_valid_atom_and_reads_back(site: Site, relaxng: etree.RelaxNG) -> None:
    site.add_seeds()
    build(site.config(), NOW)
    feeds = _feeds(site.feeds)
    # The site feed and the seed's three topics (Chinese names: hashed file names).
    assert [f.name for f in feeds] == [
        "index.xml",
        "topic-30373dab90.xml",
        "topic-3ac8dbfc2d.xml",
        "topic-960ad51600.xml",
    ]
    for path in feeds:
        document = etree.parse(str(path))
        assert relaxng.validate(document), f"{path.name}: {relaxng.error_log}"
        # Atom in the default namespace throughout: no element gets a prefix of its own (ns0:link).
        prefixes = {element.prefix for element in document.iter()}
        assert prefixes == {None, "media"}, f"{path.name}: {prefixes}"
        parsed = feedparser.parse(path.read_bytes())
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert parsed.version == "atom10"
    site_feed = feedparser.parse((site.feeds / "index.xml").read_bytes())
    assert site_feed.feed.title == "Test Site"
    assert site_feed.feed.language == "zh-CN"
    assert site_feed.feed.generator == "digest"
    # The project's own page under its distribution name ("digest" on PyPI is another project).
    assert site_feed.feed.generator_detail == {
        "name": "digest",
        "href": "https://pypi.org/project/digest-publisher/",
        "version": __version__,
    }
    self_links = [link for link in site_feed.feed.links if link.rel == "self"]
    assert self_links == [
        {"rel": "self", "type": "application/atom+xml", "href": "https://example.com/feeds/index.xml"}
    ]
    entry = site_feed.entries[0]
    assert entry.id == "tag:example.com,2025-06-25:/posts/000_040d16bb7ab5a125/"
    assert entry.title == "Kimi能否穿越“月之暗面”：AI创业浪潮中的战略迷思与重塑之路"
    assert entry.published == "2025-06-25T17:10:04+08:00"
    assert entry.updated == "2025-06-25T17:10:04+08:00"
    assert site_feed.feed.updated == "2025-06-25T17:10:04+08:00"
    assert entry.links == [
        {"rel": "alternate", "type": "text/html", "href": "https://example.com/posts/000_040d16bb7ab5a125/"}
    ]
    topics = [t.term for t in entry.tags if t.scheme == "https://example.com/topics/"]
    tags = [t.term for t in entry.tags if t.scheme == "https://example.com/tags/"]
    assert topics == ["产业生态与商业版图", "投融资与市场洞察", "前沿模型与算法"]
    assert tags[:3] == ["Kimi", "月之暗面", "人工智能"] and len(tags) == 10
    assert entry.summary.startswith("曾几何时被寄予厚望的Kimi")
    image = "https://example.com/newsimages/selected_image_YYYY-06-Jun%2025%2C%202025_17-02-32-608.jpg"
    assert entry.media_thumbnail == [{"url": image}]
    assert entry.content[0].type == "text/html"
    content = entry.content[0].value
    assert content.startswith("<p><img ") and f'src="{image}"' in content.split(">", 2)[1]


def test_entry_links_keep_rel_and_type_despite_feedgen_135(site: Site) -> None:
    site.add("a.md", article_text(title="A", main_topics=["One"]))
    build(site.config(), NOW)
    data = (site.feeds / "index.xml").read_bytes()
    tree = etree.fromstring(data)
    links = tree.findall(f"{ATOM}entry/{ATOM}link")
    assert [dict(link.attrib) for link in links] == [
        {"rel": "alternate", "type": "text/html", "href": "https://example.com/posts/a/"}
    ]
    # A plain <link>, right after the content as feedgen places links, for readers that match `<link`.
    assert (
        b'</content>\n    <link rel="alternate" type="text/html" href="https://example.com/posts/a/"/>\n'
        in data
    )
    assert b"ns0" not in data
    assert feedparser.parse(data).entries[0].links == [
        {"rel": "alternate", "type": "text/html", "href": "https://example.com/posts/a/"}
    ]


def test_newest_first_ties_by_id_and_at_most_max_entries(site: Site) -> None:
    site.set("feeds", max_entries=3)
    for name, date in [("b", "2025-06-01"), ("a", "2025-06-01"), ("c", "2025-06-03"), ("d", "2025-05-01")]:
        site.add(f"{name}.md", article_text(title=name.upper(), date=date, id=f"urn:x:{name}"))
    build(site.config(), NOW)
    parsed = feedparser.parse((site.feeds / "index.xml").read_bytes())
    assert [e.id for e in parsed.entries] == ["urn:x:c", "urn:x:a", "urn:x:b"]


def test_updated_is_the_newest_entry_and_never_the_build_time(site: Site) -> None:
    site.add(
        "a.md", article_text(title="A", date="2025-06-01T10:00:00+08:00", lastmod="2025-06-05T10:00:00+08:00")
    )
    site.add("b.md", article_text(title="B", date="2025-06-03T10:00:00+08:00"))
    build(site.config(), NOW)
    first = (site.feeds / "index.xml").read_bytes()
    assert b"<updated>2025-06-05T10:00:00+08:00</updated>\n  <author>" in first
    build(site.config(), NOW + dt.timedelta(days=30))
    assert (site.feeds / "index.xml").read_bytes() == first


def test_an_empty_feed_has_a_fixed_updated(site: Site, relaxng: etree.RelaxNG) -> None:
    site.add("draft.md", article_text(title="D", draft=True))
    build(site.config(), NOW)
    data = (site.feeds / "index.xml").read_bytes()
    assert b"<updated>1970-01-01T00:00:00+00:00</updated>" in data
    assert relaxng.validate(etree.fromstring(data))


def test_a_topic_that_disappears_loses_its_feed_but_foreign_files_stay(site: Site) -> None:
    path = site.add("a.md", article_text(title="A", main_topics=["Gone Soon"]))
    site.feeds.mkdir()
    (site.feeds / "robots.txt").write_text("mine")
    build(site.config(), NOW)
    assert (site.feeds / "gone-soon.xml").exists()
    path.write_text(article_text(title="A", main_topics=["Other"]), encoding="utf-8")
    report = build(site.config(), NOW)
    assert "gone-soon.xml" in report.removed
    assert not (site.feeds / "gone-soon.xml").exists()
    assert (site.feeds / "other.xml").exists()
    assert (site.feeds / "robots.txt").read_text() == "mine"


def test_case_variant_topics_share_one_feed_named_by_the_first_spelling(site: Site) -> None:
    site.add("1.md", article_text(title="One", date="2025-06-01", main_topics=["AI"]))
    site.add("2.md", article_text(title="Two", date="2025-06-02", main_topics=["ai "]))
    site.add("3.md", article_text(title="Three", date="2025-06-03", main_topics="Ai"))
    build(site.config(), NOW)
    assert sorted(p.name for p in _feeds(site.feeds)) == ["ai.xml", "index.xml"]
    parsed = feedparser.parse((site.feeds / "ai.xml").read_bytes())
    assert parsed.feed.title == "Test Site · AI"
    assert len(parsed.entries) == 3


def test_topic_without_ascii_gets_a_stable_hashed_file_name(site: Site) -> None:
    # sha256 of the topic key: the same on every machine and Python run (unlike hash()).
    site.add("1.md", article_text(title="One", main_topics=["具身智能与机器人"]))
    build(site.config(), NOW)
    names = sorted(p.name for p in _feeds(site.feeds))
    assert names == ["index.xml", "topic-99597a149f.xml"]


def test_topic_slugs_from_config_name_the_files(site: Site) -> None:
    site.write_config('[feeds.topic_slugs]\n"前沿模型与算法" = "models"\n')
    site.add("1.md", article_text(title="One", main_topics=["前沿模型与算法"]))
    build(site.config(), NOW)
    assert (site.feeds / "models.xml").exists()


def test_two_topics_on_one_file_name_is_an_error_not_an_overwrite(site: Site) -> None:
    site.write_config('[feeds.topic_slugs]\n"甲" = "same"\n"乙" = "same"\n')
    site.add("1.md", article_text(title="One", main_topics=["甲", "乙"]))
    with pytest.raises(OutputError, match=r"would share the feed file same\.xml"):
        build(site.config(), NOW)
    assert not (site.feeds / "same.xml").exists()


def test_a_new_topic_whose_slug_is_taken_gets_its_hashed_name_and_a_problem_line(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.add("cpp.md", article_text(title="Templates", date="2025-06-01T10:00:00+08:00", main_topics=["C++"]))
    site.add("csharp.md", article_text(title="Records", date="2025-06-20T10:00:00+08:00", main_topics=["C#"]))
    monkeypatch.chdir(site.root)
    result = CliRunner().invoke(main, ["build", "--now", NOW.isoformat()])
    assert result.exit_code == 3, result.output  # something to look at, and everything published
    assert result.stderr.splitlines() == [
        "problem: content/csharp.md: topic 'C#' would share the feed file c.xml with 'C++': "
        "published as topic-951a4d36e0.xml (give 'C#' a slug of its own in [feeds] topic_slugs)"
    ]
    assert result.stdout == "2 of 2 articles published in 3 feeds; 5 files changed; 1 problem\n"
    # The older topic keeps its file; the newer one is published under its stable hashed name.
    cpp = feedparser.parse((site.feeds / "c.xml").read_bytes())
    csharp = feedparser.parse((site.feeds / "topic-951a4d36e0.xml").read_bytes())
    assert (cpp.feed.title, [e.title for e in cpp.entries]) == ("Test Site · C++", ["Templates"])
    assert (csharp.feed.title, [e.title for e in csharp.entries]) == ("Test Site · C#", ["Records"])
    assert [e.title for e in feedparser.parse((site.feeds / "index.xml").read_bytes()).entries] == [
        "Records",
        "Templates",
    ]
    # `check` reports the same line (and fails, so an editor sees it before a build does).
    checked = CliRunner().invoke(main, ["check"])
    assert checked.exit_code == 1
    assert checked.stdout.splitlines() == [result.stderr.splitlines()[0].removeprefix("problem: ")]


def test_a_published_feed_file_keeps_its_topic_when_an_older_article_of_another_arrives(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers subscribe to a file: once c.xml is C++'s feed it stays C++'s, though an article of C#
    dated before C++'s first one arrives later (by age alone C# would take the file)."""
    site.add("cpp.md", article_text(title="Templates", date="2025-06-20T10:00:00+08:00", main_topics=["C++"]))
    build(site.config(), NOW)
    assert feedparser.parse((site.feeds / "c.xml").read_bytes()).feed.title == "Test Site · C++"
    site.add("csharp.md", article_text(title="Records", date="2025-06-01T10:00:00+08:00", main_topics=["C#"]))
    report = build(site.config(), NOW)
    assert [p.message for p in report.problems] == [
        "topic 'C#' would share the feed file c.xml with 'C++': published as topic-951a4d36e0.xml"
    ]
    cpp = feedparser.parse((site.feeds / "c.xml").read_bytes())
    assert (cpp.feed.title, [e.title for e in cpp.entries]) == ("Test Site · C++", ["Templates"])
    csharp = feedparser.parse((site.feeds / "topic-951a4d36e0.xml").read_bytes())
    assert (csharp.feed.title, [e.title for e in csharp.entries]) == ("Test Site · C#", ["Records"])
    monkeypatch.chdir(site.root)
    checked = CliRunner().invoke(main, ["check"])  # `check` says what `build` does
    assert checked.stdout.splitlines() == [
        "content/csharp.md: topic 'C#' would share the feed file c.xml with 'C++': published as "
        "topic-951a4d36e0.xml (give 'C#' a slug of its own in [feeds] topic_slugs)"
    ]
    # Without the state (a new machine, the state deleted), the older topic takes the file, as always.
    site.config().state.path.unlink()
    assert [p.message for p in build(site.config(), NOW).problems] == [
        "topic 'C++' would share the feed file c.xml with 'C#': published as topic-cedb1bac7e.xml"
    ]


def test_a_topic_clash_does_not_stop_the_weekly_run(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.write_config('[subscribers]\nlist = [{ email = "a@example.com" }]\n')
    site.add("csharp.md", article_text(title="Records", date="2025-06-20T10:00:00+08:00", main_topics=["C#"]))
    site.add("cpp.md", article_text(title="Templates", date="2025-06-27T10:00:00+08:00", main_topics=["C++"]))
    monkeypatch.chdir(site.root)
    result = CliRunner().invoke(main, ["run", "--now", NOW.isoformat()])
    assert result.exit_code == 3, result.output
    # C# came first this time: it keeps c.xml, and C++ is the one renamed.
    assert result.stderr.splitlines() == [
        "problem: content/cpp.md: topic 'C++' would share the feed file c.xml with 'C#': "
        "published as topic-cedb1bac7e.xml (give 'C++' a slug of its own in [feeds] topic_slugs)"
    ]
    assert sorted(p.name for p in _feeds(site.feeds)) == ["c.xml", "index.xml", "topic-cedb1bac7e.xml"]
    assert len(list((site.root / "outbox").glob("*.eml"))) == 1  # the digest went out


def test_a_slug_from_the_config_wins_over_a_derived_one(site: Site) -> None:
    site.write_config('[feeds.topic_slugs]\n"Systems" = "c"\n')
    site.add("cpp.md", article_text(title="Old", date="2025-06-01T10:00:00+08:00", main_topics=["C++"]))
    site.add("sys.md", article_text(title="New", date="2025-06-20T10:00:00+08:00", main_topics=["Systems"]))
    report = build(site.config(), NOW)
    assert [p.message for p in report.problems] == [
        "topic 'C++' would share the feed file c.xml with 'Systems': published as topic-cedb1bac7e.xml"
    ]
    assert feedparser.parse((site.feeds / "c.xml").read_bytes()).feed.title == "Test Site · Systems"


def test_a_traversal_shaped_topic_stays_inside_feeds(site: Site, tmp_path: Path) -> None:
    site.add("1.md", article_text(title="One", main_topics=["../../x", "/etc/passwd", "..\\\\y"]))
    build(site.config(), NOW)
    written = {p.relative_to(site.feeds).as_posix() for p in site.feeds.rglob("*") if p.is_file()}
    assert written == {
        ".digest-manifest.json",
        "feeds.opml",
        "index.html",
        "index.xml",
        "x.xml",
        "etc-passwd.xml",
        "y.xml",
    }
    outside = {p for p in site.root.parent.rglob("*.xml") if not p.is_relative_to(site.feeds)}
    assert outside == set()


def test_opml_and_index_page_list_every_feed_with_autodiscovery(site: Site) -> None:
    site.add("1.md", article_text(title="One", main_topics=["AI", "Chips"]))
    build(site.config(), NOW)
    opml = etree.parse(str(site.feeds / "feeds.opml"))
    urls = [o.get("xmlUrl") for o in opml.iter("outline")]
    assert urls == [
        "https://example.com/feeds/index.xml",
        "https://example.com/feeds/ai.xml",
        "https://example.com/feeds/chips.xml",
    ]
    page = (site.feeds / "index.html").read_text(encoding="utf-8")
    assert page.count('<link rel="alternate" type="application/atom+xml"') == 3
    assert 'href="https://example.com/feeds/chips.xml"' in page


def test_index_page_and_opml_escape_what_they_show(site: Site) -> None:
    site.set("site", title='Tom & "Jerry" <b>')
    site.add("1.md", article_text(title="One", main_topics=["<script>alert(1)</script>"]))
    build(site.config(), NOW)
    page = (site.feeds / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>" not in page
    assert "<h1>Tom &amp; &#34;Jerry&#34; &lt;b&gt;</h1>" in page
    assert '<a href="script-alert-1-script.xml">&lt;script&gt;alert(1)&lt;/script&gt;</a>' in page
    opml = etree.parse(str(site.feeds / "feeds.opml"))  # well-formed XML despite the & and <
    assert opml.findtext("head/title") == 'Tom & "Jerry" <b>'
    assert [o.get("text") for o in opml.iter("outline")][1] == 'Tom & "Jerry" <b> · <script>alert(1)</script>'


def test_the_index_page_and_opml_templates_can_be_overridden_and_are_sandboxed(site: Site) -> None:
    site.add("1.md", article_text(title="One", main_topics=["AI"]))
    own = site.root / "templates"
    own.mkdir()
    (own / "feeds_index.html.j2").write_text(
        "<ul>{% for feed in feeds %}<li>{{ feed.name }}: {{ feed.url }}</li>{% endfor %}</ul>\n",
        encoding="utf-8",
    )
    build(site.config(), NOW)
    assert (site.feeds / "index.html").read_text(encoding="utf-8") == (
        "<ul><li>Test Site: https://example.com/feeds/index.xml</li>"
        "<li>AI: https://example.com/feeds/ai.xml</li></ul>\n"
    )
    assert (
        (site.feeds / "feeds.opml").read_bytes().startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<opml')
    )
    # An edited template alone is a change: the next build writes the page again.
    (own / "feeds_index.html.j2").write_text("{{ feeds | length }} feeds\n", encoding="utf-8")
    assert build(site.config(), NOW).written == ["index.html"]
    assert (site.feeds / "index.html").read_text(encoding="utf-8") == "2 feeds\n"
    # A template that reaches for Python internals is stopped by the sandbox, naming the file.
    (own / "feeds.opml.j2").write_text(
        "{{ feeds.__class__.__mro__[1].__subclasses__() }}\n", encoding="utf-8"
    )
    with pytest.raises(DigestError, match=r"template error: access to attribute '__class__'") as caught:
        build(site.config(), NOW)
    # The editor's own file, with its line: not the shipped template of that name.
    assert caught.value.path == str((own / "feeds.opml.j2").resolve())
    assert caught.value.line == 1


def test_summary_only_feeds_when_full_content_is_off(site: Site) -> None:
    site.set("feeds", full_content=False)
    site.add("1.md", article_text(title="One", body="Secret second paragraph.", summary="Short."))
    build(site.config(), NOW)
    entry = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries[0]
    assert "Secret" not in entry.content[0].value
    assert "Short." in entry.content[0].value and "https://example.com/posts/1/" in entry.content[0].value


def test_an_entry_keeps_its_first_id_when_its_date_is_corrected(site: Site) -> None:
    path = site.add("a.md", article_text(title="A", date="2025-06-20T10:00:00+08:00"))
    build(site.config(), NOW)
    first_id = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries[0].id
    assert first_id == "tag:example.com,2025-06-20:/posts/a/"
    path.write_text(article_text(title="A", date="2025-06-19T10:00:00+08:00"), encoding="utf-8")
    build(site.config(), NOW)
    entry = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries[0]
    assert entry.published == "2025-06-19T10:00:00+08:00"
    assert entry.id == first_id


def test_a_build_after_a_run_at_another_time_writes_its_own_feeds(site: Site) -> None:
    from digest.jobs import run

    site.write_config('[subscribers]\nlist = [{ email = "a@example.com" }]\n')
    site.add("early.md", article_text(title="Early", date="2025-06-20T10:00:00+08:00"))
    site.add("late.md", article_text(title="Late", date="2025-06-29T10:00:00+08:00"))
    build(site.config(), dt.datetime(2025, 6, 25, tzinfo=NOW.tzinfo))
    run(site.config(), NOW)  # writes the feeds as of NOW: both articles
    build(site.config(), dt.datetime(2025, 6, 25, tzinfo=NOW.tzinfo))
    titles = [e.title for e in feedparser.parse((site.feeds / "index.xml").read_bytes()).entries]
    assert titles == ["Early"]


def test_a_draft_records_no_id_until_it_is_published(site: Site) -> None:
    path = site.add("d.md", article_text(title="D", date="2024-01-01T10:00:00+08:00", draft=True))
    build(site.config(), NOW)
    path.write_text(article_text(title="D", date="2025-06-25T10:00:00+08:00"), encoding="utf-8")
    build(site.config(), NOW)
    entry = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries[0]
    assert entry.id == "tag:example.com,2025-06-25:/posts/d/"


def test_a_site_under_a_path_keeps_it_in_every_feed_link(site: Site) -> None:
    site.set("site", base_url="https://example.com/blog/")
    site.add("1.md", article_text(title="One", main_topics=["AI"]))
    build(site.config(), NOW)
    topic_feed = next(path for path in site.feeds.glob("*.xml") if path.name != "index.xml")
    feed = feedparser.parse(topic_feed.read_bytes()).feed
    links = {link.rel: link.href for link in feed.links}
    assert links["alternate"] == f"https://example.com/blog/topics/{topic_feed.stem}/"
    assert links["self"] == f"https://example.com/blog/feeds/{topic_feed.name}"
    entry = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries[0]
    assert entry.link.startswith("https://example.com/blog/")
