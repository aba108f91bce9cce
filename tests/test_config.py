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


# ---------------------------------------------------------------- issue 10: values that would reach a header,
# a link, a socket or a folder are checked here, naming the key

ENCODED_CRLF = "=?utf-8?q?Cfg=0D=0AReply-To:_attacker@example.net?="


@pytest.mark.parametrize(
    ("section", "key", "value", "shown"),
    [
        ("site", "title", ENCODED_CRLF, "site.title"),
        ("digest", "subject", "{site} " + ENCODED_CRLF, "digest.subject"),
        ("digest", "from", f"{ENCODED_CRLF} <digest@example.com>", "digest.from"),
        ("site", "title", "Two\nlines", "site.title"),
        ("digest", "subject", "tab\tand\x1b[31m escape", "digest.subject"),
    ],
)
def test_header_text_must_be_one_line_after_decoding(
    site: Site, section: str, key: str, value: str, shown: str
) -> None:
    site.set(section, **{key: value})
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    assert caught.value.key == shown
    assert f"'{shown}' must be one line of text" in str(caught.value)


def test_a_header_with_a_harmless_encoded_word_is_accepted(site: Site) -> None:
    site.set("site", title="=?utf-8?b?5byg5LiJ?= Weekly")
    assert load_config(site.config_path).site.title == "=?utf-8?b?5byg5LiJ?= Weekly"


@pytest.mark.parametrize("key", ["unsubscribe_url", "manage_url"])
@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://example.com/unsubscribe?email={email}",
        "ftp://example.com/",
        "https:///no-host",
        "//example.com/unsubscribe",
        "JavaScript:alert(1)",
    ],
)
def test_links_in_the_email_take_only_https_or_mailto(site: Site, key: str, url: str) -> None:
    site.set("digest", **{key: url})
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    assert caught.value.key == f"digest.{key}"
    assert "must be an https: URL (http: only on 127.0.0.1 or localhost) or a mailto: address" in str(
        caught.value
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/unsubscribe?email={email}",
        "http://127.0.0.1:8080/unsubscribe?email={email}",
        "http://localhost/u",
        "http://[::1]/u",
        "mailto:unsubscribe@example.com?subject=unsubscribe",
        "",
    ],
)
def test_https_loopback_http_and_mailto_links_are_accepted(site: Site, url: str) -> None:
    site.set("digest", unsubscribe_url=url, manage_url=url)
    assert load_config(site.config_path).digest.unsubscribe_url == url


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("smtp_port", 68061, "'delivery.smtp_port' must be between 1 and 65535, not 68061"),
        ("smtp_port", 0, "'delivery.smtp_port' must be between 1 and 65535, not 0"),
        ("smtp_timeout", 0, "'delivery.smtp_timeout' must be more than 0 seconds"),
        ("smtp_data_timeout", 0.0, "'delivery.smtp_data_timeout' must be more than 0 seconds"),
        ("connections", 0, "'delivery.connections' must be between 1 and 64, not 0"),
        ("connections", 65, "'delivery.connections' must be between 1 and 64, not 65"),
    ],
)
def test_delivery_numbers_out_of_range_are_config_errors(
    site: Site, key: str, value: object, message: str
) -> None:
    site.set("delivery", **{key: value})
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    assert message in str(caught.value)
    assert caught.value.key == f"delivery.{key}"


@pytest.mark.parametrize(
    ("settings", "keys"),
    [
        ({"digest": {"archive_dir": "feeds"}}, "'feeds.dir' and 'digest.archive_dir' are one folder"),
        ({"delivery": {"outbox": "feeds/outbox"}}, "'delivery.outbox' and 'feeds.dir' overlap"),
        ({"delivery": {"outbox": "feeds/digests/mail"}}, "'delivery.outbox' and 'feeds.dir' overlap"),
        ({"delivery": {"outbox": "."}}, "'delivery.outbox' and 'feeds.dir' overlap"),
        (
            {"digest": {"archive_dir": "archive"}, "delivery": {"outbox": "archive"}},
            "'delivery.outbox' and 'digest.archive_dir' overlap",
        ),
        ({"state": {"path": "feeds/state.sqlite3"}}, "'state.path' is inside 'feeds.dir'"),
        (
            {"subscribers": {"file": "feeds/digests/subscribers.csv"}},
            "'subscribers.file' is inside 'feeds.dir'",
        ),
    ],
)
def test_output_folders_that_overlap_are_config_errors(
    site: Site, settings: dict[str, dict[str, str]], keys: str
) -> None:
    for section, values in settings.items():
        site.set(section, **values)
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    assert keys in str(caught.value)


