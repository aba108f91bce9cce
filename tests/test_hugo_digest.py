"""The weekly digest of a bilingual Hugo site: each subscriber gets the digest of their language.

A real `digest run` through the CLI on the generated Chinese/English project site (`hugo_sites`), two
subscribers in `subscribers.csv` with a `language` column, the outbox as delivery: each message holds
exactly the dated pages the real `hugo` publishes in that language, at Hugo's permalinks, in that
language's words and dates, and links to that language's web copy, which is written where it links.
"""

from __future__ import annotations

import email
import os
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import NamedTuple

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import load_config
from digest.feed_sets import language_of
from digest.templating import links
from hugo_sites import NOW, hugo_view, project_site

# The digest covers every past page: the site's pages are from 2020.
CONFIG = """
[content]
hugo_site = "{site}"
[feeds]
dir = "feeds"
[state]
path = "state.sqlite3"
[digest]
since = 2019-01-01T00:00:00Z
from = "Digest <digest@example.com>"
[subscribers]
file = "subscribers.csv"
[delivery]
method = "outbox"
outbox = "outbox"
"""


def _body(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


class Sent(NamedTuple):
    exit_code: int
    output: str
    messages: dict[str, EmailMessage]  # by recipient
    expected: dict[str, dict[str, str]]  # language -> permalink -> title, as hugo publishes them
    folder: Path


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Sent:
    tmp = tmp_path_factory.mktemp("hugo-digest")
    root = project_site(tmp / "site")
    hugo = hugo_view(root, tmp / "hugo")
    folder = tmp / "digest"
    folder.mkdir()
    (folder / "config.toml").write_text(CONFIG.format(site=root), encoding="utf-8")
    (folder / "subscribers.csv").write_text(
        "email,name,language\nzh@example.com,张三,zh-CN\nen@example.com,Ann,en\nxx@example.com,X,\n",
        encoding="utf-8",
    )
    here = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, ["--config", "config.toml", "run", "--now", NOW.isoformat()])
    finally:
        os.chdir(here)
    messages = {}
    for path in sorted((folder / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        messages[path.name.split("--")[1].removesuffix(".eml")] = message
    # What hugo publishes in each language, dated (a page without a date is in no digest).
    expected: dict[str, dict[str, str]] = {}
    for entry in hugo.listed.values():
        if not entry["date"].startswith("0001"):
            expected.setdefault(entry["lang"], {})[entry["permalink"]] = entry["title"]
    return Sent(result.exit_code, result.output, messages, expected, folder)


def _article_links(message: EmailMessage) -> set[str]:
    return {url for url in links(_body(message, "html")) if url.startswith("https://p.example.com/docs/")}


def test_each_subscriber_gets_only_their_languages_pages_at_hugos_urls(sent: Sent) -> None:
    messages, expected = sent.messages, sent.expected
    assert sent.exit_code == 0, sent.output
    assert sorted(messages) == ["en@example.com", "xx@example.com", "zh@example.com"]
    assert set(expected) == {"zh", "en"} and expected["zh"] and expected["en"]
    for address, lang in (("zh@example.com", "zh"), ("en@example.com", "en"), ("xx@example.com", "zh")):
        message = messages[address]
        every = {url for pages in expected.values() for url in pages}
        assert _article_links(message) & every == set(expected[lang]), address
        text = _body(message, "plain")
        for title in expected[lang].values():
            assert title in text, (address, title)
        other = "en" if lang == "zh" else "zh"
        for title in expected[other].values():
            assert title not in text, (address, title)


def test_each_digest_speaks_its_language_and_links_its_own_web_copy(sent: Sent) -> None:
    messages, folder = sent.messages, sent.folder
    zh, en = _body(messages["zh@example.com"], "plain"), _body(messages["en@example.com"], "plain")
    assert "2020年2月1日" in zh and "February 1, 2020" not in zh
    assert "February 1, 2020" in en and "2020年2月1日" not in en
    zh_html, en_html = _body(messages["zh@example.com"], "html"), _body(messages["en@example.com"], "html")
    assert "在浏览器中查看" in zh_html and "View in browser" not in zh_html
    assert "View in browser" in en_html and "在浏览器中查看" not in en_html
    assert messages["zh@example.com"]["Subject"] == "项目 周报 2026-W49"
    assert messages["en@example.com"]["Subject"] == "Project weekly 2026-W49"
    # "View in browser": each language's web copy, written where its link points.
    period = "2026-W49"
    zh_copy = f"https://p.example.com/docs/feeds/digests/{period}.html"
    en_copy = f"https://p.example.com/docs/feeds/en/digests/{period}.html"
    assert zh_copy in links(zh_html) and en_copy not in links(zh_html)
    assert en_copy in links(en_html) and zh_copy not in links(en_html)
    zh_file = folder / "feeds" / "digests" / f"{period}.html"
    en_file = folder / "feeds" / "en" / "digests" / f"{period}.html"
    assert "2020年2月1日" in zh_file.read_text("utf-8")
    assert "February 1, 2020" in en_file.read_text("utf-8")


def test_a_subscribers_language_tag_finds_the_sites_language(tmp_path: Path) -> None:
    root = project_site(tmp_path / "site")
    (tmp_path / "config.toml").write_text(CONFIG.format(site=root), encoding="utf-8")
    config = load_config(tmp_path / "config.toml")
    assert [language_of(config, tag) for tag in ("", "zh-CN", "zh", "ZH-hans-cn", "en", "en-GB")] == [
        "zh",
        "zh",
        "zh",
        "zh",
        "en",
        "en",
    ]
    assert language_of(config, "fr") is None


def test_check_notes_a_language_the_site_does_not_have(tmp_path: Path) -> None:
    root = project_site(tmp_path / "site")
    (tmp_path / "config.toml").write_text(CONFIG.format(site=root), encoding="utf-8")
    (tmp_path / "subscribers.csv").write_text(
        "email,language\na@example.com,fr\nb@example.com,fr-CA\nc@example.com,en\n", encoding="utf-8"
    )
    result = CliRunner().invoke(
        main, ["--config", str(tmp_path / "config.toml"), "check", "--now", NOW.isoformat()]
    )
    notes = [line for line in result.output.splitlines() if "subscribers: language" in line]
    assert notes == [
        "note: subscribers: language 'fr' (1 subscriber) is none of the site's; they get the digest in zh-CN",
        "note: subscribers: language 'fr-CA' (1 subscriber) is none of the site's; they get the digest in "
        "zh-CN",
    ]
    assert result.exit_code == 0, result.output
