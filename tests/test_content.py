"""Reading articles: front matter formats, fields, publish rules, and reporting what cannot be read."""

from __future__ import annotations

import datetime as dt
import os
import time

import feedparser
import pytest
from lxml import etree

from digest.content import collect, is_published
from digest.errors import ArticleError
from digest.jobs import build

from conftest import NOW, Site, article_text

ATOM = "{http://www.w3.org/2005/Atom}"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _titles_in_site_feed(site: Site) -> list[str]:
    return [e.title for e in feedparser.parse((site.feeds / "index.xml").read_bytes()).entries]


def test_drafts_future_and_expired_articles_are_not_published(site: Site) -> None:
    site.add("live.md", article_text(title="Live", date="2025-06-20T10:00:00+08:00"))
    site.add("draft.md", article_text(title="Draft", draft=True))
    site.add("draft-string.md", article_text(title="Draft string", draft='"true"'))
    site.add("future.md", article_text(title="Future", date="2025-07-01T10:00:00+08:00"))
    site.add(
        "scheduled.md",
        article_text(
            title="Scheduled", date="2025-06-01T10:00:00+08:00", publishDate="2025-07-02T00:00:00+08:00"
        ),
    )
    site.add(
        "expired.md",
        article_text(
            title="Expired", date="2025-06-01T10:00:00+08:00", expiryDate="2025-06-29T00:00:00+08:00"
        ),
    )
    report = build(site.config(), NOW)
    assert report.problems == []
    assert _titles_in_site_feed(site) == ["Live"]


def test_the_publish_rules_follow_the_clock() -> None:
    from dataclasses import replace

    from digest.content import _ParseSettings, parse_article

    from conftest import SEED_ARTICLE

    settings = _ParseSettings(
        str(SEED_ARTICLE.parent),
        "seeds",
        "https://example.com/",
        "Asia/Shanghai",
        "",
        "/posts/{slug}/",
        "main_topics",
        ("summary",),
        ("featured_image",),
        5_000_000,
    )
    article = parse_article(SEED_ARTICLE.name, SEED_ARTICLE.read_bytes(), settings)
    published_at = dt.datetime(2025, 6, 25, 17, 10, 4, tzinfo=SHANGHAI)
    assert not is_published(article, published_at - dt.timedelta(seconds=1))
    assert is_published(article, published_at)
    expiring = replace(article, expiry=published_at + dt.timedelta(days=1))
    assert is_published(expiring, published_at + dt.timedelta(hours=23))
    assert not is_published(expiring, published_at + dt.timedelta(days=1))


def test_date_only_and_naive_dates_take_the_site_timezone(site: Site) -> None:
    site.add("date-only.md", article_text(title="D", date="2025-06-20"))
    site.add("naive.md", article_text(title="N", date="2025-06-21T09:15:00"))
    site.add("naive-space.md", article_text(title="S", date='"2025-06-22 09:15"'))
    by_title = {a.title: a for a in collect(site.config()).articles}
    assert by_title["D"].date == dt.datetime(2025, 6, 20, 0, 0, tzinfo=SHANGHAI)
    assert by_title["N"].date == dt.datetime(2025, 6, 21, 9, 15, tzinfo=SHANGHAI)
    assert by_title["S"].date == dt.datetime(2025, 6, 22, 9, 15, tzinfo=SHANGHAI)
    assert by_title["D"].date.utcoffset() == dt.timedelta(hours=8)


