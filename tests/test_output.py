"""Writing output: atomic, never outside its folder, and only what digest owns is ever removed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from digest.errors import OutputError
from digest.output import safe_join, write_atomic, write_tree


@pytest.mark.parametrize("relative", ["../x.xml", "/etc/passwd", "a/../../x", "", "a\\..\\x"])
def test_safe_join_refuses_paths_that_leave_the_folder(tmp_path: Path, relative: str) -> None:
    with pytest.raises(OutputError, match="refusing to write outside"):
        safe_join(tmp_path, relative)


def test_safe_join_refuses_a_symlink_out(tmp_path: Path) -> None:
    (tmp_path / "out").symlink_to(tmp_path.parent)
    with pytest.raises(OutputError):
        safe_join(tmp_path, "out/x.xml")


def test_unchanged_bytes_are_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "f.xml"
    assert write_atomic(path, b"one") is True
    mtime = path.stat().st_mtime_ns
    assert write_atomic(path, b"one") is False
    assert path.stat().st_mtime_ns == mtime
    assert write_atomic(path, b"two") is True
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.xml"]  # no temporary file left behind


def test_a_reader_never_sees_half_a_file(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    versions = {3_000_000: b"a" * 3_000_000, 2_000_000: b"b" * 2_000_000}
    write_atomic(path, versions[3_000_000])
    torn: list[str] = []  # what the reader saw that no writer wrote: checked here, not in its thread
    reads = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                torn.append("no file")
                continue
            reads += 1
            if versions.get(len(data)) != data:
                torn.append(f"{len(data)} bytes")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        # Write until the reader has read often enough while the writer was at it (bounded).
        for index in range(400):
            write_atomic(path, list(versions.values())[index % 2])
            if index >= 40 and reads >= 100:
                break
    finally:
        stop.set()
        reader.join()
    assert torn == []
    assert reads >= 100  # the reader did read while the writer wrote


def test_write_tree_removes_only_what_it_wrote_before(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.xml": b"a", "b.xml": b"b"}, {"a.xml": "1", "b.xml": "2"})
    (tmp_path / "mine.txt").write_text("not digest's")
    report = write_tree(tmp_path, {"a.xml": b"a"}, {"a.xml": "1"})
    assert report.removed == ["b.xml"] and report.unchanged == ["a.xml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".digest-manifest.json", "a.xml", "mine.txt"]
