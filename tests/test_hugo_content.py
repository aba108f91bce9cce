"""Hugo mode (`[content] hugo_site`) through digest's own entry points: config precedence, front matter
as Hugo finds it, summaries, what is in no feed, notes, incremental builds, and `digest init --hugo`."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from click.testing import CliRunner

from digest import jobs
from digest.cli import main
from digest.config import load_config
from digest.errors import ArticleError, ConfigError
from digest.hugo_content import Split, load_front_matter, split_front_matter
from hugo_sites import NOW, toml_page, yaml_page

NOW_ISO = NOW.isoformat()
HUGO_TOML = """\
baseURL = "https://example.org/site"
title = "Hugo Title"
languageCode = "fr-fr"
timeZone = "Asia/Tokyo"
[permalinks]
posts = "/:year/:slug/"
[taxonomies]
category = "categories"
tag = "tags"
"""


def make_site(root: Path, files: dict[str, str], config: str = HUGO_TOML) -> Path:
    (root / "hugo.toml").parent.mkdir(parents=True, exist_ok=True)
    (root / "hugo.toml").write_text(config, encoding="utf-8")
    for rel, text in files.items():
        path = root / "content" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def digest_config(folder: Path, site: Path, extra: str = "", content: str = "") -> Path:
    path = folder / "config.toml"
    path.write_text(
        f'{extra}\n[content]\nhugo_site = "{site}"\n{content}\n[feeds]\ndir = "feeds"\n'
        '[state]\npath = "state.sqlite3"\n',
        encoding="utf-8",
    )
    return path


def entries(folder: Path, feed: str = "index.xml") -> dict[str, feedparser.FeedParserDict]:
    parsed = feedparser.parse((folder / "feeds" / feed).read_bytes())
    return {urlsplit(e.link).path: e for e in parsed.entries}


# ---------------------------------------------------------------- config


def test_the_hugo_config_fills_the_site_keys_digest_does_not_set(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site", {})
    config = load_config(digest_config(tmp_path, site))
    assert config.hugo is not None and config.hugo.root == site
    assert (config.site.title, config.site.base_url) == ("Hugo Title", "https://example.org/site/")
    assert (config.site.language, config.site.timezone) == ("fr-fr", "Asia/Tokyo")
    assert config.content.topic_field == "categories"  # the site's first taxonomy
    assert config.content.dir == site


def test_a_key_digests_config_sets_wins_over_the_hugo_config(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site", {})
    extra = '[site]\ntitle = "Mine"\nbase_url = "https://mine.example/"\nlanguage = "de"\ntimezone = "UTC"'
    config = load_config(digest_config(tmp_path, site, extra, 'topic_field = "tags"'))
    assert (config.site.title, config.site.base_url, config.site.language) == (
        "Mine",
        "https://mine.example/",
        "de",
    )
    assert (config.site.timezone, config.content.topic_field) == ("UTC", "tags")


def test_an_invalid_hugo_config_is_an_error_naming_its_file_and_line(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site", {}, config='title = "x"\nbaseURL = \n')
    with pytest.raises(ConfigError) as caught:
        load_config(digest_config(tmp_path, site))
    assert str(caught.value).startswith(f"{site / 'hugo.toml'}:2: invalid TOML")


def test_a_missing_hugo_site_is_an_error_naming_the_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(digest_config(tmp_path, tmp_path / "nope")), "build"])
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'nope'}: the Hugo site folder does not exist\n"


# ---------------------------------------------------------------- front matter as Hugo finds it


@pytest.mark.parametrize(
    ("text", "fmt", "body"),
    [
        ("\n\n---\ntitle: a\n---\nBody\n", "yaml", "Body\n"),
        ("  ---\ntitle: a\n---\nBody\n", "yaml", "Body\n"),
        ("\ufeff\r\n---\ntitle: a\n---\nBody\n".lstrip("\ufeff").replace("\r\n", "\n"), "yaml", "Body\n"),
        ("+++\ntitle = 'a'\n+++\nBody\n", "toml", "Body\n"),
        ('{"title": "a"}\nBody\n', "json", "Body\n"),
        ("<!--\n---\ntitle: a\n---\n-->\nBody\n", "yaml", "Body\n"),
        ("Just a body\n", "yaml", "Just a body\n"),
    ],
)
def test_front_matter_is_found_where_hugo_finds_it(text: str, fmt: str, body: str) -> None:
    split = split_front_matter(text)
    assert (split.format, split.body) == (fmt, body)


def test_front_matter_hugo_rejects_is_a_problem_with_its_line_and_the_rest_publish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # paths are shown as the user would type them
    site = make_site(
        tmp_path / "site",
        {
            "posts/bad.md": "\n---\ntitle: a\ndate: [2020\n---\n",
            "posts/good.md": yaml_page({"title": "Good", "date": "2020-01-01"}),
        },
    )
    config = load_config(digest_config(tmp_path, site))
    report = jobs.build(config, NOW)
    assert [str(p) for p in report.problems] == [
        "site/content/posts/bad.md:4: front matter: YAML: did not find expected ',' or ']'"
    ]
    assert list(entries(tmp_path)) == ["/site/2020/good/"]
    with pytest.raises(ArticleError):
        split_front_matter("---\ntitle: a\n")


# ---------------------------------------------------------------- what is in a feed


def _blog(tmp_path: Path) -> Path:
    return make_site(
        tmp_path / "site",
        {
            "posts/_index.md": yaml_page({"title": "Posts"}),
            "posts/a.md": yaml_page(
                {"title": "A", "date": "2020-01-01", "categories": ["News"]},
                "Lead **text**.\n\n<!--more-->\n\nRest of it.\n",
            ),
            "posts/b.md": yaml_page(
                {"title": "B", "date": "2020-01-02", "summary": "The *field*", "categories": "News"},
                "Body of B.\n",
            ),
            "posts/c.md": yaml_page({"title": "C", "date": "2020-01-03"}, "Derived from the body.\n"),
            "posts/never.md": yaml_page({"title": "N", "date": "2020-01-04", "_build": {"list": "never"}}),
            "posts/local.md": yaml_page({"title": "L", "date": "2020-01-05", "_build": {"list": "local"}}),
            "posts/headless/index.md": yaml_page({"title": "H", "date": "2020-01-06", "headless": True}),
            "docs/manual.md": yaml_page({"title": "Manual, no date"}),
            "docs/notes.adoc": "= AsciiDoc\n",
        },
    )


def test_only_dated_listed_pages_are_entries_with_hugos_summaries(tmp_path: Path) -> None:
    config = load_config(digest_config(tmp_path, _blog(tmp_path)))
    report = jobs.build(config, NOW)
    assert report.problems == []
    found = entries(tmp_path)
    assert sorted(found) == ["/site/2020/a/", "/site/2020/b/", "/site/2020/c/"]
    assert found["/site/2020/a/"].summary == "Lead text."  # before <!--more-->
    assert found["/site/2020/b/"].summary == "The field"  # the summary field, as Markdown
    assert found["/site/2020/c/"].summary == "Derived from the body."  # digest's derived rule
    assert sorted(entries(tmp_path, "news.xml")) == ["/site/2020/a/", "/site/2020/b/"]


def test_check_shows_undated_pages_and_skipped_formats_as_notes_and_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = digest_config(tmp_path, _blog(tmp_path))
    result = CliRunner().invoke(main, ["--config", str(config), "check", "--now", NOW_ISO])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "note: site/content/docs/manual.md: no date: a page, not an article (in no feed or digest)",
        "note: site/content/docs/notes.adoc: skipped: .adoc content needs an external converter, "
        "which digest does not run",
    ]
    build = CliRunner().invoke(main, ["--config", str(config), "build", "--now", NOW_ISO])
    assert build.exit_code == 0 and "skipped" not in build.output


# ---------------------------------------------------------------- incremental builds are never stale


def _touch(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_a_cascade_in_an_index_file_changes_the_next_build(tmp_path: Path) -> None:
    site = _blog(tmp_path)
    config = load_config(digest_config(tmp_path, site))
    jobs.build(config, NOW)
    assert "/site/2020/a/" in entries(tmp_path)
    _touch(site / "content/posts/_index.md", yaml_page({"title": "Posts", "cascade": {"slug": "same"}}))
    jobs.build(config, NOW)
    assert sorted(entries(tmp_path)) == ["/site/2020/same/"]  # one URL now (the others are noted)
    _touch(site / "content/posts/_index.md", yaml_page({"title": "Posts", "draft": True}))
    jobs.build(config, NOW)
    assert entries(tmp_path) == {}  # a draft section removes its pages


def test_only_changed_files_are_parsed_again(tmp_path: Path) -> None:
    site = _blog(tmp_path)
    config = load_config(digest_config(tmp_path, site))
    first = jobs.build(config, NOW)
    assert first.parsed >= 8
    _touch(site / "content/posts/c.md", yaml_page({"title": "C2", "date": "2020-01-03"}, "New body.\n"))
    second = jobs.build(config, NOW)
    assert second.parsed == 1
    assert sorted(entries(tmp_path)) == [
        "/site/2020/a/",
        "/site/2020/b/",
        "/site/2020/c2/",
    ]  # :slug is the title
    # The Hugo config is part of every parse's key: a changed config reads every file again.
    (site / "hugo.toml").write_text(HUGO_TOML.replace("/:year/:slug/", "/p/:slug/"), encoding="utf-8")
    assert jobs.build(load_config(digest_config(tmp_path, site)), NOW).parsed == first.parsed


def test_a_changed_hugo_config_changes_the_next_build(tmp_path: Path) -> None:
    site = _blog(tmp_path)
    jobs.build(load_config(digest_config(tmp_path, site)), NOW)
    (site / "hugo.toml").write_text(HUGO_TOML.replace("/:year/:slug/", "/p/:slug/"), encoding="utf-8")
    report = jobs.build(load_config(digest_config(tmp_path, site)), NOW)
    assert not report.up_to_date
    assert sorted(entries(tmp_path)) == ["/site/p/a/", "/site/p/b/", "/site/p/c/"]


def test_a_ref_target_moving_re_renders_the_page_that_links_to_it(tmp_path: Path) -> None:
    site = make_site(
        tmp_path / "site",
        {
            "posts/from.md": yaml_page(
                {"title": "From", "date": "2020-01-01"}, '[to]({{< ref "to.md" >}})\n'
            ),
            "posts/to.md": yaml_page({"title": "To", "date": "2020-01-02"}),
        },
    )
    config = load_config(digest_config(tmp_path, site))
    jobs.build(config, NOW)
    assert (
        'href="https://example.org/site/2020/to/"' in entries(tmp_path)["/site/2020/from/"].content[0].value
    )
    _touch(site / "content/posts/to.md", yaml_page({"title": "To", "date": "2020-01-02", "slug": "moved"}))
    jobs.build(config, NOW)
    content = entries(tmp_path)["/site/2020/from/"].content[0].value
    assert 'href="https://example.org/site/2020/moved/"' in content


def test_a_future_section_holds_back_its_pages_until_its_date(tmp_path: Path) -> None:
    site = make_site(
        tmp_path / "site",
        {
            "later/_index.md": yaml_page({"title": "Later", "publishDate": "2027-01-01T00:00:00Z"}),
            "later/p.md": yaml_page({"title": "P", "date": "2020-01-01"}),
        },
    )
    config = load_config(digest_config(tmp_path, site))
    assert jobs.build(config, NOW).published == 0
    assert jobs.build(config, NOW.replace(year=2027)).published == 1


def test_toml_pages_and_goldmark_rendering(tmp_path: Path) -> None:
    site = make_site(
        tmp_path / "site",
        {
            "posts/t.md": toml_page(
                'title = "T"\ndate = 2020-01-01',
                'A "quote" -- ~~struck~~ https://example.net/x\n\n- [x] done\n\nTerm\n:   Meaning\n',
            )
        },
    )
    jobs.build(load_config(digest_config(tmp_path, site)), NOW)
    html = entries(tmp_path)["/site/2020/t/"].content[0].value
    assert "“quote” – <del>struck</del>" in html
    assert '<a href="https://example.net/x">https://example.net/x</a>' in html
    assert "☑ done" in html and "<dt>Term</dt>" in html


# ---------------------------------------------------------------- digest init --hugo


def test_init_writes_a_config_that_builds_the_sites_feeds(tmp_path: Path) -> None:
    site = _blog(tmp_path)
    config = tmp_path / "config.toml"
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(config), "init", "--hugo", str(site)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [f"wrote {config}", f"wrote {tmp_path / 'subscribers.csv'}"]
    text = config.read_text(encoding="utf-8")
    assert 'hugo_site = "site"' in text and 'topic_field = "categories"' in text
    assert 'method = "outbox"' in text and 'file = "subscribers.csv"' in text
    assert (tmp_path / "subscribers.csv").read_text() == "email,name,topics\n"
    build = runner.invoke(main, ["--config", str(config), "build", "--now", NOW_ISO])
    assert build.exit_code == 0, build.output
    assert sorted(entries(tmp_path)) == ["/site/2020/a/", "/site/2020/b/", "/site/2020/c/"]
    again = runner.invoke(main, ["--config", str(config), "init", "--hugo", str(site)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_the_libyaml_loader_reads_every_value_as_the_pure_one(tmp_path: Path) -> None:
    """HugoCYAMLLoader (what digest uses) and HugoYAMLLoader (the one checked against Hugo) agree on
    every YAML front matter of the generated blog, hand-written values included."""
    import yaml

    from digest.hugo_dates import HugoCYAMLLoader, HugoYAMLLoader
    from hugo_sites import blog_site

    root = blog_site(tmp_path / "blog")
    compared = 0
    for path in sorted((root / "content").rglob("*.md")):
        split = split_front_matter(path.read_text("utf-8-sig").replace("\r\n", "\n"))
        if split.format == "yaml" and split.front_matter:
            pure = yaml.load(split.front_matter, Loader=HugoYAMLLoader)
            assert yaml.load(split.front_matter, Loader=HugoCYAMLLoader) == pure, path.name
            assert repr(load_front_matter(split)) == repr(pure), path.name  # the loader digest picks
            compared += 1
    assert compared > 50


@pytest.mark.parametrize(
    "front",
    [
        "title: Plain\ntags: [a, b]\nnested: {x: [1, 2.5, true, null, ~]}",
        "date: 2025-06-20T10:00:00+08:00\nday: 2025-06-20\nspace: 2025-06-20 10:00:00",
        "short: [y, Y, n, N, yes, off]\ncount: 0x1F\nfloat: 1e3\ninf: .inf",
        "2024: a number key\ntrue: a bool key\ny: a yaml.v2 bool key",
        "merged:\n  <<: {a: 9, c: 3}\n  b: 4\ndup: first\ndup: second",
        "quoted: '2025-06-20'\ntagged: !!str 123\nexplicit: !!int '42'\nset: !!set {x, y}",
        "=: a value key\nlist_of_maps: [{k: v}, {k: [w]}]\nempty:\nblank: ''",
    ],
    ids=["plain", "dates", "bools", "keys", "merge", "tags", "misc"],
)  # fmt: skip
def test_front_matter_values_are_those_of_the_loader_checked_against_hugo(front: str) -> None:
    """digest builds plain strings, lists and mappings itself when a text has no alias: every value and
    its type must be what HugoYAMLLoader (PyYAML's pure loader, as Hugo reads YAML) gives."""
    import yaml

    from digest.hugo_dates import HugoYAMLLoader

    loaded = load_front_matter(Split("yaml", front, "", 2))
    assert repr(loaded) == repr(yaml.load(front, Loader=HugoYAMLLoader))


def test_the_weekly_digest_of_a_hugo_site_links_hugos_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build → feeds → digest: `run` mails the new dated pages at Hugo's permalinks, summaries authored
    by Hugo's rule, with no shortcode left."""
    monkeypatch.chdir(tmp_path)  # the digest's web copy goes to the default archive_dir, below here
    import email
    from email import policy

    site = make_site(
        tmp_path / "site",
        {
            "posts/new.md": yaml_page(
                {"title": "New one", "date": "2026-11-30T10:00:00Z", "categories": ["News"]},
                'Lead {{< param title >}}.\n\n<!--more-->\n\n{{< figure src="/f.png" >}}\n',
            ),
            "posts/old.md": yaml_page({"title": "Old one", "date": "2026-11-29T10:00:00Z"}),
            "posts/undated.md": yaml_page({"title": "Undated"}),
        },
    )
    config = digest_config(
        tmp_path,
        site,
        '[subscribers]\nlist = [{ email = "reader@example.com" }]\n[delivery]\noutbox = "outbox"',
    )
    result = CliRunner().invoke(main, ["--config", str(config), "run", "--now", NOW_ISO])
    assert result.exit_code == 0, result.output
    [path] = sorted((tmp_path / "outbox").glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    for part in (html, text):
        assert "https://example.org/site/2026/new-one/" in part and "/site/2026/old-one/" in part
        assert "Undated" not in part and "{{<" not in part
    assert "Lead New one." in text  # the authored summary, its shortcode expanded


def test_front_matter_that_means_too_much_is_a_problem_never_a_hang_or_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    site = make_site(
        tmp_path / "site",
        {
            "posts/laughs.md": f"---\n{laughs}---\n",
            "posts/deep.md": "---\ntitle: deep\nx: " + "[" * 500 + "]" * 500 + "\n---\n",
            "posts/deep.toml.md": "+++\nx = " + "[" * 500 + "]" * 500 + "\n+++\n",
            "posts/digits.md": "---\ntitle: digits\nn: " + "9" * 5000 + "\n---\n",
            "posts/ok.md": yaml_page({"title": "OK", "date": "2020-01-01"}),
        },
    )
    report = jobs.build(load_config(digest_config(tmp_path, site)), NOW)
    assert sorted(p.path for p in report.problems) == [
        "site/content/posts/deep.md",
        "site/content/posts/deep.toml.md",
        "site/content/posts/digits.md",
        "site/content/posts/laughs.md",
    ]
    assert "aliases here expand" in next(p.message for p in report.problems if "laughs" in p.path)
    assert list(entries(tmp_path)) == ["/site/2020/ok/"]


def test_an_impossible_offset_or_a_fifo_in_the_content_stops_nothing(tmp_path: Path) -> None:
    """`+99:00` is no date Hugo or Python can hold: the page has no date (a note), the others publish;
    a FIFO among the pages is passed over as Hugo passes it, instead of blocking the build."""
    site = make_site(
        tmp_path / "site",
        {
            "posts/offset.md": yaml_page({"title": "Offset", "date": "2025-06-01T10:00:00+99:00"}),
            "posts/good.md": yaml_page({"title": "Good", "date": "2020-01-01"}),
        },
    )
    os.mkfifo(site / "content" / "posts" / "pipe.md")
    config = digest_config(tmp_path, site)
    result = CliRunner().invoke(main, ["--config", str(config), "build", "--now", NOW_ISO])
    assert result.exit_code == 0, (result.output, result.exception)
    assert list(entries(tmp_path)) == ["/site/2020/good/"]
    checked = CliRunner().invoke(main, ["--config", str(config), "check", "--now", NOW_ISO])
    assert "Traceback" not in checked.output and "offset.md" in checked.output


def test_a_site_read_on_every_core_is_read_as_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many unread files are read in worker processes: the same pages, problems and notes, in the same
    order, as one process reading them all; and the parses are kept for the next build."""
    import concurrent.futures

    from digest import content
    from digest.cache import Cache
    from digest.config import load_config
    from digest.hugo_content import collect
    from digest.state import State
    from hugo_sites import blog_site

    site = blog_site(tmp_path / "blog")
    (site / "content" / "posts" / "broken.md").write_text("---\ntitle: [unclosed\n---\nx\n", encoding="utf-8")
    config = load_config(digest_config(tmp_path, site))
    serial = collect(config, None, workers=1)
    monkeypatch.setattr(content, "_PARALLEL_THRESHOLD", 5)
    pools: list[int | None] = []

    class CountedPool(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, max_workers: int | None = None, **options: object) -> None:
            pools.append(max_workers)
            super().__init__(max_workers, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", CountedPool)
    state = State.open(config.state.path)
    try:
        cache = Cache(state.db)
        parallel = collect(config, cache, workers=2)
        again = collect(config, cache, workers=2)
    finally:
        state.close()
    assert pools == [2]  # the first read used the workers; the second read nothing
    assert serial.problems and [str(p) for p in parallel.problems] == [str(p) for p in serial.problems]
    assert parallel.articles == serial.articles and parallel.notes == serial.notes
    assert parallel.parsed == serial.parsed > 0 and again.parsed == 0
    assert again.articles == serial.articles and again.notes == serial.notes