def test_a_bom_and_crlf_file_is_read_whole(site: Site) -> None:
    text = article_text(title="带 BOM 的文章", summary="摘要", tags=["甲", "乙"], body="第一段。\n\n第二段。")
    site.add("bom.md", b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    [article] = collect(site.config()).articles
    assert article.title == "带 BOM 的文章"
    assert article.summary == "摘要"
    assert article.tags == ("甲", "乙")
    assert article.body == "第一段。\n\n第二段。\n"


def test_toml_and_json_front_matter(site: Site) -> None:
    site.add(
        "toml.md",
        '+++\ntitle = "From TOML"\ndate = 2025-06-20T08:00:00+08:00\n'
        'tags = ["x"]\nmain_topics = "T"\n+++\n\nBody.\n',
    )
    site.add(
        "json.md", '{\n  "title": "From JSON",\n  "date": "2025-06-21",\n  "draft": "false"\n}\n\nBody.\n'
    )
    articles = {a.title: a for a in collect(site.config()).articles}
    assert articles["From TOML"].topics == ("T",)
    assert articles["From TOML"].date == dt.datetime(2025, 6, 20, 8, tzinfo=SHANGHAI)
    assert articles["From JSON"].date == dt.datetime(2025, 6, 21, tzinfo=SHANGHAI)
    assert articles["From JSON"].draft is False
    assert articles["From JSON"].body == "Body.\n"


def test_tags_and_topics_may_be_one_string(site: Site) -> None:
    site.add("a.md", article_text(title="A", tags="单个标签", main_topics="单个主题"))
    [article] = collect(site.config()).articles
    assert article.tags == ("单个标签",)
    assert article.topics == ("单个主题",)


def test_topic_field_summary_and_image_fields_follow_the_config(site: Site) -> None:
    site.set("content", topic_field="categories", summary_fields=["description"], image_fields=["images"])
    site.add(
        "a.md",
        article_text(
            title="A",
            categories=["Go", "go"],
            description="From description",
            summary="ignored",
            images=["first.png", "second.png"],
        ),
    )
    [article] = collect(site.config()).articles
    assert article.topics == ("Go",)
    assert article.summary == "From description"
    assert article.image == "first.png"


def test_hugo_section_pages_are_skipped_and_bundles_take_the_folder_name(site: Site) -> None:
    site.add("posts/_index.md", article_text(title="Section"))
    site.add("posts/my-trip/index.md", article_text(title="Trip", cover="photo.jpg", body="![x](map.png)"))
    collection = collect(site.config())
    assert collection.problems == []
    [article] = collection.articles
    assert article.slug == "my-trip"
    assert article.url == "https://example.com/posts/my-trip/"
    build(site.config(), NOW)
    entry = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries[0]
    assert 'src="https://example.com/posts/my-trip/photo.jpg"' in entry.content[0].value
    assert 'src="https://example.com/posts/my-trip/map.png"' in entry.content[0].value


def test_symlinks_that_leave_the_folder_or_loop_are_not_followed(site: Site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(article_text(title="Secret"), encoding="utf-8")
    site.add("inside/a.md", article_text(title="Inside"))
    os.symlink(outside, site.content / "escape")
    os.symlink(site.content, site.content / "inside" / "loop")
    titles = [a.title for a in collect(site.config()).articles]
    assert titles == ["Inside"]


def test_of_two_articles_with_one_slug_the_first_published_keeps_it(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site.root)
    site.add("a.md", article_text(title="A", slug="same", date="2025-06-02"))
    site.add("b.md", article_text(title="B", slug="same", date="2025-06-01"))
    site.add("c.md", article_text(title="C"))
    collection = collect(site.config())
    assert [a.title for a in collection.articles] == ["B", "C"]
    assert [str(p) for p in collection.problems] == [
        "content/a.md: slug 'same' is already used by content/b.md "
        "(set a distinct 'slug' in the front matter)",
    ]


def test_a_draft_that_takes_a_live_articles_slug_unpublishes_nothing(site: Site) -> None:
    site.add("live.md", article_text(title="Live", date="2025-06-20", main_topics=["Chips"]))
    site.add("next.md", article_text(title="Next", date="2025-06-01", slug="live", draft=True))
    report = build(site.config(), NOW)
    assert _titles_in_site_feed(site) == ["Live"]
    assert (site.feeds / "chips.xml").exists()
    [problem] = report.problems
    assert problem.path.endswith("next.md")
    assert problem.message.startswith("slug 'live' is already used by ") and problem.message.endswith(
        "live.md"
    )


def test_two_articles_with_one_entry_id_never_share_it_in_a_feed(site: Site) -> None:
    site.add("a.md", article_text(title="First", date="2025-06-01", id="urn:uuid:1234"))
    site.add("b.md", article_text(title="Second", date="2025-06-02", id="urn:uuid:1234"))
    report = build(site.config(), NOW)
    assert _titles_in_site_feed(site) == ["First"]
    assert len(report.problems) == 1
    assert "entry id 'urn:uuid:1234' is already used by" in report.problems[0].message


def test_an_edit_that_restores_size_and_mtime_is_still_seen(site: Site) -> None:
    path = site.add("a.md", article_text(title="Title A"))
    build(site.config(), NOW)
    before = path.stat()
    path.write_text(article_text(title="Title B"), encoding="utf-8")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p, rsync -t or tar would
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    report = build(site.config(), NOW)
    assert report.parsed == 1
    assert _titles_in_site_feed(site) == ["Title B"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "no-title.md",
            "---\ndate: 2025-06-01\n---\nx\n",
            "content/no-title.md:2: front matter: 'title' is missing (add a 'title:' line)",
        ),
        (
            "bad-date.md",
            "---\ntitle: T\ndraft: false\ndate: next tuesday\n---\nx\n",
            "content/bad-date.md:4: front matter: 'date' is not a date ('next tuesday') "
            "(use ISO 8601, e.g. 2025-06-25T17:10:04+08:00 or 2025-06-25)",
        ),
        (
            "bad-yaml.md",
            "---\ntitle: T\ndate: 2025-06-01\ntags: [a, b\n---\nx\n",
            "content/bad-yaml.md:4: front matter: YAML: did not find expected ',' or ']'",
        ),
        (
            "bad-indent.md",
            "---\ntitle: T\n  date: 2025-06-01\n---\nx\n",
            "content/bad-indent.md:3: front matter: YAML: mapping values are not allowed in this context",
        ),
        (
            "bad-draft.md",
            "---\ntitle: T\ndate: 2025-06-01\ndraft: maybe\n---\nx\n",
            "content/bad-draft.md:4: front matter: 'draft' must be true or false, not 'maybe'",
        ),
        (
            "bad-tags.md",
            "---\ntitle: T\ndate: 2025-06-01\ntags: {a: 1}\n---\nx\n",
            "content/bad-tags.md:4: front matter: 'tags' must be a list of text or one text",
        ),
        (
            "no-front-matter.md",
            "Just text.\n",
            "content/no-front-matter.md:1: no front matter "
            "(start the file with '---' (YAML), '+++' (TOML) or a JSON object)",
        ),
        (
            "unclosed.md",
            "---\ntitle: T\n",
            "content/unclosed.md:1: front matter: no closing '---' (end the front matter with a line '---')",
        ),
        (
            "latin1.md",
            "---\ntitle: caf\xe9\ndate: 2025-06-01\n---\n".encode("latin-1"),
            "content/latin1.md:2: not UTF-8 text (save the file as UTF-8)",
        ),
    ],
)
def test_a_broken_article_is_reported_with_path_and_line_and_the_others_publish(
    site: Site, name: str, content: str | bytes, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site.root)
    site.add(name, content)
    site.add("good.md", article_text(title="Good"))
    report = build(site.config(), NOW)
    assert [str(p) for p in report.problems] == [expected]
    assert _titles_in_site_feed(site) == ["Good"]


