"""Hugo's URL rules in digest.urls: sanitising, patterns, default paths (values from Hugo's behaviour)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from digest.errors import ConfigError
from digest.urls import (
    PageFacts,
    PathRules,
    as_url,
    check_permalinks,
    expand_permalink,
    make_path,
    page_link,
    permalink,
    term_link,
    urlize,
)

ACCENTS = PathRules(remove_path_accents=True)


@pytest.mark.parametrize(
    ("text", "rules", "expected"),
    [
        (
            "dot.slash/backslash\\underscore_pound#plus+hyphen-",
            ACCENTS,
            "dot.slash/backslash\\underscore_pound#plus+hyphen-",
        ),
        ("%20 %2", ACCENTS, "%20-2"),
        ("foo- bar", ACCENTS, "foo-bar"),
        ("  Foo bar  ", ACCENTS, "Foo-bar"),
        ("fOO,bar:foobAR", ACCENTS, "fOObarfoobAR"),
        ("трям/трям", ACCENTS, "трям/трям"),
        ("Банковский кассир", ACCENTS, "Банковскии-кассир"),
        ("Банковский кассир", PathRules(), "Банковский-кассир"),
        ("संस्कृत", PathRules(), "संस्कृत"),
        ("a%C3%B1ame", PathRules(), "a%C3%B1ame"),
        ("this+is+a+test", PathRules(), "this+is+a+test"),
        ("~foo", PathRules(), "~foo"),
        ("foo--bar", ACCENTS, "foo--bar"),
        ("foo@bar", ACCENTS, "foo@bar"),
        ("中文标题：你好，世界", PathRules(), "中文标题你好世界"),
        ("a \t\n b", PathRules(), "a-b"),
    ],
)
def test_make_path_keeps_what_hugo_keeps(text: str, rules: PathRules, expected: str) -> None:
    assert make_path(text, rules) == expected


def test_urlize_lowercases_unless_disabled_and_percent_encodes() -> None:
    assert urlize("Café Crème") == "caf%C3%A9-cr%C3%A8me"
    assert (
        urlize("Café Crème", PathRules(disable_path_to_lower=True, remove_path_accents=True)) == "Cafe-Creme"
    )


def _page(**changes: object) -> PageFacts:
    values: dict[str, object] = {
        "dir": "posts/",
        "translation_base_name": "test-page",
        "content_base_name": "test-page",
        "section": "blue",
        "section_entries": ("a", "b", "c"),
        "title": "Spf13 Vim 3.0 Release and new website",
        "slug": "The Slug",
        "url": "",
        "date": datetime(2012, 4, 6, 3, 1, 59, tzinfo=UTC),
        "lang_prefix": "",
    }
    values |= changes
    return PageFacts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (":title", "spf13-vim-3.0-release-and-new-website"),
        ("/:year-:month-:title", "/2012-04-spf13-vim-3.0-release-and-new-website"),
        ("/:year/:yearday/:month/:monthname/:day/:weekday/:weekdayname/", "/2012/97/04/April/06/5/Friday/"),
        ("/:section/", "/blue/"),
        ("/:slug/", "/the-slug/"),
        ("/:slugorfilename/", "/the-slug/"),
        ("/:filename/", "/test-page/"),
        ("/:06-:1-:2-:Monday", "/12-4-6-Friday"),
        ("/:2006_01_02_15_04_05.000", "/2012_04_06_03_01_59.000"),
        ("/:sections/", "/a/b/c/"),
        ("/:sections[last]/", "/c/"),
        ("/:sections[0]/:sections[last]/", "/a/c/"),
        ("/:sections[1:]/", "/b/c/"),
        ("/:sections[:2]/", "/a/b/"),
        ("/:2006-01-02/", "/2012-01-02/"),  # only ":2006" is a token
    ],
)
def test_permalink_tokens(pattern: str, expected: str) -> None:
    assert expand_permalink(pattern, _page(), PathRules()) == expected


def test_slug_falls_back_to_the_title_and_slugorfilename_to_the_file() -> None:
    page = _page(slug="")
    assert expand_permalink("/:slug/", page, PathRules()) == "/spf13-vim-3.0-release-and-new-website/"
    assert expand_permalink("/:slugorfilename/", page, PathRules()) == "/test-page/"
    bundle = _page(slug="", translation_base_name="index", content_base_name="my-bundle")
    assert expand_permalink("/:filename/", bundle, PathRules()) == "/my-bundle/"


def test_date_tokens_use_the_dates_own_zone() -> None:
    page = _page(date=datetime(2012, 4, 6, 23, 30, tzinfo=timezone(timedelta(hours=-5))))
    assert expand_permalink("/:day/:15/:Z0700/", page, PathRules()) == "/06/23/-0500/"


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("/blog/:fred", "':fred'"),
        ("/:year//:title", "ill-formed"),
        ("/:TITLE", "':TITLE'"),
        ("/:pm/", "':pm'"),  # formats to itself at Hugo's reference time (23:01)
        ("/:Janet/", "':Janet'"),
    ],
)
def test_patterns_hugo_rejects_are_config_errors(pattern: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_permalinks({"posts": pattern}, "hugo.toml")
    assert problem in str(caught.value)
    assert str(caught.value).startswith("hugo.toml: [permalinks] posts")


def test_root_key_is_the_empty_section() -> None:
    assert check_permalinks({"/": "/:title/", " posts/ ": "/p/:slug/"}) == {
        "": "/:title/",
        "posts": "/p/:slug/",
    }


def test_default_path_slug_bundle_ugly_and_language() -> None:
    rules = PathRules()
    plain = _page(dir="posts/2020/", slug="", content_base_name="My Post", translation_base_name="My Post")
    assert page_link(plain, "", rules) == "/posts/2020/my-post/"
    assert page_link(_page(slug="a/b"), "", rules) == "/posts/a/b/"
    assert page_link(_page(slug="", content_base_name="bundle", dir="posts/"), "", rules) == "/posts/bundle/"
    assert page_link(_page(ugly=True), "", rules) == "/posts/the-slug.html"
    assert page_link(_page(ugly=True), "/2012/x/", rules) == "/2012/x.html"
    assert page_link(_page(lang_prefix="fr"), "/2012/x/", rules) == "/fr/2012/x/"
    assert page_link(_page(slug="index", content_base_name="index"), "", rules) == "/posts/"


def test_front_matter_url_wins_and_is_not_sanitised() -> None:
    rules = PathRules()
    assert page_link(_page(url="/Some Place/"), "/2012/x/", rules) == "/Some%20Place/"
    assert page_link(_page(url="/feed.xml"), "", rules) == "/feed.xml"
    assert page_link(_page(url="/no-slash"), "", rules) == "/no-slash/"
    assert page_link(_page(url="/abs/", lang_prefix="fr"), "", rules) == "/abs/"
    assert page_link(_page(url="rel/", lang_prefix="fr"), "", rules) == "/fr/rel/"


def test_expanded_patterns_are_query_unescaped_as_hugo_does() -> None:
    page = _page(title="C++ tips", slug="")
    assert expand_permalink("/:title/", page, PathRules()) == "/c++-tips/"
    assert (
        permalink(page, {"blue": "/:title/"}, "https://x.org/sub", PathRules()) == "https://x.org/sub/c-tips/"
    )


@pytest.mark.parametrize(
    ("term", "prefix", "ugly", "rules", "expected"),
    [
        # Hugo 0.111's own answers (tests/test_hugo_terms.py asks it): `#` and `+` kept, as in its links
        ("C#", "", False, PathRules(), "/tags/c#/"),
        ("C++", "", False, PathRules(), "/tags/c++/"),
        ("Go Lang", "fr", False, PathRules(), "/fr/tags/go-lang/"),
        ("Go", "", True, PathRules(), "/tags/go.html"),
        ("中文", "", False, PathRules(), "/tags/%E4%B8%AD%E6%96%87/"),
        (
            "Café Crème",
            "en",
            True,
            PathRules(disable_path_to_lower=True, remove_path_accents=True),
            "/en/tags/Cafe-Creme.html",
        ),
        ("a/b", "", False, PathRules(), "/tags/a/b/"),
        ("100%", "", False, PathRules(), "/tags/100/"),
        ("!!!", "", False, PathRules(), ""),  # nothing a path keeps: no term page
    ],
)
def test_term_link_is_the_path_of_hugos_term_page(
    term: str, prefix: str, ugly: bool, rules: PathRules, expected: str
) -> None:
    assert term_link("tags", term, prefix, ugly, rules) == expected


def test_as_url_encodes_what_a_reader_would_take_for_a_fragment_or_a_query() -> None:
    assert as_url("https://x.org/blog/tags/c#/") == "https://x.org/blog/tags/c%23/"
    assert as_url("/tags/x?y/") == "/tags/x%3Fy/"
    assert as_url("/tags/c++/") == "/tags/c++/"
