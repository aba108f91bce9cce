"""End to end on the generated Hugo sites: `digest build` publishes exactly what the real `hugo` lists.

For each site of `hugo_sites`, a digest config names the site (`[content] hugo_site`) and nothing else
that Hugo's config already says; `digest build` runs through the CLI, feedparser reads the site feed,
and its entries are compared with `.Site.RegularPages` of a real `hugo` build: the same dated pages,
at Hugo's permalinks (the entry's `<link>`), with Hugo's titles, dates and authored summaries.
"""

from __future__ import annotations

import html
import os
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin
from xml.etree import ElementTree

import feedparser
import pytest
from click.testing import CliRunner

import hugo_sites
from digest.cli import main
from digest.hugo_config import read_hugo_config
from hugo_sites import AUTHORED, NOW, SITES, hugo_view

NOW_ISO = NOW.isoformat()
ATOM = "{http://www.w3.org/2005/Atom}"


def _instant(text: str) -> datetime | None:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return None if moment.year == 1 else moment


def _words(text: str) -> str:
    return " ".join(html.unescape(text).split())


def write_config(folder: Path, site_root: Path, extra: str = "") -> Path:
    config = folder / "config.toml"
    config.write_text(
        f'[content]\nhugo_site = "{site_root}"\n{extra}\n'
        '[feeds]\ndir = "feeds"\nmax_entries = 1000\n'
        '[state]\npath = "state.sqlite3"\n',
        encoding="utf-8",
    )
    return config


class Built:
    def __init__(self, name: str, tmp: Path) -> None:
        self.name = name
        self.root = SITES[name](tmp / "site")
        self.hugo = hugo_view(self.root, tmp / "hugo")
        self.hugo_public = tmp / "hugo" / "public"
        self.folder = tmp / "digest"
        self.folder.mkdir()
        self.config = write_config(self.folder, self.root)
        runner = CliRunner()
        here = os.getcwd()
        os.chdir(self.root)  # run where a Hugo user runs it: paths are shown relative to the site
        try:
            self.build = runner.invoke(main, ["--config", str(self.config), "build", "--now", NOW_ISO])
            self.check = runner.invoke(main, ["--config", str(self.config), "check", "--now", NOW_ISO])
        finally:
            os.chdir(here)
        self.site = read_hugo_config(self.root)
        # Each language's site feed: the default language's at the root, the others' under <lang>/.
        self.feeds: dict[str, bytes] = {}
        for language in self.site.languages:
            lang = language.lang
            name = "index.xml" if lang == self.site.default_content_language else f"{lang}/index.xml"
            self.feeds[lang] = (self.folder / "feeds" / name).read_bytes()
        self.entries = [e for data in self.feeds.values() for e in feedparser.parse(data).entries]
        # Titles as written (feedparser strips their spaces; Hugo keeps them), and the translations'
        # links, by entry link.
        self.titles: dict[str, str] = {}
        self.links: dict[str, str] = {}  # entry id -> its own link (feedparser's `link` may be another)
        self.translations: dict[str, set[tuple[str, str]]] = {}
        for data in self.feeds.values():
            for entry in ElementTree.fromstring(data).iter(f"{ATOM}entry"):
                link = entry.find(f"{ATOM}link[@rel='alternate']").get("href")
                self.titles[link] = entry.findtext(f"{ATOM}title")
                self.links[entry.findtext(f"{ATOM}id")] = link
                self.translations[link] = {
                    (other.get("hreflang"), other.get("href"))
                    for other in entry.findall(f"{ATOM}link[@hreflang]")
                }

    def dated(self) -> dict[str, dict[str, str]]:
        """Hugo's listed pages that have a date, by permalink (what digest's site feed must hold).
        Two pages at one URL are one page to a reader (Hugo writes one over the other)."""
        by_link: dict[str, dict[str, str]] = {}
        for _, entry in sorted(self.hugo.listed.items()):
            if _instant(entry["date"]) is not None:
                by_link.setdefault(entry["permalink"], entry)
        return by_link


@pytest.fixture(scope="module", params=sorted(SITES))
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return Built(request.param, tmp_path_factory.mktemp(request.param))


def test_build_exits_0_with_no_page_called_broken(built: Built) -> None:
    assert built.build.exit_code == 0, built.build.output
    assert "skipped:" not in built.build.output


def test_the_feed_holds_exactly_hugos_dated_listed_pages_at_hugos_urls(built: Built) -> None:
    links = [built.links[entry.id] for entry in built.entries]
    assert len(links) == len(set(links))
    assert set(links) == set(built.dated())