def test_files_over_the_size_limit_are_refused(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(site.root)
    site.set("content", max_file_bytes=1000)
    site.add("big.md", article_text(title="Big", body="x" * 2000))
    site.add("small.md", article_text(title="Small"))
    collection = collect(site.config())
    assert [a.title for a in collection.articles] == ["Small"]
    assert [str(p) for p in collection.problems] == [
        "content/big.md: file is 2055 bytes, over the limit of 1000 "
        "(raise [content] max_file_bytes to accept it)"
    ]


def test_a_yaml_alias_bomb_neither_hangs_nor_exhausts_memory(site: Site) -> None:
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[index]
        levels.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    bomb = "---\ntitle: Bomb\ndate: 2025-06-01\n" + "\n".join(levels) + "\ntags: *i\n---\nx\n"
    site.add("bomb.md", bomb)
    site.add("good.md", article_text(title="Good"))
    started = time.perf_counter()
    collection = collect(site.config())
    assert time.perf_counter() - started < 5  # 9**9 strings would take minutes and gigabytes
    assert [a.title for a in collection.articles] == ["Good"]
    assert "front matter: YAML: aliases here expand to more than 100000 values" in str(collection.problems[0])


def test_control_characters_never_reach_the_feed(site: Site) -> None:
    site.add(
        "ctl.md",
        '---\ntitle: "Bell\\a and\\v tab"\ndate: 2025-06-01\nsummary: "NUL\\0 gone"\n---\n\n'
        "Text with \x01 and \x1f inside.\n",
    )
    report = build(site.config(), NOW)
    assert report.problems == []
    data = (site.feeds / "index.xml").read_bytes()
    for forbidden in (b"\x00", b"\x01", b"\x07", b"\x0b", b"\x1f"):
        assert forbidden not in data
    entry = feedparser.parse(data).entries[0]
    assert entry.title == "Bell and tab"
    assert entry.summary == "NUL gone"


def test_relative_links_become_absolute_against_the_permalink(site: Site) -> None:
    body = (
        "[up](../other/) [root](/about/) [same](notes.html) [frag](#top) [ext](https://example.org/x)\n\n"
        '<img src="pic.png" srcset="pic.png 1x, /big/pic.png 2x">\n\n![alt](images/a b.png)'
    )
    site.add("links.md", article_text(title="Links", body=body))
    build(site.config(), NOW)
    # Read the raw XML: feedparser's own sanitizer drops srcset.
    content = etree.parse(str(site.feeds / "index.xml")).find(f"{ATOM}entry/{ATOM}content").text
    assert 'href="https://example.com/posts/other/"' in content
    assert 'src="https://example.com/posts/links/images/a%20b.png"' in content
    assert 'href="https://example.com/about/"' in content
    assert 'href="https://example.com/posts/links/notes.html"' in content
    assert 'href="https://example.org/x"' in content
    assert (
        'srcset="https://example.com/posts/links/pic.png 1x, https://example.com/big/pic.png 2x"' in content
    )
    assert 'src="https://example.com/posts/links/pic.png"' in content


def test_unsafe_html_is_removed_from_feed_content(site: Site) -> None:
    body = (
        '<script>alert(1)</script><iframe src="https://evil.example/"></iframe>'
        '<object data="x"></object><embed src="x"><style>p{}</style>\n\n'
        '<a href="javascript:alert(1)" onclick="steal()">click</a> <img src="a.png" onerror="x()">'
    )
    site.add("xss.md", article_text(title="XSS", body=body))
    build(site.config(), NOW)
    content = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries[0].content[0].value
    raw = (site.feeds / "index.xml").read_text(encoding="utf-8")
    for bad in ("script", "iframe", "object", "embed", "style", "onclick", "onerror", "javascript:"):
        assert bad not in raw.split("<content", 1)[1], bad
    assert ">click</a>" in content


def test_footnote_ids_are_unique_per_article(site: Site) -> None:
    body = "Claim.[^1]\n\n[^1]: Source."
    site.add("one.md", article_text(title="One", body=body))
    site.add("two.md", article_text(title="Two", body=body))
    build(site.config(), NOW)
    entries = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries
    ids = [e.content[0].value.split('id="', 1)[1].split('"', 1)[0] for e in entries]
    assert len(set(ids)) == 2
    for entry in entries:
        value = entry.content[0].value
        footnote_id = value.split('<li id="', 1)[1].split('"', 1)[0]
        assert f'href="#{footnote_id}"' in value  # the reference still points at its own footnote


def test_an_unchanged_tree_is_not_read_again(site: Site) -> None:
    site.add("a.md", article_text(title="A"))
    first = build(site.config(), NOW)
    assert first.parsed == 1
    again = build(site.config(), NOW)
    assert again.up_to_date and again.parsed == 0 and again.published == 1
    path = site.add("b.md", article_text(title="B"))
    third = build(site.config(), NOW)
    assert third.parsed == 1 and third.published == 2  # only the new file was parsed
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert build(site.config(), NOW).parsed == 1


def test_an_article_becomes_published_when_its_time_comes_without_any_file_change(site: Site) -> None:
    site.add("now.md", article_text(title="Now", date="2025-06-20"))
    site.add("later.md", article_text(title="Later", date="2025-07-10"))
    build(site.config(), NOW)
    assert _titles_in_site_feed(site) == ["Now"]
    assert build(site.config(), NOW + dt.timedelta(days=5)).up_to_date
    report = build(site.config(), dt.datetime(2025, 7, 10, tzinfo=SHANGHAI))
    assert not report.up_to_date
    assert _titles_in_site_feed(site) == ["Later", "Now"]


def test_a_derived_summary_is_cut_by_characters_at_a_sentence_end(site: Site) -> None:
    from digest.render import article_html, summary_text

    body = (
        "### 标题不算\n\n" + "第一句话很短。" * 5 + "\n\n第二段接着说，" + "这是很长的中文内容" * 30 + "。\n"
    )
    site.add("zh.md", article_text(title="中文", body=body))
    [article] = collect(site.config()).articles
    html = article_html(article)
    summary = summary_text(article, html, 40)
    assert summary == "第一句话很短。" * 5  # 35 characters, ending at the last full stop before 40
    longer = summary_text(article, html, 80)
    assert longer.startswith("第一句话很短。" * 5 + "第二段接着说，")  # no space between paragraphs
    assert len(longer) == 80 and longer.endswith("…")
    assert "标题" not in longer


def test_a_javascript_or_data_featured_image_never_reaches_a_reader(site: Site) -> None:
    site.add("js.md", article_text(title="JS", featured_image='"javascript:alert(document.domain)"'))
    site.add(
        "data.md",
        article_text(title="Data", featured_image='"data:image/png;base64,AAAA"', date="2025-06-24"),
    )
    build(site.config(), NOW)
    data = (site.feeds / "index.xml").read_text(encoding="utf-8")
    assert "javascript" not in data and "data:image" not in data
    assert "media:thumbnail" not in data


@pytest.mark.parametrize(
    ("front_matter", "message"),
    [
        ('title: "\\x01\\x02"', "front matter: 'title' has no printable text"),
        (
            "id: urn:uuid:12 34",
            "front matter: 'id' must be a URI without spaces or control characters ('urn:uuid:12 34')",
        ),
    ],
)
def test_fields_that_cannot_make_a_valid_feed_are_reported_per_article(
    site: Site, front_matter: str, message: str
) -> None:
    site.add("bad.md", f"---\ntitle: Fine\ndate: 2025-06-01\n{front_matter}\n---\n")
    site.add("good.md", article_text(title="Good"))
    report = build(site.config(), NOW)
    assert [p.message for p in report.problems] == [message]
    assert _titles_in_site_feed(site) == ["Good"]


def test_changing_a_content_setting_rebuilds_what_it_changes(site: Site) -> None:
    site.add("a.md", article_text(title="A", cover="cover.png", body="A first sentence. " * 30))
    build(site.config(), NOW)
    entry = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries[0]
    assert entry.media_thumbnail[0]["url"].endswith("/cover.png")
    long_summary = entry.summary
    site.set("content", summary_chars=40, image_fields=["featured_image"])
    report = build(site.config(), NOW)
    assert not report.up_to_date
    entry = feedparser.parse((site.feeds / "index.xml").read_bytes()).entries[0]
    assert "media_thumbnail" not in entry
    assert len(entry.summary) <= 40 < len(long_summary)


def test_build_waits_for_a_running_job_and_says_who_holds_the_lock(site: Site) -> None:
    from digest.errors import StateError
    from digest.state import run_lock

    site.add("a.md", article_text(title="A"))
    config = site.config()
    with run_lock(config.state.path, 1), pytest.raises(StateError, match="another digest run"):
        build(config, NOW, lock_timeout=0.2)
    assert build(config, NOW, lock_timeout=0.2).published == 1


def test_a_new_file_that_takes_a_published_articles_slug_does_not_take_it_over(site: Site) -> None:
    site.add("a.md", article_text(title="Live", slug="same", date="2025-06-20T10:00:00+08:00"))
    build(site.config(), NOW)
    site.add("b.md", article_text(title="Newcomer", slug="same", date="2025-06-01T10:00:00+08:00"))
    report = build(site.config(), NOW)
    assert _titles_in_site_feed(site) == ["Live"]
    [problem] = report.problems
    assert problem.path.endswith("b.md") and "slug 'same' is already used by" in problem.message


def test_a_symlink_to_a_bundle_inside_the_folder_neither_duplicates_nor_renames_it(site: Site) -> None:
    site.add("real/index.md", article_text(title="Bundle"))
    for name in ("a", "b", "zz"):
        os.symlink(site.content / "real", site.content / name)
    collection = collect(site.config())
    assert collection.problems == []
    assert [(a.source, a.slug) for a in collection.articles] == [("real/index.md", "real")]


def test_a_build_waiting_for_the_lock_gives_up_at_once_when_asked_to_stop(site: Site) -> None:
    import threading

    from digest.state import StoppedWaiting, run_lock

    site.add("a.md", article_text(title="A"))
    config = site.config()
    stop = threading.Event()
    stop.set()
    started = time.perf_counter()
    with run_lock(config.state.path, 1), pytest.raises(StoppedWaiting):
        build(config, NOW, lock_timeout=30, stop=stop)
    assert time.perf_counter() - started < 5


# ---------------------------------------------------------------- what Hugo accepts, digest accepts (issue 7)


@pytest.mark.parametrize(
    "text",
    [
        "\n\n---\ntitle: Blank lines first\ndate: 2025-06-20\n---\nBody.\n",
        "  \n\t\n   ---\ntitle: Indented opening\ndate: 2025-06-20\n---\nBody.\n",
        "\ufeff\n---\ntitle: BOM then a blank line\ndate: 2025-06-20\n---\nBody.\n",
        "\r\n\r\n---\r\ntitle: CRLF\r\ndate: 2025-06-20\r\n---\r\nBody.\r\n",
        '\n+++\ntitle = "TOML after a blank line"\ndate = 2025-06-20\n+++\nBody.\n',
        '\n{"title": "JSON on one line", "date": "2025-06-20"}\nBody.\n',
        '{\n  "title": "JSON",\n  "nested": {\n    "a": 1\n  },\n  "date": "2025-06-20"\n}\nBody.\n',
        "---\ntitle: A longer dash line\ndate: 2025-06-20\n-----\nBody.\n",
    ],
    ids=["blank-lines", "indented", "bom", "crlf", "toml", "json-one-line", "json-nested", "dashes"],
)
def test_front_matter_that_hugo_accepts_is_read(site: Site, text: str) -> None:
    site.add("post.md", text.encode("utf-8"))
    collection = collect(site.config())
    assert collection.problems == []
    [article] = collection.articles
    assert article.date == dt.datetime(2025, 6, 20, tzinfo=SHANGHAI)
    assert article.body == "Body.\n"


def test_yaml_is_read_as_pyyaml_reads_it(site: Site) -> None:
    site.add("a.md", "---\ntitle: A\ndate: 2025-06-20\ntags:\n- a\n  - b\nextra:\n  nested: 1\n---\nx\n")
    site.add("b.md", "---\ntitle: B\ndate: 2025-06-20\ntags:\n- a\n  - b\n---\nx\n")
    articles = {a.title: a for a in collect(site.config()).articles}
    # A continuation line of a plain scalar, as PyYAML (and Hugo's YAML) read it, with or without an
    # unrelated nested field (simple_yaml answered ['a', 'b'] for the second file).
    assert articles["A"].tags == articles["B"].tags == ("a - b",)


@pytest.mark.parametrize(
    "front",
    [
        "title: Plain\ntags: [a, b]\nnested: {x: [1, 2.5, true, null, ~]}",
        "date: 2025-06-20T10:00:00+08:00\nday: 2025-06-20\nspace: 2025-06-20 10:00:00",
        "count: 0x1F\noctal: 0o17\nsexagesimal: 1:30\nfloat: 1e3\ninf: .inf\nbools: [yes, No, on, off]",
        "2024: a number key\n1.5: a float key\ntrue: a bool key\n~: a null key",
        "base: &base {a: 1, b: 2}\nmerged:\n  <<: {a: 9, c: 3}\n  b: 4",
        "dup: first\ndup: second",
        "quoted: '2025-06-20'\ntagged: !!str 123\nexplicit: !!int '42'\nfloat_tag: !!float 1",
        "ordered: !!omap [{a: 1}, {b: 2}]\npairs: !!pairs [{a: 1}, {a: 2}]\nset: !!set {x, y}",
        "bin: !!binary aGVsbG8=\nempty:\nblank: ''\nlist_of_maps: [{k: v}, {k: [w]}]",
        "=: a value key\nmulti: |\n  line one\n  line two\nfolded: >\n  a\n  b",
        "- a top-level list\n- of items",
        "just a scalar",
    ],
    ids=["plain", "dates", "numbers", "keys", "merge", "duplicate", "tags", "collections", "misc",
         "value-key", "list", "scalar"],
)  # fmt: skip
def test_front_matter_values_are_those_of_pyyamls_safe_loader(front: str) -> None:
    """digest builds plain strings, lists and mappings itself (faster): every value, and its type,
    must be what PyYAML's own safe loader gives."""
    import yaml

    from digest.front_matter import load_front_matter

    expected = yaml.safe_load(front)
    if not isinstance(expected, dict):
        with pytest.raises(ArticleError, match="must be a mapping"):
            load_front_matter("yaml", front, 2)
        return
    loaded = load_front_matter("yaml", front, 2)
    assert loaded == expected
    assert repr(loaded) == repr(expected)  # the same types all the way down (1 vs 1.0 vs True)


def test_a_yaml_error_after_blank_lines_names_its_line_in_the_file(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site.root)
    site.add("bad.md", "\n\n---\ntitle: Bad\ndate: 2025-06-20\ntags: [a, b\n---\nx\n")
    site.add("no-title.md", "\n---\n\ndate: 2025-06-20\n---\nx\n")
    problems = [str(p) for p in collect(site.config()).problems]
    assert problems == [
        "content/bad.md:6: front matter: YAML: did not find expected ',' or ']'",
        "content/no-title.md:3: front matter: 'title' is missing (add a 'title:' line)",
    ]


def test_a_file_is_read_whole_up_to_the_limit_even_when_it_grows_while_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`read_at_most` asks the size first; a file whose size says less than it holds (one that grew
    since, or a /proc file, which says 0) is still read to its end or to one byte past the limit."""
    from digest.content import read_at_most

    path = tmp_path / "a.md"
    path.write_bytes(b"x" * 100)
    with path.open("rb") as handle:
        assert read_at_most(handle, 1000) == b"x" * 100
    with path.open("rb") as handle:
        assert read_at_most(handle, 10) == b"x" * 11
    with open("/proc/self/status", "rb") as handle:  # st_size 0, like a file that grew after fstat
        whole = read_at_most(handle, 1_000_000)
    assert whole.startswith(b"Name:") and b"\nPid:" in whole
    with open("/proc/self/status", "rb") as handle:
        assert len(read_at_most(handle, 20)) == 21
