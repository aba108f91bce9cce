"""The only module that writes rendered output: atomic writes, safe paths, and a manifest of what we wrote.

A reader (a feed reader polling `feeds/`, a web server) never sees half a file: each file is written to a
temporary file in the same folder, flushed to disk, then renamed over the old one. A file whose bytes would
not change is not touched, so its mtime (and HTTP caching) stays put. The manifest lists the files digest
wrote into a folder, so that files it no longer produces (the feed of a topic that disappeared) can be
removed without ever touching a file someone else put there.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import OutputError

MANIFEST = ".digest-manifest.json"


def safe_join(folder: Path, relative: str) -> Path:
    """folder/relative, refusing any path that would leave folder (absolute, `..`, or via a symlink)."""
    pure = PurePosixPath(relative)
    if (
        pure.is_absolute()
        or not relative
        or any(part in ("..", "") for part in pure.parts)
        or "\\" in relative
    ):
        raise OutputError(f"refusing to write outside {folder}: {relative!r}", path=str(folder))
    base = folder.resolve()
    target = (base / pure).resolve()
    if not target.is_relative_to(base) or target == base:
        raise OutputError(f"refusing to write outside {folder}: {relative!r}", path=str(folder))
    return base / pure


def write_atomic(path: Path, data: bytes) -> bool:
    """Write data to path atomically; False (and nothing written) when the file already holds these bytes."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    try:
        _replace(path, data)
    except OSError as exc:
        hint = "free space on that disk" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else None
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=str(path), hint=hint) from None
    return True


def _replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # here: a build with nothing to write never needs it (start-up time)

    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


@dataclass
class WriteReport:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def read_manifest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of the files digest last wrote into folder ({} when none)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    files = data.get("files", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def write_tree(folder: Path, files: Mapping[str, bytes], digests: Mapping[str, str]) -> WriteReport:
    """Make folder hold exactly `files` among the files digest manages there.

    `digests` maps each relative path to the sha256 of its bytes (recorded in the manifest, so the next
    build can tell whether the files on disk are still the ones it wrote without re-rendering them).
    Files listed in the previous manifest but not in `files` are removed; nothing else is.
    """
    report = WriteReport()
    targets = {relative: safe_join(folder, relative) for relative in files}
    for relative in sorted(files):
        if write_atomic(targets[relative], files[relative]):
            report.written.append(relative)
        else:
            report.unchanged.append(relative)
    previous = read_manifest(folder)
    for relative in sorted(set(previous) - set(files)):
        try:
            path = safe_join(folder, relative)
        except OutputError:
            continue  # a manifest edited by hand can't make us delete outside the folder
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            report.removed.append(relative)
    manifest = json.dumps({"files": {k: digests[k] for k in sorted(files)}}, indent=1, sort_keys=True)
    write_atomic(folder / MANIFEST, (manifest + "\n").encode("utf-8"))
    return report