def test_each_language_has_its_feeds_with_its_pages_and_xml_lang(built: Built) -> None:
    theirs = built.dated()
    for language in built.site.languages:
        feed = ElementTree.fromstring(built.feeds[language.lang])
        assert feed.get("{http://www.w3.org/XML/1998/namespace}lang") == (
            language.language_code or language.lang
        )
        links = {e.find(f"{ATOM}link[@rel='alternate']").get("href") for e in feed.iter(f"{ATOM}entry")}
        assert links == {link for link, page in theirs.items() if page["lang"] == language.lang}


def test_translations_are_linked_as_hugo_links_them(built: Built) -> None:
    theirs = built.dated()
    for link, page in theirs.items():
        expected = {(t["lang"], t["permalink"]) for t in page["translations"] if t["permalink"] in theirs}
        assert built.translations[link] == expected, page["path"]
    assert any(built.translations.values()) or built.name != "blog"  # the blog has translated pages


def test_titles_dates_and_authored_summaries_are_hugos(built: Built) -> None:
    theirs = built.dated()
    checked = 0
    for entry in built.entries:
        page = theirs[built.links[entry.id]]
        path = page["path"]
        title = page["title"] or Path(path).stem  # an untitled page: the feed needs a title
        assert built.titles[built.links[entry.id]] == title, path
        assert datetime.fromisoformat(entry.published) == _instant(page["date"]), path
        if path in AUTHORED[built.name]:
            assert _words(entry.summary) == _words(page["summary"]), path
            checked += 1
    assert checked == len(AUTHORED[built.name])


def test_check_lists_the_undated_pages_as_notes_and_passes(built: Built) -> None:
    assert built.check.exit_code == 0, built.check.output
    undated = {entry["path"] for entry in built.hugo.listed.values() if _instant(entry["date"]) is None}
    noted = {
        line.split(": ")[1]
        for line in built.check.output.splitlines()
        if line.endswith("no date: a page, not an article (in no feed or digest)")
    }
    assert {hugo_sites.rel_content_path(p, built.site) for p in noted} == undated
    assert undated or built.name == "plain"  # the blog and the project site have undated pages


def test_no_shortcode_reaches_the_feeds(built: Built) -> None:
    for feed in (built.folder / "feeds").glob("*.xml"):
        assert b"{{&lt;" not in feed.read_bytes() and b"{{<" not in feed.read_bytes(), feed.name


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return Built("blog", tmp_path_factory.mktemp("blog-refs"))


def test_shortcodes_become_the_html_hugo_means(blog: Built) -> None:
    entry = next(e for e in blog.entries if e.title == "Shortcodes")
    content = entry.content[0].value
    hugo_page = (blog.hugo_public / "2021/05/shortcodes/index.html").read_text("utf-8")
    import re

    hrefs = re.findall(r'<a href="([^"]+)">(?:about|second|the bundle)</a>', hugo_page)
    assert len(hrefs) == 3
    for href in hrefs:
        assert f'href="{urljoin(blog.links[entry.id], href)}"' in content
    assert '<figure><img alt="Its caption" src="https://example.org/img/a.png" />' in content
    assert "<h4>A figure</h4>" in content
    assert 'href="https://www.youtube.com/watch?v=w7Ft2ymGmfc"' in content
    assert '<pre><code class="language-go">func main() { fmt.Println("&lt;hi&gt;") }</code></pre>' in content
    assert "<p>Inner <strong>note</strong> text</p>" in content  # an unknown shortcode's inner text
    assert "aside" not in content
    assert "Sub &lt;b&gt;title&lt;/b&gt;" in content  # param: the page's own, escaped


def test_check_names_each_unknown_shortcode_once(blog: Built) -> None:
    lines = [line for line in blog.check.output.splitlines() if "shortcode" in line]
    assert lines == [
        "note: content/posts/shortcodes.md: shortcode 'aside' is not one of Hugo's built-ins: removed, "
        "its inner text kept",
        "note: content/posts/shortcodes.md: shortcode 'note' is not one of Hugo's built-ins: removed, "
        "its inner text kept",
    ]


def test_every_feed_of_every_language_is_valid_atom(built: Built) -> None:
    from lxml import etree

    from conftest import ATOM_SCHEMA

    schema = etree.RelaxNG(etree.parse(str(ATOM_SCHEMA)))
    feeds = sorted((built.folder / "feeds").rglob("*.xml"))
    assert len(feeds) >= len(built.site.languages)
    for path in feeds:
        assert schema.validate(etree.parse(str(path))), (path, schema.error_log)
