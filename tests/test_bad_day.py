"""The state and the output on a bad day: a full disk, a read-only state, a state file emptied or deleted
under a run. Each is one `Error:` line that says what to do, never a traceback, and never a second copy
of a digest already sent.

The full and read-only disks are real: a small tmpfs mounted over the folder (root only; CI runs as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli import main

from conftest import Site, article_text
from smtp_server import Handler, smtp_delivery, smtp_server, write_run_config, write_subscribers

NOW = "2025-06-30T09:00:00+08:00"


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted after the test."""
    if not _can_mount():
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must be able to mount a tmpfs")
        pytest.skip("needs root to mount a small tmpfs")
    point = tmp_path / "disk"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(disk: Path) -> None:
    """Take every free block of the disk."""
    with open(disk / "filler", "wb") as stream:
        try:
            while True:
                stream.write(b"\0" * 65536)
                stream.flush()
        except OSError:
            pass


def set_state_path(site: Site, path: Path) -> None:
    site.set("state", path=str(path))


def cli(site: Site, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(site.root / "config.toml"), *args, "--now", NOW])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def outbox_files(site: Site) -> list[str]:
    return sorted(path.name for path in (site.root / "outbox").glob("*.eml"))


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_zero_byte_state_file_is_an_error_not_a_new_state(run_site: Site) -> None:
    state = run_site.root / "state" / "state.sqlite3"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_bytes(b"")
    status, _, stderr = cli(run_site, "run")
    line = one_error_line(stderr)
    assert status == 1
    assert str(state) in line and "empty" in line
    assert outbox_files(run_site) == []  # nothing sent as if for the first time
    assert state.read_bytes() == b""  # and the evidence left as it was


class StateVandal(Handler):
    """An SMTP server that, after accepting its first message, does to the state file what `rm` (or a
    truncating editor) by hand would do while the run is sending."""

    def __init__(self, state: Path, how: str) -> None:
        super().__init__()
        self.state, self.how = state, how

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if self.count == 1:
            if self.how == "delete":
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.state}{suffix}").unlink(missing_ok=True)
            else:
                os.truncate(self.state, 0)
        return reply


@pytest.mark.parametrize("connections", [1, 4])
def test_a_state_file_deleted_under_a_run_is_restored_and_nothing_is_sent_twice(
    run_site: Site, connections: int
) -> None:
    addresses = write_subscribers(run_site.root, 30)
    state = run_site.root / "state" / "state.sqlite3"
    with smtp_server(StateVandal(state, "delete")) as server:
        write_run_config(run_site.root, delivery=smtp_delivery(server, connections=connections))
        status, _, stderr = cli(run_site, "run")
        line = one_error_line(stderr)
        assert status == 1
        assert "disappeared" in line and str(state) in line
        first = server.count
        assert 1 <= first < 30  # the run stopped at once
        assert state.exists()  # put back from the open connection, with everything it recorded
        status, _, stderr = cli(run_site, "run")
        assert status == 0, stderr
        copies = server.handler.by_recipient()
        assert sorted(copies) == sorted(addresses)
        # At most the one message in flight on each connection when the file went can come twice, with
        # its Message-ID.
        twice = {a: c for a, c in copies.items() if len(c) > 1}
        assert len(twice) <= connections
        for items in twice.values():
            assert len({item.message["Message-ID"] for item in items}) == 1
        status, _, _ = cli(run_site, "run")
        assert status == 5 and sum(map(len, server.handler.by_recipient().values())) == server.count


def test_a_state_file_emptied_under_a_run_stops_it(run_site: Site) -> None:
    write_subscribers(run_site.root, 30)
    state = run_site.root / "state" / "state.sqlite3"
    with smtp_server(StateVandal(state, "empty")) as server:
        write_run_config(run_site.root, delivery=smtp_delivery(server))
        status, _, stderr = cli(run_site, "run")
        line = one_error_line(stderr)
        assert status == 1 and "emptied" in line and str(state) in line
        assert server.count < 30
        status, _, stderr = cli(run_site, "run")  # the emptied file is not taken for a new state
        assert status == 1 and "empty" in one_error_line(stderr)


def test_a_full_disk_under_the_state_is_one_error_line(run_site: Site, small_disk: Path) -> None:
    set_state_path(run_site, small_disk / "state.sqlite3")
    fill(small_disk)
    status, _, stderr = cli(run_site, "run")
    line = one_error_line(stderr)
    assert status == 1 and ("No space left" in line or "full" in line), line
    assert outbox_files(run_site) == []


def test_a_disk_that_fills_up_after_the_first_run_is_one_error_line(run_site: Site, small_disk: Path) -> None:
    set_state_path(run_site, small_disk / "state.sqlite3")
    status, _, stderr = cli(run_site, "run")
    assert status == 0, stderr
    sent = outbox_files(run_site)
    run_site.add("c.md", article_text("Gamma", "2025-06-29T10:00:00+08:00", main_topics=["AI"]))
    fill(small_disk)
    status, _, stderr = cli(run_site, "run", "--now", "2025-07-07T09:00:00+08:00")
    line = one_error_line(stderr)
    assert status == 1 and ("full" in line or "No space left" in line), line
    assert outbox_files(run_site) == sent  # nothing went out that could not be recorded


def test_a_read_only_state_is_one_error_line(run_site: Site, small_disk: Path) -> None:
    set_state_path(run_site, small_disk / "state.sqlite3")
    status, _, stderr = cli(run_site, "run")
    assert status == 0, stderr
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    run_site.add("c.md", article_text("Gamma", "2025-06-29T10:00:00+08:00", main_topics=["AI"]))
    status, _, stderr = cli(run_site, "run", "--now", "2025-07-07T09:00:00+08:00")
    line = one_error_line(stderr)
    assert status == 1 and "read-only" in line.lower()


def test_a_full_feeds_disk_is_one_error_line(run_site: Site, small_disk: Path) -> None:
    run_site.set("feeds", dir=str(small_disk / "feeds"))
    fill(small_disk)
    status, _, stderr = cli(run_site, "build")
    line = one_error_line(stderr)
    assert status == 1 and "No space left" in line and str(small_disk) in line


def test_a_full_archive_disk_does_not_stop_delivery(run_site: Site, small_disk: Path) -> None:
    run_site.set("digest", archive_dir=str(small_disk / "archive"))
    fill(small_disk)
    status, _, stderr = cli(run_site, "run")
    assert "Traceback" not in stderr
    assert len(outbox_files(run_site)) == 2  # everyone got the digest
    assert "problem: " in stderr and "archive" in stderr and "No space left" in stderr
    assert status == 3  # something was skipped (the web copy), everything else done
