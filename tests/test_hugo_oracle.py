"""The oracle: digest's Hugo modules against what the real `hugo` publishes for generated sites."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote

import pytest

import hugo_sites
from hugo_sites import SITES, digest_view, hugo_view, rel_content_path


def _instant(text: str) -> datetime | None:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return None if moment.year == 1 else moment


@pytest.fixture(scope="module", params=sorted(SITES))
def both(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp(request.param)
    root = SITES[request.param](tmp / "site")
    hugo = hugo_view(root, tmp / "hugo")
    site, result, notes = digest_view(root)
    return site, result, notes, hugo


def test_the_same_pages_are_published(both) -> None:
    site, result, _, hugo = both
    ours = {(rel_content_path(p.path, site), p.lang) for p in result.pages if p.listed}
    assert ours == set(hugo.listed)


def test_the_same_permalinks_titles_and_publish_times(both) -> None:
    site, result, _, hugo = both
    ours = {
        (rel_content_path(p.path, site), p.lang): (unquote(p.permalink), p.title, p.publish_date)
        for p in result.pages
        if p.listed
    }
    theirs = {
        key: (unquote(entry["permalink"]), entry["title"], _instant(entry["publishDate"]))
        for key, entry in hugo.listed.items()
    }
    assert ours == theirs


def test_urls_are_byte_identical_before_decoding(both) -> None:
    site, result, _, hugo = both
    ours = {(rel_content_path(p.path, site), p.lang): p.permalink for p in result.pages if p.listed}
    assert ours == {key: entry["permalink"] for key, entry in hugo.listed.items()}


def test_unpublished_pages_agree_with_hugo_list_all(both) -> None:
    """`hugo list all` builds drafts, future and expired pages too: their URLs, dates and draft flags."""
    _, result, _, hugo = both
    ours = {
        p.path: (p.permalink, p.title, p.publish_date, p.draft)
        for p in result.pages
        if p.list == "always" and p.reason not in ("url with a protocol",)
    }
    theirs = {
        path: (row["permalink"], row["title"], _instant(row["publishDate"]), row["draft"] == "true")
        for path, row in hugo.all_pages.items()
    }
    assert ours == theirs


def test_drafts_future_and_expired_agree_with_hugo_list(both) -> None:
    """`hugo list drafts|future|expired` name the regular pages held back for that reason."""
    _, result, _, hugo = both
    reasons = {"drafts": "draft", "future": "future", "expired": "expired"}
    for what, reason in reasons.items():
        theirs = {path for path in hugo.held_back[what] if not path.rsplit("/", 1)[-1].startswith("_index.")}
        assert {p.path for p in result.pages if p.reason == reason} == theirs, what


def test_without_hugo_the_oracle_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hugo_sites, "HUGO", None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="hugo is not installed"):
        hugo_sites.require_hugo()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        hugo_sites.require_hugo()


def test_the_same_dates_sections_and_translation_keys(both) -> None:
    """.Date, .Lastmod, .ExpiryDate, .Section and .TranslationKey of every listed page."""
    site, result, _, hugo = both
    ours = {
        (rel_content_path(p.path, site), p.lang): (
            p.date,
            p.lastmod,
            p.expiry_date,
            p.section,
            p.translation_key,
        )
        for p in result.pages
        if p.listed
    }
    theirs = {
        key: (
            _instant(e["date"]),
            _instant(e["lastmod"]),
            _instant(e["expiryDate"]),
            e["section"],
            e["translationKey"],
        )
        for key, e in hugo.listed.items()
    }
    assert ours == theirs
