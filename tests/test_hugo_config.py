"""Reading a Hugo site's config as Hugo 0.111 reads it: which file, merge order, keys, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.errors import ConfigError
from digest.hugo_config import read_hugo_config


def _site(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_defaults_are_hugos(tmp_path: Path) -> None:
    site = read_hugo_config(_site(tmp_path, {"hugo.toml": ""}))
    assert site.base_url == ""
    assert site.content_dir == "content"
    assert site.default_content_language == "en"
    assert [lang.lang for lang in site.languages] == ["en"]
    assert site.taxonomies == {"tag": "tags", "category": "categories"}
    assert site.summary_length == 70
    assert site.permalinks == {}
    assert (site.build_drafts, site.build_future, site.build_expired) == (False, False, False)
    assert site.date_chains.date == ("date", "publishdate", "pubdate", "published", "lastmod", "modified")
    assert site.date_chains.publish_date == ("publishdate", "pubdate", "published", "date")
    assert site.date_chains.lastmod == (
        ":git",
        "lastmod",
        "modified",
        "date",
        "publishdate",
        "pubdate",
        "published",
    )
    assert site.date_chains.expiry_date == ("expirydate", "unpublishdate")


def test_hugo_toml_wins_over_config_toml_and_yaml_over_config(tmp_path: Path) -> None:
    root = _site(tmp_path, {"config.toml": 'title = "config"\n', "hugo.yaml": "title: hugo yaml\n"})
    site = read_hugo_config(root)
    assert site.title == "hugo yaml"
    assert site.config_files == (str(root / "hugo.yaml"),)
    (root / "hugo.toml").write_text('title = "hugo toml"\n', encoding="utf-8")
    assert read_hugo_config(root).title == "hugo toml"


def test_config_dir_merges_over_the_main_file_with_file_names_as_keys(tmp_path: Path) -> None:
    root = _site(
        tmp_path,
        {
            "hugo.toml": 'baseURL = "https://a.org/"\ntitle = "Main"\n'
            '[permalinks]\nposts = "/:year/:title/"\n',
            "config/_default/hugo.toml": 'title = "Default dir"\n',
            "config/_default/permalinks.yaml": "notes: /n/:slug/\n",
            "config/_default/languages.toml": '[de]\nweight = 2\ntitle = "DE"\n[EN]\nweight = 1\n',
            "config/_default/params.de.toml": "x = 1\n",
            "config/production/config.json": '{"baseURL": "https://prod.org/sub/"}',
            "config/development/hugo.toml": 'baseURL = "http://localhost/"\n',
        },
    )
    site = read_hugo_config(root)
    assert site.title == "Default dir"
    assert site.base_url == "https://prod.org/sub/"  # `hugo` builds for production
    assert site.permalinks == {"posts": "/:year/:title/", "notes": "/n/:slug/"}
    assert [(lang.lang, lang.title) for lang in site.languages] == [("en", "Default dir"), ("de", "DE")]


def test_keys_are_case_insensitive(tmp_path: Path) -> None:
    site = read_hugo_config(
        _site(
            tmp_path, {"hugo.json": '{"BASEURL": "https://x.org/", "UglyURLs": true, "HasCJKLanguage": true}'}
        )
    )
    assert (site.base_url, site.ugly_urls, site.has_cjk_language) == ("https://x.org/", True, True)


def test_languages_with_their_own_content_dirs_and_prefixes(tmp_path: Path) -> None:
    site = read_hugo_config(
        _site(
            tmp_path,
            {
                "hugo.toml": 'defaultContentLanguage = "zh"\ntimeZone = "Asia/Shanghai"\n'
                '[languages.zh]\ncontentDir = "content/zh"\n'
                '[languages.en]\ncontentDir = "content/en/"\ntimeZone = "Europe/London"\n',
            },
        )
    )
    assert [(lang.lang, lang.content_dir) for lang in site.languages] == [
        ("en", "content/en"),
        ("zh", "content/zh"),
    ]
    assert (site.lang_prefix("zh"), site.lang_prefix("en")) == ("", "en")
    assert (str(site.zone("zh")), str(site.zone("en"))) == ("Asia/Shanghai", "Europe/London")


def test_permalinks_page_form_of_newer_hugo_is_accepted(tmp_path: Path) -> None:
    site = read_hugo_config(
        _site(
            tmp_path,
            {"hugo.toml": '[permalinks]\nposts = "/old/:slug/"\n[permalinks.page]\nposts = "/new/:slug/"\n'},
        )
    )
    assert site.permalinks == {"posts": "/new/:slug/"}


def test_frontmatter_chains_expand_default_and_aliases(tmp_path: Path) -> None:
    site = read_hugo_config(
        _site(
            tmp_path,
            {"hugo.toml": '[frontmatter]\ndate = [":filename", ":default"]\npublishDate = "publishDate"\n'},
        )
    )
    assert site.date_chains.date[:3] == (":filename", "date", "publishdate")
    assert site.date_chains.publish_date == ("publishdate", "pubdate", "published")


@pytest.mark.parametrize(
    ("name", "text", "line", "words"),
    [
        ("hugo.toml", 'title = "a"\nbaseURL = \n', 2, "invalid TOML"),
        ("hugo.yaml", "title: a\nbaseURL: [\n", 3, "invalid YAML"),
        ("hugo.json", '{\n  "title": "a",\n}\n', 3, "invalid JSON"),
        ("hugo.toml", '[permalinks]\nposts = "/:year/:nonsense/"\n', None, "':nonsense'"),
        ("hugo.toml", 'timeZone = "Mars/Olympus"\n', None, "not a time zone"),
        ("hugo.toml", 'defaultContentLanguage = "fr"\n[languages.en]\nweight = 1\n', None, "'fr'"),
        ("hugo.toml", 'summaryLength = "long"\n', None, "summaryLength"),
        ("hugo.toml", 'ignoreFiles = ["(unclosed"]\n', None, "ignoreFiles"),
    ],
)
def test_an_invalid_config_names_the_file_and_line(
    tmp_path: Path, name: str, text: str, line: int | None, words: str
) -> None:
    root = _site(tmp_path, {name: text})
    with pytest.raises(ConfigError) as caught:
        read_hugo_config(root)
    assert caught.value.path == str(root / name)
    assert caught.value.line == line
    assert words in str(caught.value)
    assert str(caught.value).startswith(str(root / name) + (f":{line}: " if line else ": "))


def test_a_bad_file_in_the_config_dir_is_named(tmp_path: Path) -> None:
    root = _site(tmp_path, {"hugo.toml": "", "config/_default/menus.toml": "[[main]\n"})
    with pytest.raises(ConfigError) as caught:
        read_hugo_config(root)
    assert caught.value.path == str(root / "config/_default/menus.toml")
    assert caught.value.line == 1


def test_no_config_at_all_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Hugo config found"):
        read_hugo_config(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_hugo_config(tmp_path / "missing")
