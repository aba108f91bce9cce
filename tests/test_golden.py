"""The feeds built from the shipped seeds, byte for byte.

Regenerate the golden files only on purpose, and review the diff:  DIGEST_UPDATE_GOLDEN=1 make test
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from digest.config import load_config
from digest.jobs import build

from conftest import NOW, PROJECT

GOLDEN = PROJECT / "tests" / "golden" / "feeds"
COMMITTED = PROJECT / "feeds"


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def seeds_site(tmp_path: Path) -> Path:
    """The shipped config.toml and seeds/, in a folder of their own."""
    shutil.copy(PROJECT / "config.toml", tmp_path / "config.toml")
    shutil.copytree(PROJECT / "seeds", tmp_path / "seeds")
    return tmp_path


def test_seed_feeds_match_the_golden_files(seeds_site: Path) -> None:
    config = load_config(seeds_site / "config.toml")
    report = build(config, NOW)
    assert report.problems == []
    produced = _tree(seeds_site / "feeds")
    if os.environ.get("DIGEST_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(seeds_site / "feeds", GOLDEN)
    assert sorted(produced) == sorted(_tree(GOLDEN))
    for name, data in produced.items():
        assert data == (GOLDEN / name).read_bytes(), f"{name} differs from tests/golden/feeds/{name}"


def test_a_rebuild_is_byte_identical_and_rewrites_nothing(seeds_site: Path) -> None:
    config = load_config(seeds_site / "config.toml")
    build(config, NOW)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (seeds_site / "feeds").rglob("*")}
    again = build(config, NOW)
    assert again.written == [] and again.removed == []
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (seeds_site / "feeds").rglob("*")}
    assert after == before


def test_a_build_without_any_cache_gives_the_same_bytes(seeds_site: Path) -> None:
    config = load_config(seeds_site / "config.toml")
    build(config, NOW)
    first = _tree(seeds_site / "feeds")
    shutil.rmtree(seeds_site / ".digest")
    shutil.rmtree(seeds_site / "feeds")
    build(config, NOW, workers=1)
    assert _tree(seeds_site / "feeds") == first


def test_the_committed_feeds_are_what_make_run_writes() -> None:
    """`make run` builds at the real clock. The seeds publish the same articles at every time from the
    golden `NOW` until 2099 (checked here, not assumed), so `make run` writes the golden feeds, and the
    committed feeds/ must be those."""
    import datetime as dt

    from digest.content import collect
    from digest.jobs import publication_window

    config = load_config(PROJECT / "config.toml")
    start, end = publication_window(collect(config, bodies=False).articles, NOW)
    assert start <= NOW and end >= dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    assert _tree(COMMITTED) == _tree(GOLDEN), "run `make run` and commit feeds/"


DIGEST_GOLDEN = PROJECT / "tests" / "golden" / "digest"


def test_seed_digest_matches_the_golden_files(seeds_site: Path) -> None:
    """The digest of the shipped seeds at NOW: its web copy, its text part and one whole message."""
    from digest.content import collect
    from digest.message import build_message, make_message_id
    from digest.selection import select_digest
    from digest.templating import archive_files, render_digest

    config = load_config(seeds_site / "config.toml")
    digest = select_digest(collect(config).articles, config, NOW)
    assert digest is not None
    rendered = render_digest(digest, config)
    recipient = "reader@example.org"
    message_id = make_message_id(digest.period, recipient, config)
    produced = {
        "web.html": archive_files(digest, config)[f"{digest.period}.html"],
        "digest.txt": rendered.text.encode("utf-8"),
        "message.eml": build_message(
            rendered, config, to=recipient, to_name="读者", message_id=message_id, date=NOW
        ),
    }
    if os.environ.get("DIGEST_UPDATE_GOLDEN") == "1":
        DIGEST_GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, data in produced.items():
            (DIGEST_GOLDEN / name).write_bytes(data)
    for name, data in produced.items():
        assert data == (DIGEST_GOLDEN / name).read_bytes(), f"{name} differs from tests/golden/digest/{name}"