def test_the_default_archive_inside_the_feeds_folder_is_fine(site: Site) -> None:
    config = load_config(site.config_path)
    assert config.digest.archive_dir == config.feeds.dir / "digests"


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        (
            '[server]\npublic_url = "http://example.com/newsletter/"',
            "server.public_url",
            "must be an https URL",
        ),
        ('[server]\npublic_url = "https://example.com/newsletter"', "server.public_url", "ending in /"),
        ('[server]\npublic_url = "https://example.com/n/?x=1"', "server.public_url", "must be an https URL"),
        ("[server]\nport = 70000", "server.port", "between 1 and 65535"),
        ("[server]\nthreads = 0", "server.threads", "between 1 and 64"),
        ('[server]\nsecret_env = "my secret"', "server.secret_env", "must name an environment variable"),
        ("[server]\nhost = 8025", "server.host", "must be a string"),
        ("[subscribers]\nmails_per_day = 0", "subscribers.mails_per_day", "at least 1"),
        (
            '[subscribers]\nreturn_path = "bounces@example.com"',
            "subscribers.return_path",
            "holding {id} once",
        ),
        (
            '[subscribers]\nreturn_path = "b+{id}{x}@example.com"',
            "subscribers.return_path",
            "unknown placeholder",
        ),
    ],
)
def test_server_and_subscriber_keys_are_validated_naming_the_key(
    site: Site, extra: str, key: str, message: str
) -> None:
    site.write_config(extra)
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    assert caught.value.key == key
    assert message in str(caught.value) and str(site.config_path.name) in str(caught.value)


def test_a_loopback_service_may_be_http(site: Site) -> None:
    site.write_config('[server]\npublic_url = "http://127.0.0.1:8025/"\nsecret_env = "KEYS"')
    server = load_config(site.config_path).server
    assert (server.enabled, server.public_url, server.secret_env) == (True, "http://127.0.0.1:8025/", "KEYS")
    site.write_config("")
    assert not load_config(site.config_path).server.enabled  # off until public_url is set


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("site", "base_url", "https://exa mple.com/", "'site.base_url' must be an absolute http(s) URL"),
        ("site", "base_url", "https://example.com:99999/", "'site.base_url' must be an absolute http(s) URL"),
        ("feeds", "url", "javascript:alert(1)/", "'feeds.url' must be an absolute http(s) URL"),
        ("site", "language", "../../etc", "'site.language' must be a language tag (BCP 47)"),
        ("feeds", "max_entries", -1, "'feeds.max_entries' must not be negative, not -1"),
        ("delivery", "retry_backoff", -5, "'delivery.retry_backoff' must not be negative, not -5"),
        ("feeds", "dir", "content", "'feeds.dir' and the content folder"),
        ("feeds", "dir", "content/feeds", "'feeds.dir' and the content folder"),
        ("delivery", "outbox", "content/outbox", "'delivery.outbox' and the content folder"),
    ],
)
def test_urls_languages_numbers_and_folders_that_would_break_output_are_config_errors(
    site: Site, section: str, key: str, value: object, message: str
) -> None:
    """Each of these passed `check` once and then broke every Message-ID, feed link or xml:lang."""
    site.set(section, **{key: value})
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    assert message in str(caught.value)
    assert caught.value.key == f"{section}.{key}"


def test_a_bad_base_url_from_the_hugo_config_names_that_file_and_key(site: Site, tmp_path: Path) -> None:
    hugo = tmp_path / "hugo-site"
    (hugo / "content").mkdir(parents=True)
    (hugo / "hugo.json").write_text('{"baseURL": "javascript:alert(1)//", "title": "H"}', encoding="utf-8")
    site.config_path.write_text(
        f'[content]\nhugo_site = "{hugo}"\n\n[feeds]\ndir = "feeds"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    assert caught.value.key == "baseURL"
    assert caught.value.path == str(hugo / "hugo.json")
    assert "'baseURL' must be an absolute http(s) URL" in str(caught.value)


def test_paths_left_at_their_defaults_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README: relative paths are relative to the file, also the ones the file does not set."""
    config_file = tmp_path / "own" / "config.toml"
    config_file.parent.mkdir()
    config_file.write_text('[site]\ntitle = "T"\nbase_url = "https://example.com/"\n', encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(config_file)
    folder = config_file.parent.resolve()
    assert config.content.dir == folder / "content"
    assert config.feeds.dir == folder / "feeds"
    assert config.state.path == folder / ".digest" / "state.sqlite3"
    assert config.digest.archive_dir == folder / "feeds" / "digests"
    assert config.delivery.outbox == folder / "outbox"
