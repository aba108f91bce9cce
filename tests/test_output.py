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
    versions = [b"a" * 3_000_000, b"b" * 2_000_000]
    write_atomic(path, versions[0])
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            data = path.read_bytes()
            assert data in versions
            seen.add(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for index in range(40):
            write_atomic(path, versions[index % 2])
    finally:
        stop.set()
        reader.join()
    assert seen  # the reader did read while the writer wrote


def test_write_tree_removes_only_what_it_wrote_before(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.xml": b"a", "b.xml": b"b"}, {"a.xml": "1", "b.xml": "2"})
    (tmp_path / "mine.txt").write_text("not digest's")
    report = write_tree(tmp_path, {"a.xml": b"a"}, {"a.xml": "1"})
    assert report.removed == ["b.xml"] and report.unchanged == ["a.xml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".digest-manifest.json", "a.xml", "mine.txt"]
