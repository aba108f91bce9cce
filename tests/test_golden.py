"""The feeds built from the shipped seeds, byte for byte.

Regenerate the golden files only on purpose, and review the diff:  DIGEST_UPDATE_GOLDEN=1 make test
"""

from __future__ import annotations

import difflib
import email
import os
import shutil
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
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
    assert_same_bytes(produced, GOLDEN)


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
GOLDEN_RECIPIENT = "reader@example.com"  # in the shipped subscribers.csv, with no topics: the whole digest


def assert_same_bytes(produced: dict[str, bytes], folder: Path) -> None:
    """Each file as in `folder`, byte for byte; a mismatch shows as a unified diff."""
    for name, data in produced.items():
        expected = (folder / name).read_bytes()
        if data != expected:
            diff = difflib.unified_diff(
                expected.decode("utf-8", "replace").splitlines(keepends=True),
                data.decode("utf-8", "replace").splitlines(keepends=True),
                fromfile=f"{folder.relative_to(PROJECT)}/{name}",
                tofile=f"produced/{name}",
            )
            pytest.fail(f"{name} differs from the golden file:\n" + "".join(diff), pytrace=False)


def test_seed_digest_matches_the_golden_files(seeds_site: Path) -> None:
    """What the real `digest run` sends at NOW from the shipped seeds, config and subscribers: its web
    copy, the text part and the whole message one subscriber finds in the outbox."""
    shutil.copy(PROJECT / "subscribers.csv", seeds_site / "subscribers.csv")
    result = CliRunner().invoke(
        main, ["--config", str(seeds_site / "config.toml"), "run", "--now", NOW.isoformat()]
    )
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    period = "2025-W27"
    message = (seeds_site / "outbox" / f"{period}--{GOLDEN_RECIPIENT}.eml").read_bytes()
    parsed = email.message_from_bytes(message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    text = parsed.get_body(preferencelist=("plain",))
    assert isinstance(text, EmailMessage)
    produced = {
        "web.html": (seeds_site / "archive" / f"{period}.html").read_bytes(),
        "digest.txt": str(text.get_content()).replace("\r\n", "\n").encode("utf-8"),
        "message.eml": message,
    }
    if os.environ.get("DIGEST_UPDATE_GOLDEN") == "1":
        DIGEST_GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, data in produced.items():
            (DIGEST_GOLDEN / name).write_bytes(data)
    assert_same_bytes(produced, DIGEST_GOLDEN)
