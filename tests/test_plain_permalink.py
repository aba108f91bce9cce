"""The plain mode's `[content] permalink`: Hugo's tokens and sanitising (urls.py, one engine for both
modes), and the old `{slug}` placeholders still read, with a deprecation note from `digest check`."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import load_config
from digest.content import collect
from digest.errors import ConfigError
from digest.urls import legacy_permalink, plain_link

from conftest import NOW, Site, article_text

DATE = datetime(2025, 6, 25, 23, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.mark.parametrize(
    ("pattern", "rel", "slug", "title", "link"),
    [
        ("/posts/:slugorfilename/", "Hello World.md", "", "T", "/posts/hello-world/"),
        ("/posts/:slugorfilename/", "x.md", "My Slug!", "T", "/posts/my-slug/"),
        (
            "/posts/:slug/",
            "x.md",
            "",
            "芯片 出口: 新规",
            "/posts/%E8%8A%AF%E7%89%87-%E5%87%BA%E5%8F%A3-%E6%96%B0%E8%A7%84/",
        ),
        ("/:year/:month/:day/:filename/", "news/2025/bundle/index.md", "", "T", "/2025/06/25/bundle/"),
        ("/:section/:title/", "news/a.md", "", "C++ & Rust", "/news/c-rust/"),
        ("/:sections/:slugorfilename/", "a/b/c.md", "", "T", "/a/b/c/"),
        ("/posts/{slug}/", "Hello World.md", "", "T", "/posts/hello-world/"),
        ("/{year}/{month}/{slug}/", "x.md", "", "T", "/2025/06/x/"),
    ],
)
def test_hugo_tokens_and_sanitising(pattern: str, rel: str, slug: str, title: str, link: str) -> None:
    assert plain_link(pattern, rel, slug, title, DATE) == link


def test_the_old_placeholders_read_as_tokens() -> None:
    assert legacy_permalink("/posts/{slug}/") == "/posts/:slugorfilename/"
    assert legacy_permalink("/{year}/{month}/{day}/{slug}/") == "/:year/:month/:day/:slugorfilename/"
    assert legacy_permalink("/posts/:slug/") is None


def test_articles_get_the_url_of_the_pattern(site: Site) -> None:
    site.set("content", permalink="/:year/:slug/")
    site.add("Second Post.md", article_text("Über Alles!", "2025-06-25T10:00:00+08:00"))
    (article,) = collect(load_config(site.root / "config.toml"), None, bodies=False).articles
    assert article.url == "https://example.com/2025/%C3%BCber-alles/"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("/posts/{slug}/{category}/", "has an unknown placeholder or a stray brace"),
        ("/posts/:year/", "must hold :slug, :slugorfilename, :filename or :title"),
        ("/posts/:nope/:slug/", "is not a pattern Hugo accepts: permalink attribute not recognised"),
    ],
)
def test_a_pattern_that_cannot_work_is_a_config_error(site: Site, pattern: str, message: str) -> None:
    site.set("content", permalink=pattern)
    with pytest.raises(ConfigError, match="'content.permalink' " + message) as caught:
        load_config(site.root / "config.toml")
    assert caught.value.key == "content.permalink"


def test_check_notes_the_old_placeholders(site: Site) -> None:
    site.set("content", permalink="/posts/{slug}/")
    site.add("a.md", article_text("A", "2025-06-25T10:00:00+08:00"))
    args = ["--config", str(site.root / "config.toml"), "check", "--now", NOW.isoformat()]
    result = CliRunner().invoke(main, args)
    assert (
        f"note: {site.root / 'config.toml'}: [content] permalink '/posts/{{slug}}/' uses the old {{…}} "
        "placeholders, deprecated: it reads as '/posts/:slugorfilename/' (Hugo's tokens); write that instead"
    ) in result.output.splitlines()
    site.set("content", permalink="/posts/:slugorfilename/")
    assert "deprecated" not in CliRunner().invoke(main, args).output
