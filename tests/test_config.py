"""The config: one typed object; unknown and mistyped keys are errors naming the key; all documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digest.config import documented_keys, load_config
from digest.errors import ConfigError

from conftest import PROJECT, Site


def test_the_shipped_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(PROJECT / "config.toml")
    assert config.site.language == "zh-CN"
    assert config.content.dir == PROJECT / "seeds"  # relative to the config file, not the cwd
    assert config.feeds.max_entries == 50
    assert config.feeds.topic_slugs["产业生态与商业版图"] == "industry"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[site]\ntitel = 'x'\n", "unknown section"),  # [site] twice is a TOML error; see below
        ("[sitee]\ntitle = 'x'\n", "unknown section [sitee]"),
        ("[schedule]\ncorn = '0 8 * * mon'\n", "unknown key 'schedule.corn'"),
        (
            "[schedule]\nmisfire_grace_time = 'soon'\n",
            "'schedule.misfire_grace_time' must be an integer, not 'soon'",
        ),
        ("[subscribers]\nfile = 3\n", "'subscribers.file' must be a path, not 3"),
    ],
)
def test_unknown_or_mistyped_keys_name_the_key_and_file(site: Site, extra: str, message: str) -> None:
    if extra.startswith("[site]"):
        text = site.config_path.read_text().replace("[site]\n", "[site]\ntitel = 'x'\n", 1)
        site.config_path.write_text(text)
        message = "unknown key 'site.titel'"
    else:
        site.write_config(extra)
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    assert message in str(caught.value)
    assert str(site.config_path) in str(caught.value)


def test_a_mistyped_value_in_a_known_table(site: Site) -> None:
    site.set("feeds", max_entries="fifty")
    with pytest.raises(ConfigError, match=r"'feeds\.max_entries' must be an integer, not 'fifty'"):
        load_config(site.config_path)


def test_bad_timezone_and_base_url_are_explained(site: Site) -> None:
    site.set("site", timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"'site\.timezone' is not a known timezone"):
        load_config(site.config_path)


def test_a_missing_config_file_says_how_to_pass_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found \(pass --config FILE\)"):
        load_config(tmp_path / "nope.toml")


def test_the_config_object_is_frozen(site: Site) -> None:
    config = load_config(site.config_path)
    with pytest.raises(AttributeError):
        config.site.title = "changed"  # type: ignore[misc]


def test_every_config_key_is_documented_in_the_readme() -> None:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", section, flags=re.MULTILINE))
    assert set(documented_keys()) - documented == set(), "add these keys to README.md's config table"
    assert documented - set(documented_keys()) == set(), "README.md documents keys that do not exist"


def test_an_unknown_placeholder_in_a_url_template_is_a_config_error(site: Site) -> None:
    site.set("content", permalink="/posts/{slug}/{category}/")
    with pytest.raises(ConfigError, match=r"'content\.permalink' has an unknown placeholder"):
        load_config(site.config_path)
